"""Tracked short links: keyed codes, destinations with UTM, the registry written before a
hand-over, the link service (302, 404, 400, clicks journaled once, bots told apart), clicks
loaded into the warehouse, and the audience fields they feed."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from mini_warehouse import MiniWarehouse, campaign, decided_customers, program, utc

from send_jobs import receipts
from send_jobs.campaign_specs import CampaignError
from send_jobs.decide import decide
from send_jobs.deliver import LinkRegistryError, deliver
from send_jobs.gateways import OutboxGateway
from send_jobs.link_service import make_server, user_agent_class
from send_jobs.links import destination
from send_jobs.receiver import serving

AT = "2026-06-10T15:00:00Z"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile"
NO_CONTROL = {"global_control_share": 0.0}


def base62(digest_hex: str) -> str:
    """The first 64 bits of a hex digest as 11 base-62 digits, least significant first (an
    independent reading of the code's definition in send_jobs.links)."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int(digest_hex[:16], 16)
    return "".join(alphabet[(number // 62**i) % 62] for i in range(11))


def sent(tmp_path, n: int = 5, **campaign_fields):
    """A warehouse with n customers texted by one campaign through the outbox, links
    registered under tmp_path/links."""
    tmp_path.mkdir(exist_ok=True)
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(n):
        w.customer(f"C{i}")
    prog = program(**NO_CONTROL)
    decide(w.con, prog, [campaign(prog, **campaign_fields)], utc(AT))
    done = deliver(w.con, prog, utc(AT), OutboxGateway(tmp_path / "out"), links=tmp_path / "links")
    return w, prog, done


def link_service(tmp_path, link_base="https://nwg.example/r/"):
    return serving(make_server(0, tmp_path / "links", tmp_path / "gateway", link_base))


def request(server, path: str, method: str = "GET", user_agent: str | None = PHONE_UA):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    headers = {"User-Agent": user_agent} if user_agent else {}
    conn.request(method, path, headers=headers)
    answer = conn.getresponse()
    body = answer.read()
    conn.close()
    return answer.status, answer.getheader("Location"), body


def journaled(tmp_path) -> list[dict]:
    return [json.loads(line) for f in sorted((tmp_path / "gateway" / "clicks").glob("*.jsonl"))
            for line in f.read_text().splitlines()]  # fmt: skip


def test_a_code_is_the_keyed_hash_of_the_message_in_base62(tmp_path):
    w, _, _ = sent(tmp_path, n=200)
    secret = w.con.execute("SELECT secret FROM sends.link_secret").fetchone()[0]
    assert len(secret) == 64
    rows = w.con.execute("SELECT idempotency_key, link_code, text FROM sends.messages").fetchall()
    assert len(rows) == 200
    for key, code, text in rows:
        digest = hashlib.sha256(f"{secret}:{key}".encode()).hexdigest()
        assert code == base62(digest) and code.isalnum() and code.isascii()
        assert f"https://nwg.example/r/{code} " in text
        assert code not in hashlib.md5(key.encode()).hexdigest()  # not the message id's hash
    assert len({code for _, code, _ in rows}) == 200
    # another warehouse (another secret) gives the same messages other codes
    other, _, _ = sent(tmp_path / "other", n=200)
    theirs = dict(
        other.con.execute("SELECT idempotency_key, link_code FROM sends.messages").fetchall()
    )
    assert not {code for _, code, _ in rows} & set(theirs.values())


def test_the_destination_carries_utm_and_keeps_the_shops_own_parameters():
    url = destination("https://shop.example/refill?size=1kg&utm_source=newsletter", "refill", "a")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "shop.example", "/refill")
    assert parse_qs(parts.query) == {
        "size": ["1kg"], "utm_source": ["newsletter"], "utm_medium": ["sms"],
        "utm_campaign": ["refill"], "utm_content": ["a"],
    }  # fmt: skip


def test_a_campaigns_link_must_be_a_url():
    prog = program()
    with pytest.raises(CampaignError, match="link: must be an http"):
        campaign(prog, link="shop.example/refill")
    assert campaign(prog, link="https://shop.example/refill").link == "https://shop.example/refill"


def test_every_handed_over_link_is_registered_with_its_destination(tmp_path):
    w, _, done = sent(tmp_path, n=7, link="https://shop.example/new")
    assert done.counts["handed_over"] == 7 and done.counts["links_registered"] == 7
    registry = [json.loads(line) for f in (tmp_path / "links").glob("*/*.jsonl")
                for line in f.read_text().splitlines()]  # fmt: skip
    messages = w.con.execute("SELECT link_code, message_id, campaign_id FROM sends.messages")
    assert sorted((r["code"], r["message_id"], r["campaign_id"]) for r in registry) == sorted(
        messages.fetchall()
    )
    assert {r["url"] for r in registry} == {
        "https://shop.example/new?utm_source=retentext&utm_medium=sms&utm_campaign=promo"
        "&utm_content=v1"
    }
    assert not list((tmp_path / "links").glob("*/.*.tmp"))


def test_a_message_without_a_link_registers_nothing(tmp_path):
    w, _, done = sent(tmp_path, n=3, variants=[{"id": "v1", "template": "Hi {{ first_name }}"}])
    assert done.counts["handed_over"] == 3 and done.counts.get("links_registered", 0) == 0
    assert w.con.execute("SELECT count(link_code) FROM sends.messages").fetchone()[0] == 0


def test_no_hand_over_when_the_registry_cannot_be_written(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1")
    prog = program(**NO_CONTROL)
    decide(w.con, prog, [campaign(prog)], utc(AT))
    (tmp_path / "links").write_text("a file where the registry folder should be")
    with pytest.raises(LinkRegistryError, match="nothing more was handed over"):
        deliver(w.con, prog, utc(AT), OutboxGateway(tmp_path / "out"), links=tmp_path / "links")
    assert w.con.execute("SELECT status FROM sends.messages").fetchall() == [("queued",)]
    assert not list((tmp_path / "out").glob("**/*.jsonl"))
    (tmp_path / "links").unlink()
    done = deliver(w.con, prog, utc(AT), OutboxGateway(tmp_path / "out"), links=tmp_path / "links")
    assert done.counts["handed_over"] == 1 and done.counts["links_registered"] == 1


def test_the_service_redirects_records_each_click_and_refuses_the_rest(tmp_path):
    w, _, _ = sent(tmp_path, n=3)
    codes = dict(w.con.execute("SELECT link_code, link_url FROM sends.messages").fetchall())
    first, second, third = sorted(codes)
    with link_service(tmp_path) as server:
        assert request(server, f"/r/{first}")[:2] == (302, codes[first])
        assert request(server, f"/r/{first}")[0] == 302  # a second tap: a second click
        assert request(server, f"/r/{second}", user_agent="WhatsApp/2.23.20.0")[0] == 302
        assert request(server, f"/r/{third}", method="HEAD")[:2] == (302, codes[third])
        unknown = request(server, "/r/" + ("Z" if first[0] != "Z" else "Y") + first[1:])
        assert unknown == (404, None, b"not found\n")
        assert request(server, "/r/short")[0] == 400
        assert request(server, "/r/" + first[:10] + "!")[0] == 400
        assert request(server, "/elsewhere")[0] == 404
    clicks = journaled(tmp_path)
    assert [(c["code"], c["ua_class"]) for c in clicks] == [
        (first, "mobile"),
        (first, "mobile"),
        (second, "preview"),
    ]  # HEAD, unknown and malformed codes are not clicks
    assert len({c["click_id"] for c in clicks}) == 3
    counts = receipts.ingest(w.con, tmp_path / "gateway")
    assert counts["clicks"] == 3 and counts["quarantined"] == 0
    again = receipts.ingest(w.con, tmp_path / "gateway")
    assert again["clicks"] == 0 and again["lines"] == 0
    loaded = w.con.execute(
        """SELECT c.code, c.customer_id = m.customer_id, c.campaign_id FROM sends.clicks AS c
           JOIN sends.messages AS m USING (message_id) ORDER BY c.clicked_at"""
    ).fetchall()
    assert loaded == [(first, True, "promo"), (first, True, "promo"), (second, True, "promo")]


def test_links_registered_after_the_service_started_resolve_at_once(tmp_path):
    """Many first taps at once on links the service has not read yet: each resolves (one
    request reads the new file while the others wait for it)."""
    from concurrent.futures import ThreadPoolExecutor

    w = MiniWarehouse(tmp_path / "w.duckdb")
    for i in range(40):
        w.customer(f"C{i}")
    prog = program(**NO_CONTROL)
    with link_service(tmp_path) as server:
        decide(w.con, prog, [campaign(prog)], utc(AT))
        deliver(w.con, prog, utc(AT), OutboxGateway(tmp_path / "out"), links=tmp_path / "links")
        codes = dict(w.con.execute("SELECT link_code, link_url FROM sends.messages").fetchall())
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda c: request(server, f"/r/{c}")[:2], codes))
    assert answers == [(302, url) for url in codes.values()]


def test_forged_and_broken_click_lines_are_quarantined_with_a_reason(tmp_path):
    w, _, _ = sent(tmp_path, n=1)
    [(mid, code)] = w.con.execute("SELECT message_id, link_code FROM sends.messages").fetchall()
    folder = tmp_path / "gateway" / "clicks"
    folder.mkdir(parents=True)
    line = {"click_id": "a" * 32, "code": code, "message_id": mid, "ua_class": "mobile",
            "received_at": "2026-06-10T16:00:00.000000Z"}  # fmt: skip
    rows = [line, {**line, "click_id": "b" * 32, "code": "00000000000"},
            {**line, "click_id": "c" * 32, "message_id": "f" * 16},
            {**line, "click_id": "d" * 32, "ua_class": "robot"}]  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in rows) + "{not json}\n"
    (folder / "2026-06-10.jsonl").write_text(text)
    counts = receipts.ingest(w.con, tmp_path / "gateway")
    assert (counts["lines"], counts["clicks"], counts["quarantined"]) == (5, 1, 4)
    reasons = [r[0] for r in w.con.execute(
        "SELECT reason FROM sends.gateway_quarantine ORDER BY line").fetchall()]  # fmt: skip
    assert reasons == ["code is not the message's link", "unknown message id",
                       "unknown ua_class", "not a JSON object"]  # fmt: skip


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        (PHONE_UA, "mobile"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126 Mobile", "mobile"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126", "desktop"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "preview"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "preview"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "preview"),
        ("TelegramBot (like TwitterBot)", "preview"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_user_agent_classes(agent, kind):
    assert user_agent_class(agent) == kind


def test_clicked_recently_and_not_bought_is_an_audience(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    clicks = {  # customer: (last click, last order)
        "CLICKED_2D": ("2026-06-08 15:00", "2026-05-01 10:00"),
        "CLICKED_8D": ("2026-06-02 14:00", "2026-05-01 10:00"),
        "CLICKED_THEN_BOUGHT": ("2026-06-08 15:00", "2026-06-09 10:00"),
        "NEVER_CLICKED": (None, "2026-05-01 10:00"),
    }
    for cid, (clicked, ordered) in clicks.items():
        w.customer(cid)
        w.con.execute(
            "UPDATE marts.dim_customers SET last_sms_click_at = ?, last_order_at = ? "
            "WHERE customer_id = ?",
            [clicked, ordered, cid],
        )
    prog = program(**NO_CONTROL)
    nudge = campaign(prog, id="nudge", audience=[
        {"field": "days_since_sms_click", "op": "lte", "value": 7},
        {"field": "ordered_since_sms_click", "op": "eq", "value": False},
    ])  # fmt: skip
    run = decide(w.con, prog, [nudge], utc(AT))
    picked = decided_customers(w.con, run.run_id)
    assert picked == {"CLICKED_2D"}
    with pytest.raises(CampaignError, match="takes true or false"):
        campaign(prog, audience=[{"field": "ordered_since_sms_click", "op": "eq", "value": 0}])


def test_the_service_answers_under_the_configured_base_path(tmp_path):
    w, _, _ = sent(tmp_path, n=1)
    [(code, url)] = w.con.execute("SELECT link_code, link_url FROM sends.messages").fetchall()
    with link_service(tmp_path, link_base="https://go.shop.example/t/") as server:
        assert request(server, f"/t/{code}")[:2] == (302, url)
        assert request(server, f"/r/{code}")[0] == 404
    assert Path(tmp_path / "gateway" / "clicks").exists()


def test_clicks_become_explicit_sms_click_events_and_a_customer_field(send_warehouse, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    """The documented path: `retentext send` registers the links, the link service records
    taps, `retentext receipts` loads them and `retentext run` builds them into the marts."""
    import shutil
    from datetime import datetime

    import duckdb
    from conftest import SEND_AS_OF

    from orchestration.cli import main

    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(send_warehouse, warehouse)
    landing = tmp_path / "landing"
    shutil.copytree(send_warehouse.parent / "landing", landing)
    monkeypatch.setenv("RETENTEXT_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("RETENTEXT_LANDING", str(landing))
    monkeypatch.setenv("RETENTEXT_LINKS", str(tmp_path / "links"))
    args = ["--warehouse", str(warehouse)]
    assert main(["send", "--as-of", SEND_AS_OF, "--handover-at", SEND_AS_OF, *args]) == 0
    con = duckdb.connect(str(warehouse))
    messages = con.execute("""SELECT link_code, customer_id FROM sends.messages
        WHERE link_code IS NOT NULL ORDER BY message_id LIMIT 3""").fetchall()
    con.close()
    assert len(messages) == 3
    tapped = datetime.fromisoformat("2025-05-31T16:30:00+00:00")
    server = make_server(0, tmp_path / "links", landing / "gateway", "https://nwg.example/r/",
                         clock=lambda: tapped)  # fmt: skip
    with serving(server):
        assert request(server, f"/r/{messages[0][0]}")[0] == 302
        assert request(server, f"/r/{messages[1][0]}", user_agent="Twitterbot/1.0")[0] == 302
    assert main(["receipts", *args]) == 0
    assert main(["run", "--landing", str(landing), "--as-of", "2025-05-31T18:00:00Z", *args]) == 0
    con = duckdb.connect(str(warehouse), read_only=True)
    events = con.execute("""SELECT customer_id, provenance, channel, occurred_at,
            properties::JSON->>'ua_class' FROM marts.fct_events
        WHERE event_id LIKE 'click:%'""").fetchall()
    assert events == [(messages[0][1], "explicit", "sms", tapped.replace(tzinfo=None), "mobile")]
    last = dict(con.execute("""SELECT customer_id, last_sms_click_at FROM marts.dim_customers
        WHERE customer_id IN (?, ?)""", [messages[0][1], messages[1][1]]).fetchall())  # fmt: skip
    assert last[messages[0][1]] == tapped.replace(tzinfo=None)
    assert last[messages[1][1]] != tapped.replace(tzinfo=None)  # a preview bot is nobody's tap


def test_click_through_per_campaign_and_variant_counts_people_once(tmp_path):
    from experiments.clicks import measure_clicks

    w, prog, _ = sent(tmp_path, n=40, variants=[
        {"id": "a", "template": "Hi {{ first_name }}: {{ link }}"},
        {"id": "b", "template": "{{ first_name }}, look: {{ link }}"},
    ])  # fmt: skip
    rows = w.con.execute("""SELECT m.link_code, d.variant FROM sends.messages AS m
        JOIN sends.decisions AS d USING (message_id) ORDER BY m.message_id""").fetchall()
    variant = dict(rows)
    codes = [code for code, _ in rows]
    people, twice, bot_only, late = codes[:9], codes[:3], codes[9:11], codes[11]
    at = [utc("2026-06-10T16:00:00Z")]
    server = make_server(0, tmp_path / "links", tmp_path / "gateway", prog.link_base,
                         clock=lambda: at[0])  # fmt: skip
    with serving(server):
        for code in people + twice:
            assert request(server, f"/r/{code}")[0] == 302
        for code in bot_only + people[:1]:
            assert request(server, f"/r/{code}", user_agent="facebookexternalhit/1.1")[0] == 302
        at[0] = utc("2026-06-12T10:00:00Z")  # after the measurement's as_of
        assert request(server, f"/r/{late}")[0] == 302
    receipts.ingest(w.con, tmp_path / "gateway")
    table = measure_clicks(w.con, utc("2026-06-11T15:00:00Z")).set_index("variant")
    expected = {"all": (40, 9, 12, 2)}
    for v in ("a", "b"):
        mine = {c for c, vv in variant.items() if vv == v}
        taps = sum(c in mine for c in people + twice)
        expected[v] = (len(mine), len(mine & set(people)), taps, len(mine & set(bot_only)))
    assert {v: (r.messages, r.clicked, r.clicks, r.preview_only) for v, r in table.iterrows()} == (
        expected
    )
    assert table.loc["all", "ctr"] == pytest.approx(9 / 40)
    assert table.loc["all", "ctr_ci_low"] < 9 / 40 < table.loc["all", "ctr_ci_high"]
    stored = w.con.execute("SELECT count(*) FROM experiments.click_through_history").fetchone()[0]
    assert stored == 3


def test_closed_loop_the_measured_click_through_covers_the_true_rate(tmp_path):
    """Simulated recipients tap their links through the link service with a known rate per
    campaign (some twice, some previews by a chat app first); the measurement counts exactly
    the people who tapped, and its intervals cover the true rates."""
    from experiments.clicks import measure_clicks
    from simulator.clicks import tap_links

    truth = {"bronze": 0.03, "silver": 0.08, "gold": 0.15, "platinum": 0.30}
    w = MiniWarehouse(tmp_path / "w.duckdb")
    for tier in truth:
        for i in range(600):
            w.customer(f"{tier}-{i}", loyalty_tier=tier)
    prog = program(**NO_CONTROL)
    camps = [campaign(prog, id=f"for_{tier}", holdout_share=0.1,
                      audience=[{"field": "loyalty_tier", "op": "eq", "value": tier}])
             for tier in truth]  # fmt: skip
    decide(w.con, prog, camps, utc(AT))
    deliver(w.con, prog, utc(AT), OutboxGateway(tmp_path / "out"), links=tmp_path / "links")
    tapped_at = utc("2026-06-10T18:00:00Z")
    server = make_server(0, tmp_path / "links", tmp_path / "gateway", prog.link_base,
                         clock=lambda: tapped_at)  # fmt: skip
    with serving(server):
        ctr = {f"for_{tier}": rate for tier, rate in truth.items()}
        tapped = tap_links(w.con, server.server_address[1], prog.link_base, ctr, seed=11)
    assert tapped.unexpected == []
    receipts.ingest(w.con, tmp_path / "gateway")
    table = measure_clicks(w.con, utc("2026-06-11T15:00:00Z")).set_index("campaign_id")
    for tier, rate in truth.items():
        row = table.loc[f"for_{tier}"]
        assert row.messages == tapped.messages[f"for_{tier}"] > 500  # the holdout is not texted
        assert row.clicked == tapped.people[f"for_{tier}"]
        assert row.ctr_ci_low <= rate <= row.ctr_ci_high, (tier, row.ctr, rate)
        assert row.ctr_seq_ci_low <= rate <= row.ctr_seq_ci_high
        assert row.preview_only > 0  # previews were fetched and were not counted


def test_the_links_length_counts_in_the_segment_qa(tmp_path):
    w = MiniWarehouse(tmp_path / "w.duckdb")
    w.customer("C1")
    text = (
        "Your order is ready for collection at the counter, bring the code we emailed you"
        + "!" * 20
    )
    for base, outcome, reason in [
        ("https://nwg.example/r/", "sent", "sent"),  # 17 + 100 + 1 + 32 = 150 characters
        ("https://links.northwind-goods-online-store.example/r/", "suppressed",
         "qa: 2 segments exceed the campaign maximum of 1"),  # 182 characters
    ]:  # fmt: skip
        prog = program(**NO_CONTROL, link_base=base)
        short = campaign(prog, id="ready", category="transactional", max_segments=1,
                         variants=[{"id": "v1", "template": text + " {{ link }}"}])  # fmt: skip
        run = decide(w.con, prog, [short], utc(AT), dry_run=True)
        got = w.con.execute("SELECT outcome, reason, length(rendered_text) FROM sends.decisions "
                            "WHERE run_id = ?", [run.run_id]).fetchone()  # fmt: skip
        assert got[:2] == (outcome, reason)
        w.con.execute("DELETE FROM sends.decisions")
        w.con.execute("DELETE FROM sends.runs")
