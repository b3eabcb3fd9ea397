"""Simulated recipients answering the questions our texts ask, through the real receiver: of
the messages of a send run whose campaign has reply options, a share replies with each option
word, a share writes something no option explains, and the rest stay silent. Reads the send
ledger only; the replies reach the warehouse the way real ones do (the receiver's journal,
then ``retentext receipts``)."""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from urllib.parse import urlencode

import numpy as np

FREE_TEXT = ("Can I bring a friend?", "What time do you open?", "Thanks!")


def answer_questions(con, port: int, secret: str, shares: Mapping[str, float], *, seed: int,
                     run_id: str, free_text_share: float = 0.05) -> dict[str, int]:  # fmt: skip
    """Reply to the questions handed over in ``run_id``: ``shares`` maps a reply word to the
    share of recipients who send it; returns how many replies of each kind were sent."""
    phones = [p for (p,) in con.execute("""SELECT m.phone_e164 FROM sends.messages AS m
        WHERE m.run_id = ? AND m.handed_over_at IS NOT NULL
          AND m.campaign_id IN (SELECT campaign_id FROM sends.reply_options)
        ORDER BY m.message_id""", [run_id]).fetchall()]  # fmt: skip
    rng = np.random.default_rng(seed)
    words = [*shares, "free text"]
    weights = [*shares.values(), free_text_share]
    silent = max(0.0, 1.0 - sum(weights))
    picks = rng.choice(len(words) + 1, size=len(phones), p=[*weights, silent])
    sent: dict[str, int] = {}
    for phone, pick in zip(phones, picks, strict=True):
        if pick == len(words):
            continue
        text = words[pick] if pick < len(shares) else FREE_TEXT[rng.integers(len(FREE_TEXT))]
        _mo(port, secret, phone, text)
        sent[words[pick]] = sent.get(words[pick], 0) + 1
    return sent


def _mo(port: int, secret: str, phone: str, text: str) -> None:
    """One reply as Kannel's get-url delivers it to the receiver."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/mo?" + urlencode({"k": secret, "from": phone, "text": text}))
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"the receiver refused a simulated reply: {answer.status}")
    finally:
        conn.close()
