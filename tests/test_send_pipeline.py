"""`retentext send` on a warehouse built by the real pipeline: the dry run's QA, the outbox
gateway, and the guardrails re-checked independently in Python on every message."""

import hashlib
import json
import shutil
from datetime import datetime
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd
import pytest
from conftest import SEND_AS_OF

from orchestration.cli import main
from send_jobs.campaign_specs import RULES_DIR

AS_OF = SEND_AS_OF


@pytest.fixture
def warehouse(send_warehouse, tmp_path, monkeypatch):
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(send_warehouse, path)
    monkeypatch.setenv("RETENTEXT_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("RETENTEXT_LANDING", str(tmp_path / "landing"))
    return path


def test_dry_run_writes_decisions_and_qa_and_sends_nothing(warehouse, capsys):
    assert main(["send", "--as-of", AS_OF, "--warehouse", str(warehouse), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "dry run: decisions written, nothing queued or sent" in out.err
    for title in ("fallback use", "encoding and segments", "to send"):
        assert title in out.err
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == 0
    outcomes = dict(
        con.execute("SELECT outcome, count(*) FROM sends.decisions GROUP BY 1").fetchall()
    )
    assert outcomes.get("sent", 0) > 50 and outcomes.get("held_out", 0) > 0
    # every rendered message carries the brand and fits its campaign's segment limit
    bad = con.execute("""SELECT count(*) FROM sends.decisions WHERE outcome IN ('sent',
        'held_out') AND (NOT starts_with(rendered_text, 'Northwind Goods: ') OR segments > 2
        OR estimated_cost <= 0)""").fetchone()[0]
    assert bad == 0
    assert not (warehouse.parent / "outbox").exists()


def test_outbox_send_obeys_every_guardrail_checked_independently(warehouse, tmp_path):
    assert (
        main(["send", "--as-of", AS_OF, "--handover-at", AS_OF, "--warehouse", str(warehouse)]) == 0
    )
    con = duckdb.connect(str(warehouse))
    messages = con.execute("SELECT * FROM sends.messages").df()
    assert len(messages) > 50
    assert set(messages.status) == {"submitted"}
    # one candidate, one decision; decisions and messages agree
    d = con.execute("SELECT * FROM sends.decisions").df()
    assert not d.duplicated(["campaign_id", "customer_id"]).any()
    sent = d[d.outcome == "sent"]
    assert sorted(sent.message_id) == sorted(messages.message_id)
    assert (d[d.outcome != "sent"].arm.isin(["treatment", "holdout", "global_control"])).all()
    assert not messages.customer_id.duplicated().any()  # one message per customer per run
    assert not messages.phone_e164.duplicated().any()
    # nobody in a holdout or the global control is texted
    arms = d.set_index(["campaign_id", "customer_id"]).arm
    texted = messages.set_index(["campaign_id", "customer_id"]).index
    assert set(arms.loc[texted]) == {"treatment"}

    # consent recomputed with pandas from the raw consent log
    consent = con.execute(
        "SELECT customer_id, category, action, occurred_at FROM raw.consent "
        "WHERE channel = 'sms' AND occurred_at <= ?",
        [datetime.fromisoformat(AS_OF.replace("Z", ""))],
    ).df()
    consent["opt_out_first"] = consent.action == "opt_out"
    latest = (
        consent.sort_values(["occurred_at", "opt_out_first"])
        .groupby(["customer_id", "category"])
        .action.last()
    )
    for cid, category in zip(messages.customer_id, messages.category, strict=True):
        assert latest.get((cid, category)) == "opt_in", (cid, category)

    # quiet hours recomputed with zoneinfo from the rules files
    rules = pd.read_csv(RULES_DIR / "quiet_hours.csv", dtype=str, keep_default_na=False)
    holidays = set(pd.read_csv(RULES_DIR / "public_holidays.csv").apply(
        lambda r: (r.country, r.date), axis=1))  # fmt: skip
    when = datetime.fromisoformat(AS_OF.replace("Z", "+00:00"))
    for m in messages.itertuples():
        local = when.astimezone(ZoneInfo(m.time_zone))
        match = rules[(rules.country == m.country) & (rules.region == (m.region or ""))]
        if match.empty:
            match = rules[(rules.country == m.country) & (rules.region == "*")]
        if match.empty:
            match = rules[(rules.country == "*")]
        rule = match.iloc[0]
        hhmm = local.strftime("%H:%M")
        assert rule.window_start <= hhmm < rule.window_end, (m.customer_id, hhmm)
        assert local.strftime("%a") not in rule.closed_weekdays
        if rule.closed_on_public_holidays == "true":
            assert (m.country, local.date().isoformat()) not in holidays

    # the outbox batch is complete and its manifest matches
    [manifest_path] = (tmp_path / "outbox").glob("*.manifest.json")
    manifest = json.loads(manifest_path.read_text())
    data = (tmp_path / "outbox" / manifest["file"]).read_bytes()
    assert manifest["count"] == len(messages) == len(data.splitlines())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    lines = [json.loads(x) for x in data.splitlines()]
    assert {x["message_id"] for x in lines} == set(messages.message_id)
    con.close()

    # the same run again sends nothing new; a later run in the same day adds nothing twice
    assert (
        main(["send", "--as-of", AS_OF, "--handover-at", AS_OF, "--warehouse", str(warehouse)]) == 0
    )
    assert len(list((tmp_path / "outbox").glob("*.manifest.json"))) == 1
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM sends.messages").fetchone()[0] == len(messages)


def test_an_interrupted_outbox_batch_is_written_once(warehouse, tmp_path):
    from send_jobs.campaign_specs import load_campaigns, load_program
    from send_jobs.decide import decide
    from send_jobs.deliver import deliver
    from send_jobs.gateways import OutboxGateway

    class Crash(OutboxGateway):
        def submit(self, batch, batch_id, clock):  # dies after a partial file, before the manifest
            (self.folder / f"{batch_id}.jsonl.tmp").parent.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{batch_id}.jsonl.tmp").write_text('{"message_id": "cut')
            raise KeyboardInterrupt

    program = load_program()
    con = duckdb.connect(str(warehouse))
    as_of = datetime.fromisoformat(AS_OF.replace("Z", "+00:00"))
    run = decide(con, program, load_campaigns(program=program), as_of)
    with pytest.raises(KeyboardInterrupt):
        deliver(con, program, as_of, Crash(tmp_path / "outbox"))
    assert con.execute("SELECT DISTINCT status FROM sends.messages").fetchall() == [("submitting",)]
    done = deliver(con, program, as_of, OutboxGateway(tmp_path / "outbox"))
    assert done.counts["requeued"] == run.counts["sent"] == done.counts["submitted"]
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert len(files) == 2 and not any(f.endswith(".tmp") for f in files)
    assert deliver(con, program, as_of, OutboxGateway(tmp_path / "outbox")).counts == {
        "expired": 0,
        "cancelled": 0,
        "waiting_for_window": 0,
        "handed_over": 0,
    }


def test_the_shops_own_campaign_folder_is_used(warehouse, tmp_path, monkeypatch):
    from send_jobs.campaign_specs import CAMPAIGNS_DIR

    mine = tmp_path / "campaigns"
    mine.mkdir()
    text = (CAMPAIGNS_DIR / "winback.yaml").read_text()
    (mine / "lapsed.yaml").write_text(text.replace("id: winback", "id: lapsed_shop"))
    monkeypatch.setenv("RETENTEXT_CAMPAIGNS", str(mine))
    assert main(["send", "--as-of", AS_OF, "--warehouse", str(warehouse), "--dry-run"]) == 0
    con = duckdb.connect(str(warehouse), read_only=True)
    assert {r[0] for r in con.execute("SELECT DISTINCT campaign_id FROM sends.decisions")
            .fetchall()} == {"lapsed_shop"}  # fmt: skip
