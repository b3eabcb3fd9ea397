"""Property tests: random worlds (regions and time zones across DST changes, consent histories
with opt-outs and replies at any moment, overlapping campaigns, caps, holdouts, run times
around the clock). After every send run the invariants are recomputed in plain Python, not by
the code under test:

- no message to a customer without consent for its category at the send moment, nor handed
  to the gateway without consent at the moment of hand-over (a STOP between decision and
  hand-over counts; START undoes only an opt-out by reply);
- no message outside the recipient's regional window, in every zone they may be in, at
  decision and at hand-over (zoneinfo + the rules files);
- no marketing cap broken (messages per customer in any trailing 24 h / 7 days);
- no message to a campaign holdout or (marketing) the global control (hashlib arms);
- every audience member has exactly one decision row with a reason; nobody else has one;
- at most one message per customer and per phone number per run.

``make test`` runs the default profile (200 worlds); ``make soak`` runs 10,000.
"""

from __future__ import annotations

import hashlib
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mini_warehouse import MiniWarehouse, campaign, program

from send_jobs.campaign_specs import RULES_DIR
from send_jobs.decide import decide
from send_jobs.deliver import deliver
from send_jobs.gateways import OutboxGateway
from send_jobs.ledger import ensure_schema

PLACES = [
    {"country": "US", "region": "NY", "time_zone": "America/New_York"},
    {"country": "US", "region": "FL", "time_zone": "America/New_York"},
    # several zones (customer_time_zones): the window must be open in all of them
    {
        "country": "US",
        "region": "FL",
        "time_zone": "America/Chicago",
        "zones": ("America/New_York", "America/Chicago"),
    },
    {
        "country": "US",
        "region": None,
        "time_zone": "America/Anchorage",
        "zones": ("America/Anchorage", "America/Adak"),
    },
    {
        "country": "AU",
        "region": None,
        "time_zone": "Australia/Sydney",
        "zones": ("Australia/Sydney", "Australia/Perth", "Indian/Cocos"),
    },
    {"country": "US", "region": "WA", "time_zone": "America/Los_Angeles"},
    {"country": "US", "region": "AZ", "time_zone": "America/Phoenix"},  # no DST
    {"country": "US", "region": "HI", "time_zone": "Pacific/Honolulu"},
    {"country": "CA", "region": "QC", "time_zone": "America/Toronto"},
    {"country": "FR", "region": None, "time_zone": "Europe/Paris"},
    {"country": "GB", "region": None, "time_zone": "Europe/London"},
    {"country": "DE", "region": None, "time_zone": "Europe/Berlin"},
]
# run times cluster around DST changes and a French holiday, at any minute of the day
ANCHORS = [
    datetime(2026, 3, 8), datetime(2026, 3, 29), datetime(2026, 7, 14),
    datetime(2026, 10, 25), datetime(2026, 11, 1), datetime(2026, 6, 7),
]  # fmt: skip
STAGES = ["new", "active", "at_risk", "lapsed"]
RULES = pd.read_csv(RULES_DIR / "quiet_hours.csv", dtype=str, keep_default_na=False)
HOLIDAYS = set(
    pd.read_csv(RULES_DIR / "public_holidays.csv").apply(lambda r: (r.country, r.date), axis=1)
)


