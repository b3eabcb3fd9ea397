"""Simulated recipients tapping their links through the real link service: each message with
a link handed over is tapped by its recipient with the campaign's true click-through rate
(some twice), and a share of messages is opened by a chat app's link preview first, which the
measurement must not count. Reads the send ledger only; the clicks reach the warehouse the
way real ones do (the link service's journal, then ``retentext receipts``)."""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126 Mobile"
PREVIEW = "WhatsApp/2.24.10.79 A"


@dataclass(frozen=True)
class Tapped:
    messages: dict[str, int]  # per campaign: messages with a link
    people: dict[str, int]  # per campaign: messages a recipient tapped (once or more)
    unexpected: list[tuple[str, int]]  # (path, status) answers other than 302


def tap_links(con, port: int, link_base: str, ctr: Mapping[str, float], *, seed: int,
              repeat_share: float = 0.2, preview_share: float = 0.1, clients: int = 8,
              run_id: str | None = None) -> Tapped:  # fmt: skip
    """Tap the links of every handed-over message with a link (of send run ``run_id`` only,
    when given): with probability
    ``ctr[campaign]`` (0 for a campaign not named) the recipient taps, a ``repeat_share`` of
    them twice; independently a ``preview_share`` of messages get a link-preview fetch."""
    rows = con.execute("""SELECT campaign_id, link_code FROM sends.messages
        WHERE link_code IS NOT NULL AND handed_over_at IS NOT NULL
          AND run_id = coalesce(?, run_id)
        ORDER BY message_id""", [run_id]).fetchall()  # fmt: skip
    rng = np.random.default_rng(seed)
    p = np.array([ctr.get(c, 0.0) for c, _ in rows])
    tapped = rng.random(len(rows)) < p
    twice = tapped & (rng.random(len(rows)) < repeat_share)
    preview = rng.random(len(rows)) < preview_share
    path = urlsplit(link_base).path
    requests = [(f"{path}{code}", PREVIEW) for (_, code), pv in zip(rows, preview, strict=True)
                if pv]  # fmt: skip
    for (_, code), t, t2 in zip(rows, tapped, twice, strict=True):
        requests += [(f"{path}{code}", PHONE)] * (int(t) + int(t2))
    with ThreadPoolExecutor(clients) as pool:
        statuses = list(pool.map(lambda r: _get(port, *r), requests))
    messages, people = {}, {}
    for (campaign, _), t in zip(rows, tapped, strict=True):
        messages[campaign] = messages.get(campaign, 0) + 1
        people[campaign] = people.get(campaign, 0) + int(t)
    unexpected = [(r[0], s) for r, s in zip(requests, statuses, strict=True) if s != 302]
    return Tapped(messages, people, unexpected)


def _get(port: int, path: str, user_agent: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"User-Agent": user_agent})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()
