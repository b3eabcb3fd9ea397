"""The documented path end to end: ``make gateway-up`` in a clean folder with default settings
starts Kannel, fakesmsc and the receiver; replies in every wording class and sender format
arrive through the carrier link, ``retentext receipts`` loads them and the next ``retentext
send`` suppresses exactly the customers who opted out."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from send_jobs import kannel_box
from send_jobs.config import KannelConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PORTS = (13000, 13001, 13002, 13003, 13013, 13080, 13081)
CAMPAIGNS = "('loyalty_recognition', 'winback')"  # audiences that do not move with the hour


def clean_folder(tmp_path: Path) -> Path:
    """A folder with only the Makefile, pyproject.toml and the installed venv: no data/, no
    secrets, no RETENTEXT_* settings."""
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("Makefile", "pyproject.toml", ".venv"):
        (folder / name).symlink_to(REPO / name)
    return folder


def make(folder: Path, target: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTEXT_")}
    return subprocess.run(
        ["make", target], cwd=folder, env=env, capture_output=True, text=True, timeout=180
    )


def retentext(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTEXT_")}
    return subprocess.run(
        [str(folder / ".venv/bin/retentext"), *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def ports_free() -> bool:
    for port in DEFAULT_PORTS:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return False
    return True


def now_iso() -> str:
    """A run time just after now: the replies take effect when the receiver got them."""
    return (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def national(phone: str) -> str:
    return phone.removeprefix("+1")


# (wording, sender format, opted out afterwards); each goes to its own customer
REPLIES = [
    ("stop please", national, True),  # polite
    ("STOP IT", lambda p: "00" + p[1:], True),  # emphatic, 00 international prefix
    ("Arrêt svp", lambda p: p[1:], True),  # French; 1 + national number, no plus
    ("cancel please", lambda p: "011" + p[1:], True),  # 011 international prefix
    ("désabonner", lambda p: p, True),  # E.164
    ("no more texts", national, True),  # no keyword, read as an opt-out
    ("don't stop texting me", national, False),  # negation
    ("YES", national, False),  # an answer, not consent
    ("Thanks! See you Tuesday", lambda p: p, False),
]


@pytest.mark.slow
@pytest.mark.xdist_group("default-ports")
def test_replies_through_make_gateway_up_stop_exactly_the_opted_out(send_warehouse, tmp_path):
    if not ports_free():
        pytest.fail(f"a default Kannel port {DEFAULT_PORTS} is taken: stop the other gateway")
    folder = clean_folder(tmp_path)
    (folder / "data").mkdir()
    shutil.copy(send_warehouse, folder / "data" / "warehouse.duckdb")
    con = duckdb.connect(str(folder / "data" / "warehouse.duckdb"))
    people = con.execute(
        """SELECT customer_id, phone_e164 FROM marts.dim_customers
        WHERE phone_e164 LIKE '+1%' AND (lifecycle_stage = 'lapsed' OR (
            loyalty_tier IN ('gold', 'platinum')
            AND lifecycle_stage IN ('new', 'active', 'at_risk')))
        ORDER BY customer_id LIMIT ?""",
        [len(REPLIES) + 1],
    ).fetchall()
    assert len(people) == len(REPLIES) + 1, "too few North American customers in the audiences"
    # each of them subscribed to marketing texts on the web an hour ago
    subscribed = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)
    con.executemany(
        """INSERT INTO raw.consent SELECT * REPLACE (? AS consent_event_id,
            ? AS customer_id, ? AS phone_e164, ? AS occurred_at)
        FROM raw.consent WHERE channel = 'sms' AND category = 'marketing'
          AND action = 'opt_in' LIMIT 1""",
        [[f"E2E{i}", c, p, subscribed] for i, (c, p) in enumerate(people)],
    )
    con.close()
    up = make(folder, "gateway-up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        cfg = KannelConfig.from_env({}, folder / "data" / "kannel")  # make ran without RETENTEXT_*
        with urllib.request.urlopen(f"http://127.0.0.1:{cfg.links_port}/health", timeout=5) as r:
            assert r.status == 200  # the link service came up with the gateway
        for (text, sender, _), (_, phone) in zip(REPLIES, people, strict=False):
            kannel_box.inject_reply(cfg, sender(phone), text, timeout=3)
        # STOP, START, STOP within one minute from one phone: the last word stands
        flip_phone = people[-1][1]
        for text in ("STOP", "START", "STOP"):
            kannel_box.inject_reply(cfg, national(flip_phone), text, timeout=3)
    finally:
        down = make(folder, "gateway-down")
    assert down.returncode == 0, down.stdout + down.stderr
    loaded = retentext(folder, "receipts")
    assert loaded.returncode == 0, loaded.stderr
    con = duckdb.connect(str(folder / "data" / "warehouse.duckdb"))
    got = con.execute("SELECT phone_e164, intent FROM sends.inbound").fetchall()
    con.close()
    assert len(got) == len(REPLIES) + 3, loaded.stdout  # every reply kept, none as a replay
    assert {p for p, _ in got} == {p for _, p in people}  # every sender format normalised
    sent = retentext(folder, "send", "--as-of", now_iso(), "--dry-run")
    assert sent.returncode == 0, sent.stderr
    con = duckdb.connect(str(folder / "data" / "warehouse.duckdb"))
    reasons = dict(
        con.execute(
            f"""SELECT customer_id, min(reason) FROM sends.decisions
            WHERE run_id = (SELECT max(run_id) FROM sends.runs) AND campaign_id IN {CAMPAIGNS}
            GROUP BY customer_id"""
        ).fetchall()
    )
    con.close()
    opted_out = "no consent: opted out of marketing"
    for (text, _, stops), (customer_id, _) in zip(REPLIES, people, strict=False):
        assert (reasons[customer_id] == opted_out) == stops, (text, reasons[customer_id])
    assert reasons[people[-1][0]] == opted_out