@st.composite
def worlds(draw):
    anchor = draw(st.sampled_from(ANCHORS))
    minutes = st.integers(-3 * 24 * 60, 3 * 24 * 60)
    n = draw(st.integers(1, 7))
    customers = []
    for i in range(n):
        customers.append(
            {
                "id": f"C{i}",
                "place": draw(st.sampled_from(PLACES)),
                "phone": f"+1212555{draw(st.integers(0, n + 1)):04d}",  # shared numbers happen
                "stage": draw(st.sampled_from(STAGES)),
                # mostly subscribed long before, then changes at any moment around the runs
                "consent": [
                    (cat, "opt_in", -30 * 24 * 60)
                    for cat in ("marketing", "transactional")
                    if draw(st.integers(0, 9)) < 8
                ]
                + draw(
                    st.lists(
                        st.tuples(
                            st.sampled_from(["marketing", "transactional"]),
                            st.sampled_from(["opt_in", "opt_out"]),
                            minutes,
                        ),
                        max_size=3,
                    )
                ),
            }
        )
    replies = draw(
        st.lists(
            st.tuples(
                st.sampled_from([c["phone"] for c in customers]),
                st.sampled_from(["opt_out", "opt_in"]),
                minutes,
            ),
            max_size=3,
        )
    )
    camps = []
    for j in range(draw(st.integers(1, 4))):
        camps.append(
            {
                "id": f"k{j}",
                "category": draw(st.sampled_from(["marketing", "marketing", "transactional"])),
                "priority": draw(st.integers(1, 5)),
                "holdout_share": draw(st.sampled_from([0.0, 0.1, 0.5])),
                "cooldown_days": draw(st.sampled_from([None, 0, 1, 7])),
                "stages": draw(st.lists(st.sampled_from(STAGES), min_size=1, unique=True)),
            }
        )
    runs = sorted(draw(st.lists(minutes, min_size=1, max_size=3, unique=True)))
    return {
        "anchor": anchor,
        "customers": customers,
        "replies": replies,
        "campaigns": camps,
        "global_control": draw(st.sampled_from([0.0, 0.05, 0.3])),
        "caps": (draw(st.integers(1, 2)), draw(st.integers(2, 4))),
        "runs": [anchor + timedelta(minutes=m) for m in runs],
        "delays": [draw(st.integers(0, 90)) for _ in runs],  # minutes until hand-over
    }


def _hash01(text: str) -> float:
    return int(hashlib.md5(text.encode()).hexdigest()[:13], 16) / 16**13


def consent_at(world, customer, category, t: datetime) -> bool:
    """The latest event at or before t; an opt-out wins a tie. A STOP reply covers both
    categories; a START reply only undoes an opt-out by reply: it counts where the latest
    warehouse event before it is an opt-in."""
    warehouse = [
        (world["anchor"] + timedelta(minutes=m), action == "opt_out", action)
        for cat, action, m in customer["consent"]
        if cat == category
    ]
    events = [e for e in warehouse if e[0] <= t]
    for phone, action, m in world["replies"]:
        at = world["anchor"] + timedelta(minutes=m)
        if phone != customer["phone"] or at > t:
            continue
        before = [e for e in warehouse if e[0] <= at]
        if action == "opt_out" or (before and max(before)[2] == "opt_in"):
            events.append((at, action == "opt_out", action))
    return bool(events) and max(events)[2] == "opt_in"


def window_open(place, t: datetime) -> bool:
    """Open in every zone the customer may be in."""
    zones = place.get("zones") or (place["time_zone"],)
    return all(window_open_in(place, zone, t) for zone in zones)


def window_open_in(place, zone: str, t: datetime) -> bool:
    local = t.replace(tzinfo=ZoneInfo("UTC")).astimezone(ZoneInfo(zone))
    region = place["region"] or ""
    for country, reg in ((place["country"], region), (place["country"], "*"), ("*", "*")):
        rule = RULES[(RULES.country == country) & (RULES.region == reg)]
        if not rule.empty:
            rule = rule.iloc[0]
            break
    hhmm = local.strftime("%H:%M")
    return (
        rule.window_start <= hhmm < rule.window_end
        and local.strftime("%a") not in rule.closed_weekdays
        and not (
            rule.closed_on_public_holidays == "true"
            and (place["country"], local.date().isoformat()) in HOLIDAYS
        )
    )


def build(world):
    w = MiniWarehouse(":memory:")
    for c in world["customers"]:
        w.customer(
            c["id"], phone=c["phone"], where=c["place"], lifecycle_stage=c["stage"], opted_in={}
        )
        w.zones(c["id"], *c["place"].get("zones", ()))
        for category, action, m in c["consent"]:
            at = world["anchor"] + timedelta(minutes=m)
            w.consent(c["id"], category, action, at.isoformat() + "Z")
    ensure_schema(w.con)
    for phone, action, m in world["replies"]:
        at = world["anchor"] + timedelta(minutes=m)
        w.reply(phone, action, at.isoformat() + "Z")
    prog = program(
        global_control_share=world["global_control"],
        cap_24h=world["caps"][0],
        cap_7d=world["caps"][1],
    )
    camps = [
        campaign(
            prog,
            id=k["id"],
            category=k["category"],
            priority=k["priority"],
            holdout_share=k["holdout_share"],
            cooldown_days=k["cooldown_days"],
            audience=[{"field": "lifecycle_stage", "op": "in", "value": k["stages"]}],
        )
        for k in world["campaigns"]
    ]
    return w, prog, camps


