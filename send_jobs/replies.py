"""Reading a reply (MO): opt-out, opt-in, help, a yes-answer, or anything else.

The words live in ``rules/keywords.yaml``; the rule is here and is the same for every
language. A reply is normalised (NFKC, invisible characters removed, case folded, accents
stripped, punctuation to spaces, kept as clause boundaries) and then read in this order:

1. the whole reply is one command, alone or with filler words ("stop please", "STOP
   Northwind", "end all") -> that command, not flagged;
2. an opt-out word that no negation in its clause governs, anywhere in the reply -> opt-out,
   flagged for review (the FCC's 2024 revocation rule: any reasonable means; opt-out wins);
3. an opt-out phrase without a keyword ("no more texts") -> opt-out, flagged;
4. an opt-out word under a negation ("don't stop texting me") -> other, flagged for review.

``YES`` is an answer (intent ``yes``), never consent: only START/UNSTOP opt back in, and only
after an opt-out by reply (send_jobs.consent).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml

RULES_DIR = Path(__file__).parent / "rules"  # as send_jobs.campaign_specs has it

INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
CLAUSE_BREAK = re.compile(r"[.,;:!?¡¿\n()\[\]]+")
NOT_A_WORD = re.compile(r"[^\w]+")
INTENT_ACTION = {"opt_out": "opt_out", "opt_in": "opt_in"}


@dataclass(frozen=True)
class Reading:
    intent: str  # opt_out, opt_in, help, yes, other
    action: str | None  # the consent change: opt_out, opt_in or None
    flagged: bool  # a human should look at it (the action, if any, applies already)
    rule: str  # which rule decided: command, keyword, phrase, negated, none


def normalise(text: str) -> str:
    """Lower case, no accents or invisible characters; punctuation kept for clauses."""
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text or "")).casefold()
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    return text.replace("ß", "ss").replace("'", " ").replace("’", " ").replace("-", " ")


def words_of(clause: str) -> list[str]:
    return [w for w in NOT_A_WORD.split(clause) if w and w != "_"]


def _phrases(groups: dict[str, list] | list) -> set[tuple[str, ...]]:
    items = [w for ws in groups.values() for w in ws] if isinstance(groups, dict) else groups
    return {tuple(words_of(normalise(str(w)))) for w in items if words_of(normalise(str(w)))}


class ReplyClassifier:
    """Reads replies by the rules file; ``brand`` words count as fillers ("STOP Northwind")."""

    def __init__(self, path: Path = RULES_DIR / "keywords.yaml", brand: str = "") -> None:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        self.commands = {
            "opt_out": _phrases(raw["opt_out"]["commands"]),
            "opt_in": _phrases(raw["opt_in"]),
            "help": _phrases(raw["help"]),
            "yes": _phrases(raw["answer_yes"]),
        }
        # a negation governs only a keyword of its own language ("no" is Spanish, not English)
        self.opt_out_words = {k: _phrases(v) for k, v in raw["opt_out"]["words"].items()}
        self.negations = {k: _phrases(v) for k, v in raw["negations"].items()}
        self.window = int(raw["negation_window"])
        self.fillers = {w for p in _phrases(raw["fillers"]) for w in p} | set(
            words_of(normalise(brand))
        )
        self.phrases = [re.compile(p) for p in raw["opt_out_phrases"]]
        self.replies = {k: v.format(brand=brand) for k, v in raw["replies"].items()}

    def read(self, text: str) -> Reading:
        norm = normalise(text)
        clauses = [words_of(c) for c in CLAUSE_BREAK.split(norm)]
        command = self._command([w for c in clauses for w in c])
        if command:
            return Reading(command, INTENT_ACTION.get(command), False, "command")
        hits = [self._negated(c, i, lang) for c in clauses for i, lang in self._keywords_in(c)]
        if any(not negated for negated in hits):
            return Reading("opt_out", "opt_out", True, "keyword")
        flat = " ".join(" ".join(c) for c in clauses)
        if any(p.search(flat) for p in self.phrases):
            return Reading("opt_out", "opt_out", True, "phrase")
        if hits:
            return Reading("other", None, True, "negated")
        return Reading("other", None, False, "none")

    def classify(self, text: str) -> tuple[str, str | None, bool]:
        """(intent, consent action or None, flagged for review)."""
        r = self.read(text)
        return r.intent, r.action, r.flagged

    def reply(self, intent: str) -> str:
        return self.replies.get(intent, "")

    def _command(self, words: list[str]) -> str | None:
        """The intent when the reply is one command plus fillers, else None."""
        if not words:
            return None
        for intent, phrases in self.commands.items():
            for phrase in phrases:
                rest = _without(words, phrase)
                if rest is not None and all(w in self.fillers for w in rest):
                    return intent
        return None

    def _keywords_in(self, words: list[str]) -> list[tuple[int, str]]:
        """(position, language) of every opt-out word in a clause."""
        return [
            (i, lang)
            for lang, phrases in self.opt_out_words.items()
            for i in range(len(words))
            for p in phrases
            if tuple(words[i : i + len(p)]) == p
        ]

    def _negated(self, words: list[str], at: int, lang: str) -> bool:
        before = words[max(0, at - self.window) : at]
        return any(
            tuple(before[j : j + len(n)]) == n
            for n in self.negations.get(lang, ())
            for j in range(len(before))
        )


def _without(words: list[str], phrase: tuple[str, ...]) -> list[str] | None:
    """words with the first occurrence of phrase removed, or None if it does not occur."""
    n = len(phrase)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) == phrase:
            return words[:i] + words[i + n :]
    return None
