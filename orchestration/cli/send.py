"""``retentext send``, ``receiver``, ``receipts`` and ``gateway``: the sending side of the CLI."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import datetime

from rich.table import Table

from orchestration.cli.common import as_of_type, console, error, open_warehouse
from orchestration.clock import handover_clock
from send_jobs.run import GATEWAYS
from warehouse.settings import WAREHOUSE_ENV, Settings


def send(args: argparse.Namespace, settings: Settings) -> int:
    return send_and_print(
        settings.with_paths(warehouse=args.warehouse), args.as_of, args.handover_at,
        gateway=args.gateway, dry_run=args.dry_run, limit=args.limit,
    )  # fmt: skip


def send_and_print(
    settings: Settings,
    as_of: datetime,
    handover_at: datetime | None,
    *,
    gateway: str = "outbox",
    dry_run: bool = False,
    limit: int | None = None,
) -> int:
    """One send run (``send_jobs.run.send_run``) with its QA tables and counts printed."""
    from send_jobs import qa
    from send_jobs.run import send_run

    con = open_warehouse(settings)

    def decided(run) -> None:
        _print_qa(qa.summary(con, run.run_id), run, sum(run.seconds.values()))

    try:
        with console.status(f"deciding and delivering through {gateway}"):
            done = send_run(
                con, settings, as_of, handover_clock(handover_at), gateway=gateway,
                dry_run=dry_run, limit=limit, on_decided=decided,
            )  # fmt: skip
    except OSError as exc:
        error(
            f"the {gateway} gateway failed: {exc}. Nothing partial was "
            "written; the run's decisions are saved and its messages stay queued for the next "
            "run."
        )
        return 1
    finally:
        con.close()
    return _print_send(done, settings)


def _print_send(done, settings: Settings) -> int:
    loaded, run, delivery = done.loaded, done.run, done.delivery
    if loaded["lines"]:
        console.print(
            f"gateway landing: {loaded['receipts']:,} receipts, {loaded['replies']:,} replies, "
            f"{loaded['duplicates']:,} duplicates, {loaded['quarantined']:,} quarantined, "
            f"{loaded['status_changes']:,} status changes"
        )
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted(run.counts.items()))
    if delivery is None:
        console.print("dry run: decisions written, nothing queued or sent")
        print(f"run {run.run_id}: {counts}")
        return 0
    console.print(
        f"delivery {delivery.batch_id}: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(delivery.counts.items()))
    )
    if done.gateway == "outbox":
        console.print(f"outbox: {settings.outbox}")
    print(
        f"run {run.run_id}{' (resumed)' if run.resumed else ''}: {counts}"
        f"; handed over {delivery.counts.get('handed_over', 0):,}"
    )
    if delivery.halted:
        error(
            f"the {done.gateway} gateway stopped handing over "
            f"({delivery.halted}). Every answer it got is recorded; the rest stays "
            "queued for the next run."
        )
        return 1
    return 0


def _print_qa(s: dict, run, seconds: float) -> None:
    t = Table("campaign", "outcome", "reason", "n", title=f"run {run.run_id} ({seconds:.1f}s)")
    for row in s["outcomes"]:
        t.add_row(row[0], row[1], row[2], f"{row[3]:,}")
    console.print(t)
    if s["fallbacks"]:
        f = Table("campaign", "field", "fallbacks", "% of rendered", title="fallback use")
        for row in s["fallbacks"]:
            f.add_row(row[0], row[1], f"{row[2]:,}", f"{row[3]}")
        console.print(f)
    e = Table("encoding", "segments", "messages", title="encoding and segments")
    for row in s["encoding"]:
        e.add_row(row[0], str(row[1]), f"{row[2]:,}")
    console.print(e)
    c = Table("campaign", "messages", "segments", "est. cost (USD)", title="to send")
    for row in s["cost"]:
        c.add_row(row[0], f"{row[1]:,}", f"{int(row[2]):,}", f"{row[3]:.2f}")
    console.print(c)


def receiver(args: argparse.Namespace, settings: Settings) -> int:
    from send_jobs import config
    from send_jobs.campaign_specs import load_program
    from send_jobs.receiver import make_server

    settings = settings.with_paths(kannel_state=args.kannel_state, landing=args.landing)
    cfg = config.KannelConfig.from_settings(settings)
    port = args.port or cfg.receiver_port
    root = settings.gateway_landing
    server = make_server(
        port, cfg.receiver_secret, root, load_program().brand,
        region=cfg.reply_region, smsc_regions=dict(cfg.smsc_regions),
    )  # fmt: skip
    return _serve(server, f"receiver on http://127.0.0.1:{port} appending to {root}")


def links_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from send_jobs import config
    from send_jobs.campaign_specs import load_program
    from send_jobs.link_service import make_server

    settings = settings.with_paths(
        kannel_state=args.kannel_state, landing=args.landing, links=args.registry
    )
    port = args.port or config.KannelConfig.from_settings(settings).links_port
    link_base = load_program().link_base
    server = make_server(port, settings.links, settings.gateway_landing, link_base)
    return _serve(
        server,
        f"links on http://127.0.0.1:{port}{server.prefix}<code> ({link_base} proxied here), "
        f"{len(server.registry.codes):,} codes from {settings.links}; clicks to "
        f"{settings.gateway_landing / 'clicks'}",
    )


def _serve(server, banner: str) -> int:
    """Serve in the foreground until Ctrl-C or SIGTERM."""

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    console.print(banner)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def receipts_cmd(args: argparse.Namespace, settings: Settings) -> int:
    from send_jobs import receipts

    con = open_warehouse(settings.with_paths(warehouse=args.warehouse))
    counts = receipts.ingest(con, settings.gateway_landing)
    con.close()
    print(", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


def gateway(args: argparse.Namespace, settings: Settings) -> int:
    from send_jobs import config, kannel_box

    cfg = config.KannelConfig.from_settings(settings)
    if args.action == "up":
        pids = kannel_box.up(cfg)
        if args.receiver and not kannel_box.pid_of(cfg, "receiver"):
            # the receiver runs in the state folder: every path it needs goes in absolute, so
            # it shares this process's secrets and landing folder whatever the cwd
            pids["receiver"] = kannel_box.start_process(
                cfg,
                "receiver",
                [sys.executable, "-m", "orchestration.cli", "receiver",
                 "--kannel-state", str(cfg.state),
                 "--landing", str(settings.landing)],
                cfg.state / "receiver.log",
            )  # fmt: skip
            kannel_box.wait_ready(cfg, "receiver", cfg.receiver_port)
        if args.links and not kannel_box.pid_of(cfg, "links"):
            pids["links"] = kannel_box.start_process(
                cfg,
                "links",
                [sys.executable, "-m", "orchestration.cli", "links",
                 "--kannel-state", str(cfg.state), "--landing", str(settings.landing),
                 "--registry", str(settings.links)],
                cfg.state / "links.log",
            )  # fmt: skip
            kannel_box.wait_ready(cfg, "links", cfg.links_port)
        for name, pid in pids.items():
            console.print(f"{name}: pid {pid}")
        console.print(f"sendsms {cfg.sendsms_url}; state, logs and pid files in {cfg.state}")
    elif args.action == "down":
        stopped = kannel_box.down(cfg, ("links", "receiver", *kannel_box.PROCESSES[::-1]))
        console.print("stopped: " + (", ".join(stopped) or "nothing was running"))
    else:
        for name in ("bearerbox", "smsbox", "carrier", "receiver", "links"):
            pid = kannel_box.pid_of(cfg, name)
            console.print(f"{name}: {'pid ' + str(pid) if pid else 'not running'}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("send", help="decide, render and send one run of every active campaign")
    s.add_argument("--as-of", type=as_of_type, required=True, help="the run's time (UTC)")
    s.add_argument("--warehouse", help=f"DuckDB file (default: ${WAREHOUSE_ENV})")
    s.add_argument("--gateway", choices=GATEWAYS, default="outbox")
    s.add_argument("--dry-run", action="store_true", help="write decisions and QA; send nothing")
    s.add_argument("--limit", type=int, help="hand at most this many messages to the gateway")
    s.add_argument(
        "--handover-at", type=as_of_type,
        help="judge consent, quiet hours and expiry at this time instead of the wall clock "
        "(replays and simulations)",
    )  # fmt: skip
    s.set_defaults(func=send)
    r = sub.add_parser("receiver", help="take Kannel DLR callbacks and replies (foreground)")
    r.add_argument("--port", type=int, help="default: $RETENTEXT_RECEIVER_PORT or 13080")
    r.add_argument("--landing", help="landing folder (default: $RETENTEXT_LANDING)")
    r.add_argument(
        "--kannel-state", help="Kannel state folder with secrets.json (default: "
        "$RETENTEXT_KANNEL_STATE or data/kannel)",
    )  # fmt: skip
    r.set_defaults(func=receiver)
    k = sub.add_parser("links", help="resolve tracked links and record clicks (foreground)")
    k.add_argument("--port", type=int, help="default: $RETENTEXT_LINKS_PORT or 13081")
    k.add_argument("--landing", help="landing folder; clicks go to <landing>/gateway/clicks")
    k.add_argument("--registry", help="link registry folder (default: $RETENTEXT_LINKS)")
    k.add_argument("--kannel-state", help="Kannel state folder (its ports; default: "
                   "$RETENTEXT_KANNEL_STATE or data/kannel)")  # fmt: skip
    k.set_defaults(func=links_cmd)
    c = sub.add_parser("receipts", help="load the receiver's receipts, replies and clicks now")
    c.add_argument("--warehouse")
    c.set_defaults(func=receipts_cmd)
    g = sub.add_parser("gateway", help="a local Kannel (bearerbox, smsbox, fakesmsc) on loopback")
    g.add_argument("action", choices=["up", "down", "status"])
    g.add_argument("--receiver", action="store_true", help="also start `retentext receiver`")
    g.add_argument("--links", action="store_true", help="also start `retentext links`")
    g.set_defaults(func=gateway)