@pytest.mark.slow
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_send_runs_never_break_the_invariants(world):
    with tempfile.TemporaryDirectory() as outbox:  # one per example, removed after it
        _runs_keep_the_invariants(world, Path(outbox))


def _runs_keep_the_invariants(world, outbox: Path) -> None:
    w, prog, camps = build(world)
    by_id = {c["id"]: c for c in world["customers"]}
    kinds = {k["id"]: k for k in world["campaigns"]}
    salt = prog.assignment_salt
    for t, delay in zip(world["runs"], world["delays"], strict=True):
        started = w.con.execute("SELECT now()::TIMESTAMP").fetchone()[0]
        run = decide(w.con, prog, camps, t.replace(tzinfo=ZoneInfo("UTC")))
        decisions = w.con.execute(
            "SELECT campaign_id, customer_id, outcome, reason FROM sends.decisions "
            "WHERE run_id = ?",
            [run.run_id],
        ).fetchall()
        expected = {
            (k["id"], c["id"])
            for k in world["campaigns"]
            for c in world["customers"]
            if c["stage"] in k["stages"]
        }
        keys = [(d[0], d[1]) for d in decisions]
        assert len(keys) == len(set(keys)) and set(keys) == expected
        assert all(d[3] for d in decisions)
        for outcome in {d[2] for d in decisions}:
            event(
                f"a run with outcome {outcome}"
            )  # coverage, shown by --hypothesis-show-statistics
        new = w.con.execute(
            "SELECT campaign_id, customer_id, category, phone_e164 FROM sends.messages "
            "WHERE run_id = ?",
            [run.run_id],
        ).fetchall()
        assert len({m[1] for m in new}) == len(new)
        assert len({m[3] for m in new}) == len(new)
        for campaign_id, customer_id, category, _ in new:
            customer = by_id[customer_id]
            assert consent_at(world, customer, category, t), (customer_id, category, t)
            assert window_open(customer["place"], t), (customer_id, t)
            if kinds[campaign_id]["category"] == "marketing":
                assert _hash01(f"{salt}:global:{customer_id}") >= prog.global_control_share
            assert (
                _hash01(f"{salt}:{campaign_id}:{customer_id}")
                >= (kinds[campaign_id]["holdout_share"])
            )
        # hand-over some minutes later, judged again at that moment (a clock passed in)
        handover = t + timedelta(minutes=delay)
        deliver(w.con, prog, t.replace(tzinfo=ZoneInfo("UTC")), OutboxGateway(outbox),
                clock=lambda at=handover: at.replace(tzinfo=ZoneInfo("UTC")))  # fmt: skip
        handed = w.con.execute(
            """SELECT m.customer_id, m.category FROM sends.messages AS m
            JOIN sends.message_events AS e USING (message_id)
            WHERE e.status = 'submitted' AND e.changed_at >= ?""",
            [started],
        ).fetchall()
        for customer_id, category in handed:
            customer = by_id[customer_id]
            assert consent_at(world, customer, category, handover), (customer_id, handover)
            assert window_open(customer["place"], handover), (customer_id, handover)
        if handed:
            event("a hand-over after the decision")
    # caps over the whole history, from the ledger's sends alone
    sent = w.con.execute(
        "SELECT customer_id, as_of FROM sends.messages WHERE category = 'marketing'"
    ).fetchall()
    for customer_id, at in sent:
        mine = [a for c, a in sent if c == customer_id]
        assert sum(at - timedelta(hours=24) < a <= at for a in mine) <= prog.cap_24h
        assert sum(at - timedelta(days=7) < a <= at for a in mine) <= prog.cap_7d
