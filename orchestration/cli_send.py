"""``retentext send``, ``receiver``, ``receipts`` and ``gateway``: the sending side of the CLI."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestration import settings
from orchestration.clock import handover_clock

console = Console(stderr=True, soft_wrap=True)


def connect_warehouse(warehouse: str | None):
    """The warehouse for the send and experiment commands: it must exist and hold the
    marts; a lock held by another writer is a clear error."""
    import duckdb

    if warehouse:
        os.environ[settings.WAREHOUSE_ENV] = str(Path(warehouse).resolve())
    path = settings.warehouse_path()
    if not path.exists():
        raise ValueError(f"warehouse {path} does not exist; run `retentext run` first")
    try:
        con = duckdb.connect(str(path), config={"memory_limit": settings.duckdb_memory_limit()})
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise ValueError(
            f"warehouse {path} is in use by another process; nothing was read or changed. "
            f"Wait for it to finish (DuckDB allows one writer). ({str(exc).splitlines()[0]})"
        ) from exc
    missing = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'marts' AND table_name = 'dim_customers'"
    ).fetchone()[0]
    if not missing:
        con.close()
        raise ValueError(f"{path} has no marts; run `retentext run` to build the features")
    return con


def send(args: argparse.Namespace) -> int:
    from send_jobs import config, qa, receipts
    from send_jobs.campaign_specs import load_campaigns, load_program
    from send_jobs.decide import decide
    from send_jobs.deliver import deliver
    from send_jobs.gateways import KannelGateway, OutboxGateway

    program = load_program()
    campaigns = load_campaigns(program=program)
    con = connect_warehouse(args.warehouse)
    started = time.perf_counter()
    loaded = receipts.ingest(con, config.gateway_landing())
    if loaded["lines"]:
        console.print(
            f"gateway landing: {loaded['receipts']:,} receipts, {loaded['replies']:,} replies, "
            f"{loaded['duplicates']:,} duplicates, {loaded['quarantined']:,} quarantined, "
            f"{loaded['status_changes']:,} status changes"
        )
    run = decide(con, program, campaigns, args.as_of, dry_run=args.dry_run)
    decided_s = time.perf_counter() - started
    _print_qa(qa.summary(con, run.run_id), run, decided_s)
    if args.dry_run:
        console.print("dry run: decisions written, nothing queued or sent")
        print(
            f"run {run.run_id}: " + ", ".join(f"{k} {v:,}" for k, v in sorted(run.counts.items()))
        )
        return 0
    if args.gateway == "kannel":
        gateway = KannelGateway(config.KannelConfig.from_env(), program.sender)
    else:
        gateway = OutboxGateway(config.outbox_dir())
    try:
        with console.status(f"delivering through {gateway.name}"):
            delivery = deliver(
                con, program, args.as_of, gateway, limit=args.limit,
                clock=handover_clock(args.handover_at), replies=config.gateway_landing(),
            )  # fmt: skip
    except OSError as exc:
        con.close()
        console.print(
            f"[red]error:[/red] the {gateway.name} gateway failed: {exc}. Nothing partial was "
            "written; the run's decisions are saved and its messages stay queued for the next "
            "run."
        )
        return 1
    con.close()
    console.print(
        f"delivery {delivery.batch_id}: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(delivery.counts.items()))
    )

    if gateway.name == "outbox":
        console.print(f"outbox: {config.outbox_dir()}")
    print(
        f"run {run.run_id}{' (resumed)' if run.resumed else ''}: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(run.counts.items()))
        + f"; handed over {delivery.counts.get('handed_over', 0):,}"
    )
    if delivery.halted:
        console.print(
            f"[red]error:[/red] the {gateway.name} gateway stopped handing over "
            f"({escape(delivery.halted)}). Every answer it got is recorded; the rest stays "
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


def receiver(args: argparse.Namespace) -> int:
    from send_jobs import config
    from send_jobs.campaign_specs import load_program
    from send_jobs.receiver import make_server

    cfg = config.KannelConfig.from_env(Path(args.kannel_state) if args.kannel_state else None)
    port = args.port or cfg.receiver_port
    root = Path(args.landing).resolve() / "gateway" if args.landing else config.gateway_landing()
    server = make_server(
        port, cfg.receiver_secret, root, load_program().brand,
        region=cfg.reply_region, smsc_regions=dict(cfg.smsc_regions),
    )  # fmt: skip

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    console.print(f"receiver on http://127.0.0.1:{port} appending to {root}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def receipts_cmd(args: argparse.Namespace) -> int:
    from send_jobs import config, receipts

    con = connect_warehouse(args.warehouse)
    counts = receipts.ingest(con, config.gateway_landing())
    con.close()
    print(", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return 0


def gateway(args: argparse.Namespace) -> int:
    from send_jobs import config, kannel_box

    cfg = config.KannelConfig.from_env()
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
                 "--landing", str(config.landing_dir())],
                cfg.state / "receiver.log",
            )  # fmt: skip
            kannel_box.wait_ready(cfg, "receiver", cfg.receiver_port)
        for name, pid in pids.items():
            console.print(f"{name}: pid {pid}")
        console.print(f"sendsms {cfg.sendsms_url}; state, logs and pid files in {cfg.state}")
    elif args.action == "down":
        stopped = kannel_box.down(cfg, ("receiver", *kannel_box.PROCESSES[::-1]))
        console.print("stopped: " + (", ".join(stopped) or "nothing was running"))
    else:
        for name in ("bearerbox", "smsbox", "carrier", "receiver"):
            pid = kannel_box.pid_of(cfg, name)
            console.print(f"{name}: {'pid ' + str(pid) if pid else 'not running'}")
    return 0


def register(sub, as_of_type) -> None:
    s = sub.add_parser("send", help="decide, render and send one run of every active campaign")
    s.add_argument("--as-of", type=as_of_type, required=True, help="the run's time (UTC)")
    s.add_argument("--warehouse", help=f"DuckDB file (default: ${settings.WAREHOUSE_ENV})")
    s.add_argument("--gateway", choices=["outbox", "kannel"], default="outbox")
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
    c = sub.add_parser("receipts", help="load the receiver's receipts and replies now")
    c.add_argument("--warehouse")
    c.set_defaults(func=receipts_cmd)
    g = sub.add_parser("gateway", help="a local Kannel (bearerbox, smsbox, fakesmsc) on loopback")
    g.add_argument("action", choices=["up", "down", "status"])
    g.add_argument("--receiver", action="store_true", help="also start `retentext receiver`")
    g.set_defaults(func=gateway)
