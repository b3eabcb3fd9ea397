"""One consent model: the marts (customer_consent, dim_customers) and the send path's
guardrails read the warehouse's consent log and the replies with the same rule, so a STOP
reaches the marts and both agree on every customer."""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pytest

from orchestration.cli import main
from send_jobs.consent import consent_sql
from send_jobs.ledger import ensure_schema
from simulator.writer import simulate

AS_OF = "2025-01-06T00:00:00Z"
WEB_IN = "Text me offers from Northwind Goods. Reply STOP to cancel."
# customer -> phone; each has marketing and transactional SMS opt-ins on the web in 2024
PEOPLE = {
    "K_STOP": "+12125550301",  # STOP by reply
    "K_RESTARTED": "+12125550302",  # STOP, then START by reply: subscribed again
    "K_WEB_OUT": "+12125550303",  # opted out on the web, then START by reply: stays out
    "K_YES": "+12125550304",  # opted out on the web, then YES: stays out
    "K_TIE": "+12125550305",  # opt-in and opt-out of marketing at the same instant
    "K_QUIET": "+12125550306",  # nothing since
    "K_MOVED": "+12125550307",  # changed number on 2025-01-02: the new one never opted in
    "K_MOVED_IN": "+12125550308",  # changed number, then opted the new one in
}
NEW_NUMBERS = {"K_MOVED": "+12125550317", "K_MOVED_IN": "+12125550318"}
CUSTOMER_HEADER = "customer_id,first_name,phone_e164,country,region,time_zone,language,created_at"
REPLIES = [  # (phone, action, at)
    ("+12125550301", "opt_out", "2025-01-03 10:00:00"),
    ("+12125550302", "opt_out", "2025-01-03 10:00:00"),
    ("+12125550302", "opt_in", "2025-01-04 10:00:00"),
    ("+12125550303", "opt_in", "2025-01-04 10:00:00"),
    ("+12125550304", None, "2025-01-04 10:00:00"),
]


def consent_rows() -> list[str]:
    rows, n = [], 0
    for cid, phone in PEOPLE.items():
        for category in ("marketing", "transactional"):
            n += 1
            rows.append(f'KM{n:04d},{cid},{phone},sms,{category},opt_in,web_form,"{WEB_IN}",,'
                        "2024-06-01T00:00:00Z")  # fmt: skip
    for cid in ("K_WEB_OUT", "K_YES"):
        n += 1
        rows.append(f"KM{n:04d},{cid},{PEOPLE[cid]},sms,marketing,opt_out,account_settings,,,"
                    "2025-01-02T09:00:00Z")  # fmt: skip
    # the same instant: the opt-in carries the later id; the opt-out must still win
    rows.append(f"KM9001,K_TIE,{PEOPLE['K_TIE']},sms,marketing,opt_out,account_settings,,,"
                "2025-01-02T12:00:00Z")  # fmt: skip
    rows.append(f'KM9002,K_TIE,{PEOPLE["K_TIE"]},sms,marketing,opt_in,web_form,"{WEB_IN}",,'
                "2025-01-02T12:00:00Z")  # fmt: skip
    rows.append(f'KM9003,K_MOVED_IN,{NEW_NUMBERS["K_MOVED_IN"]},sms,marketing,opt_in,web_form,'
                f'"{WEB_IN}",,2025-01-02T12:00:00Z')  # fmt: skip
    return rows


def moved_customers() -> str:
    """The new numbers, as later versions of the customers (a file with updated_at)."""
    lines = [CUSTOMER_HEADER + ",updated_at"]
    for cid, phone in NEW_NUMBERS.items():
        lines.append(f"{cid},Ada,{phone},US,NY,America/New_York,en,2024-06-01T00:00:00Z,"
                     "2025-01-02T08:00:00Z")  # fmt: skip
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_marts_and_guardrails_read_one_consent_model(tmp_path):
    landing = tmp_path / "landing"
    # records change: the world's customers change numbers too, half of them opting in again
    simulate(landing, customers=200, start=date(2025, 1, 1), days=5, seed=5, changes=0.2)
    with open(landing / "customers" / "2025-01-01.csv", "a", encoding="utf-8") as f:
        for cid, phone in PEOPLE.items():
            f.write(f"{cid},Ada,{phone},US,NY,America/New_York,en,2024-06-01T00:00:00Z,\n")
    (landing / "customers" / "2025-01-02.moved.csv").write_text(moved_customers())
    with open(landing / "consent" / "2025-01-01.csv", "a", encoding="utf-8") as f:
        f.write("\n".join(consent_rows()) + "\n")
    warehouse = tmp_path / "w.duckdb"
    con = duckdb.connect(str(warehouse))
    ensure_schema(con)  # replies loaded from the receiver before the nightly build
    for i, (phone, action, at) in enumerate(REPLIES):
        when = datetime.fromisoformat(at)
        con.execute(
            """INSERT INTO sends.inbound BY NAME SELECT ? AS inbound_id, ? AS phone_e164,
                ? AS intent, ? AS action, false AS flagged, ? AS occurred_at,
                ? AS received_at, 'replies' AS file, ? AS line""",
            [f"R{i}", phone, action or "yes", action, when, when, i],
        )
    con.close()
    assert main(["run", "--landing", str(landing), "--as-of", AS_OF,
                 "--warehouse", str(warehouse)]) == 0  # fmt: skip
    con = duckdb.connect(str(warehouse))
    marts = dict(
        con.execute(
            "SELECT customer_id, sms_marketing_status FROM marts.dim_customers "
            "WHERE customer_id LIKE 'K\\_%' ESCAPE '\\'"
        ).fetchall()
    )
    assert marts == {
        "K_STOP": "opted_out",
        "K_RESTARTED": "opted_in",
        "K_WEB_OUT": "opted_out",
        "K_YES": "opted_out",
        "K_TIE": "opted_out",
        "K_QUIET": "opted_in",
        "K_MOVED": "never",  # the old number's opt-in does not follow it
        "K_MOVED_IN": "opted_in",
    }
    # every customer: the mart's SMS consent equals the guardrails' at the same moment
    con.execute("CREATE TEMP TABLE people AS SELECT customer_id, phone_e164 FROM "
                "marts.dim_customers")  # fmt: skip
    guardrails = {
        (c, k): a
        for c, k, a in con.execute(
            consent_sql("people", "$as_of"), {"as_of": datetime(2025, 1, 6)}
        ).fetchall()
    }
    status = {"opt_in": "opted_in", "opt_out": "opted_out"}
    disagree = [
        (c, k, s, guardrails.get((c, k)))
        for c, k, s in con.execute(
            "SELECT customer_id, category, status FROM marts.customer_consent WHERE channel = 'sms'"
        ).fetchall()
        if s != status.get(guardrails.get((c, k)), "never")
    ]
    assert len(guardrails) > 200 and disagree == []
