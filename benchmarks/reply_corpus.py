"""Precision and recall of the reply classifier on the labelled corpus
(send_jobs/rules/reply_corpus.csv: text, language, intent by a human, fcc_keyword = the reply
uses an opt-out keyword as a non-negated word).

    python -m benchmarks.reply_corpus
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from send_jobs.campaign_specs import RULES_DIR
from send_jobs.replies import ReplyClassifier

CORPUS = RULES_DIR / "reply_corpus.csv"
INTENTS = ("opt_out", "opt_in", "help", "yes", "other")


def evaluate(path: Path = CORPUS, brand: str = "Northwind Goods") -> dict:
    reader = ReplyClassifier(brand=brand)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    got = [reader.read(r["text"]) for r in rows]
    pairs = Counter((r["intent"], g.intent) for r, g in zip(rows, got, strict=True))
    per_intent = {}
    for intent in INTENTS:
        tp = pairs[(intent, intent)]
        predicted = sum(n for (_, g), n in pairs.items() if g == intent)
        actual = sum(n for (t, _), n in pairs.items() if t == intent)
        per_intent[intent] = {
            "n": actual,
            "precision": tp / predicted if predicted else 1.0,
            "recall": tp / actual if actual else 1.0,
        }
    fcc = [g for r, g in zip(rows, got, strict=True) if r["fcc_keyword"] == "true"]
    return {
        "replies": len(rows),
        "languages": dict(Counter(r["language"] for r in rows)),
        "accuracy": sum(n for (t, g), n in pairs.items() if t == g) / len(rows),
        "per_intent": per_intent,
        "fcc_keyword_replies": len(fcc),
        "fcc_keyword_recall": sum(g.intent == "opt_out" for g in fcc) / len(fcc),
        "flagged": sum(g.flagged for g in got),
        "errors": [
            (r["text"], r["intent"], g.intent)
            for r, g in zip(rows, got, strict=True)
            if r["intent"] != g.intent
        ],
    }


def main() -> None:
    e = evaluate()
    print(f"replies: {e['replies']} ({', '.join(f'{k} {v}' for k, v in e['languages'].items())})")
    print(f"accuracy: {e['accuracy']:.3f}; flagged for review: {e['flagged']}")
    for intent, m in e["per_intent"].items():
        scores = f"precision {m['precision']:.3f}  recall {m['recall']:.3f}"
        print(f"  {intent:8} n={m['n']:4}  {scores}")
    print(
        f"replies with a non-negated opt-out keyword: {e['fcc_keyword_replies']}, "
        f"read as opt-outs: {e['fcc_keyword_recall']:.1%}"
    )
    for text, want, got in e["errors"]:
        print(f"  miss: {text!r}: labelled {want}, read {got}")


if __name__ == "__main__":
    main()
