"""The link service under the issue's load on loopback, through `retentext links` as a
process: 10,000 taps from 50 concurrent clients, with unknown and malformed codes mixed in."""

from benchmarks.link_load import run

DEADLINE_S = 300  # a liveness bound on a loaded 2-core box; the figures are the benchmark's


def test_ten_thousand_clicks_from_fifty_clients_are_each_recorded_once(tmp_path):
    got = run(clicks=10_000, clients=50, codes=2_000, junk=500, work=tmp_path)
    assert got["answered_otherwise"] == []
    assert got["statuses"] == {302: 10_000, 404: 500, 400: 500}
    assert got["journaled"] == 10_000 and got["exactly_once"]
    assert got["loaded"] == 10_000 and got["quarantined"] == 0
    assert got["warehouse_rows"] == got["warehouse_distinct_click_ids"] == 10_000
    assert got["wall_s"] < DEADLINE_S
    print(f"link service: {got['requests_per_s']:.0f} requests/s, latency {got['latency_ms']}")
