"""Campaigns as code: YAML files in ``send_jobs/campaigns/`` plus the program rules in
``send_jobs/rules/``, validated when they load.

Every problem is reported as ``CampaignError`` naming the file, the field and why, and all
problems of a file are collected before raising so one edit fixes them all.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from send_jobs import templates
from send_jobs.replies import ReplyClassifier

HERE = Path(__file__).parent
CAMPAIGNS_DIR = HERE / "campaigns"
RULES_DIR = HERE / "rules"

CATEGORIES = ("marketing", "transactional")
# trigger type -> {parameter: (type, default or REQUIRED)}
REQUIRED = object()
TRIGGERS: dict[str, dict[str, tuple[type, Any]]] = {
    "customers": {},
    "replenishment_due": {},
    "new_subscriber": {"within_days": (int, 3)},
    "category_launch": {"category": (str, REQUIRED), "launched_within_days": (int, 60)},
    "appointment_booked": {"lead_hours_min": (int, 2), "lead_hours_max": (int, 26)},
    # a checkout started and no order since: an explicit act, so no tracked-data declaration
    "checkout_abandoned": {"after_hours": (int, 2), "within_hours": (int, 48)},
}
# audience and variant conditions run over these marts.dim_customers columns
AUDIENCE_FIELDS = {
    "lifecycle_stage": str,
    "loyalty_tier": str,
    "loyalty_points": float,
    "orders_count": float,
    "lifetime_revenue": float,
    "rfm_segment": str,
    "top_category": str,
    "country": str,
    "region": str,
    "language": str,
    "time_zone": str,
    # as of the decision, from the customer's last tap on a link in one of our texts
    "days_since_sms_click": float,  # null when never
    "ordered_since_sms_click": bool,  # null when never
    "days_since_last_order": float,  # as of the decision; null for prospects
    # predicted by the last features build (predictions.customer_value); null for prospects
    "probability_alive": float,
    "probability_alive_change_30d": float,  # below 0: falling; null for buyers of < 30 days
    "expected_purchases_90d": float,
    "expected_revenue_90d": float,
}
OPS = {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "is_null", "not_null"}
ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class CampaignError(ValueError):
    """A campaign or rules file is invalid: ``file: field: why`` per problem."""

    def __init__(self, problems: list[tuple[str, str, str]]):
        self.problems = problems
        super().__init__(
            "invalid campaign configuration:\n"
            + "\n".join(f"  {f}: {fld}: {why}" for f, fld, why in problems)
        )


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class Variant:
    id: str
    template: templates.Template
    offer: str | None
    when: tuple[Condition, ...]
    weight: float


@dataclass(frozen=True)
class ReplyOption:
    """An answer the text asks for: the words that give it, the state it records (``action``)
    and the one transactional message that answers it."""

    words: tuple[str, ...]  # as written; the first is the one the text names
    action: str
    answer: str


@dataclass(frozen=True)
class Targeting:
    """Whom of its audience a campaign texts: everyone (``all``), or under ``uplift`` those
    whose predicted incremental margin covers the text's cost plus ``offer_cost`` (USD per
    text), and a random ``learning_share`` of the rest so the model keeps learning. The
    holdout is drawn before targeting, so it measures the policy as a whole."""

    mode: str = "all"
    learning_share: float = 0.10
    offer_cost: float = 0.0
    # earlier campaigns of the same offer whose randomised units the model learns from too
    learn_from: tuple[str, ...] = ()


TARGETING_MODES = ("all", "uplift")


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    category: str
    priority: int
    trigger: str
    params: dict[str, Any]
    audience: tuple[Condition, ...]
    holdout_share: float
    active_from: date | None
    active_until: date | None
    cooldown_days: int | None  # None: once per customer ever; 0: once per occasion
    max_segments: int
    uses_tracked_fields: tuple[str, ...]
    variants: tuple[Variant, ...]
    cost_per_segment: dict[str, float]
    file: str = ""
    link: str | None = None  # where {{ link }} leads; None: the program's link_destination
    reply_options: tuple[ReplyOption, ...] = ()  # the question the text asks, if any
    reply_valid_hours: int = 24  # how long after its hand-over a reply answers it
    # the units (texted + held out) at which the test is read: the always-valid intervals are
    # tightest there, and from there on the fixed-horizon interval gives the verdict
    planned_units: int | None = None
    targeting: Targeting = field(default_factory=Targeting)

    def is_active(self, day: date) -> bool:
        return (self.active_from is None or self.active_from <= day) and (
            self.active_until is None or day <= self.active_until
        )

    def fields(self) -> set[str]:
        return {f for v in self.variants for f in v.template.fields}


@dataclass(frozen=True)
class Program:
    brand: str
    sender: str
    assignment_salt: str
    global_control_share: float
    cap_24h: int
    cap_7d: int
    hard_failures_to_suppress: int
    opt_out_text: str
    link_base: str
    link_destination: str
    message_validity_hours: int
    default_max_segments: int
    cost_per_segment: dict[str, float]
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    sequential_tuning: int = 5000  # the sample size the always-valid intervals are tightest at
    gross_margin_rate: float = 0.40  # the share of net revenue that is margin (uplift targeting)


def load_program(rules_dir: Path = RULES_DIR) -> Program:
    path = rules_dir / "program.yaml"
    raw = _read(path)
    fields = _read(rules_dir / "fields.yaml")
    problems = []
    for name, spec in fields.items():
        if "fallback" not in spec:
            problems.append((str(rules_dir / "fields.yaml"), name, "needs a fallback"))
        if spec.get("provenance") not in ("profile", "explicit", "tracked", "system"):
            problems.append((str(rules_dir / "fields.yaml"), name, "unknown provenance"))
    try:
        program = Program(
            brand=str(raw["brand"]),
            sender=str(raw["sender"]),
            assignment_salt=str(raw["assignment_salt"]),
            global_control_share=_share(raw["global_control_share"]),
            cap_24h=int(raw["caps"]["per_24h"]),
            cap_7d=int(raw["caps"]["per_7d"]),
            hard_failures_to_suppress=int(raw["hard_failures_to_suppress"]),
            opt_out_text=str(raw["opt_out_text"]),
            link_base=_url(raw["link_base"]),
            link_destination=_url(raw["link_destination"]),
            message_validity_hours=int(raw["message_validity_hours"]),
            default_max_segments=int(raw["default_max_segments"]),
            cost_per_segment={k: float(v) for k, v in raw["cost_per_segment"].items()},
            fields=fields,
            sequential_tuning=int(raw.get("measurement", {}).get("sequential_tuning", 5000)),
            gross_margin_rate=_share(raw.get("gross_margin_rate", 0.40)),
        )
        if program.sequential_tuning <= 0:
            problems.append((str(path), "measurement.sequential_tuning", "must be positive"))
        if not program.link_base.endswith("/"):
            problems.append((str(path), "link_base", "must end with / (the code follows it)"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problems.append((str(path), str(exc).strip("'"), "missing or of the wrong type"))
    if problems:
        raise CampaignError(problems)
    return program


def load_campaigns(
    campaigns_dir: Path | None = None, program: Program | None = None
) -> list[Campaign]:
    """Every ``*.yaml`` campaign in the folder (default: the ones shipped here), validated,
    sorted by priority."""
    campaigns_dir = campaigns_dir or CAMPAIGNS_DIR
    program = program or load_program()
    problems: list[tuple[str, str, str]] = []
    campaigns: list[Campaign] = []
    for path in sorted(Path(campaigns_dir).glob("*.yaml")):
        try:
            campaigns.append(parse_campaign(_read(path), program, str(path)))
        except CampaignError as exc:
            problems.extend(exc.problems)
    seen: dict[str, str] = {}
    for c in campaigns:
        if c.id in seen:
            problems.append((c.file, "id", f"{c.id!r} is also used by {seen[c.id]}"))
        seen[c.id] = c.file
    if problems:
        raise CampaignError(problems)
    return sorted(campaigns, key=lambda c: (c.priority, c.id))


KNOWN_FIELDS = frozenset({
    "id", "name", "category", "priority", "trigger", "audience", "holdout_share", "active",
    "cooldown_days", "max_segments", "uses_tracked_fields", "variants", "cost_per_segment",
    "planned_units", "link", "reply_options", "targeting",
})  # fmt: skip


def parse_campaign(raw: Any, program: Program, file: str = "<campaign>") -> Campaign:
    """A campaign from its YAML mapping; every problem found is raised together
    (CampaignError), each with its file and field."""
    problems: list[tuple[str, str, str]] = []

    def bad(fld: str, why: str) -> None:
        problems.append((file, fld, why))

    if not isinstance(raw, dict):
        raise CampaignError([(file, "(file)", "must be a mapping of campaign fields")])
    for key in raw:
        if key not in KNOWN_FIELDS:
            bad(str(key), f"unknown field; expected one of {', '.join(sorted(KNOWN_FIELDS))}")
    cid, name, category, priority = _identity(raw, bad)
    trigger, params = _trigger(raw.get("trigger"), bad)
    audience = _conditions(raw.get("audience", []), "audience", bad)
    holdout = _holdout(raw.get("holdout_share", 0.10), bad)
    active_from, active_until = _active(raw.get("active") or {}, bad)
    cooldown, max_segments, planned = _limits(raw, program, bad)
    tracked = _tracked(raw.get("uses_tracked_fields", []) or [], bad)
    cost = _costs(raw.get("cost_per_segment", {}) or {}, program, bad)
    link = _link(raw.get("link"), bad)
    options, valid_hours = _reply_options(raw.get("reply_options"), bad)
    variants = _variants(raw.get("variants"), program, trigger, tracked, bad)
    targeting = _targeting(raw.get("targeting"), category, holdout, bad)
    if category == "transactional":
        for v in variants:
            if v.offer:
                bad(f"variants.{v.id}.offer", "a transactional message carries no offer")
    if problems:
        raise CampaignError(problems)
    return Campaign(
        id=cid,
        name=name.strip(),
        category=category,
        priority=priority,
        trigger=trigger,
        params=params,
        audience=tuple(audience),
        holdout_share=holdout,
        active_from=active_from,
        active_until=active_until,
        cooldown_days=cooldown,
        max_segments=max_segments,
        uses_tracked_fields=tuple(tracked),
        variants=tuple(variants),
        cost_per_segment=cost,
        file=file,
        planned_units=planned,
        link=link,
        reply_options=options,
        reply_valid_hours=valid_hours,
        targeting=targeting,
    )


def _identity(raw: dict, bad) -> tuple[Any, Any, Any, Any]:
    """id, name, category and priority as given (each checked)."""
    cid = raw.get("id")
    if not isinstance(cid, str) or not ID.match(cid):
        bad("id", "required: lower-case letters, digits and _ (starting with a letter)")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        bad("name", "required text")
    category = raw.get("category")
    if category not in CATEGORIES:
        bad("category", f"must be one of {', '.join(CATEGORIES)}, got {category!r}")
    priority = raw.get("priority", 100)
    if not isinstance(priority, int) or isinstance(priority, bool):
        bad("priority", "must be an integer (lower goes first)")
    return cid, name, category, priority


def _trigger(raw: Any, bad) -> tuple[str, dict[str, Any]]:
    """The trigger type and its parameters, defaults filled in ("" when unusable)."""
    if not isinstance(raw, dict) or raw.get("type") not in TRIGGERS:
        bad("trigger.type", f"must be one of {', '.join(TRIGGERS)}")
        return "", {}
    trigger, params = raw["type"], {}
    spec = TRIGGERS[trigger]
    for key in raw:
        if key != "type" and key not in spec:
            bad(f"trigger.{key}", f"not a parameter of {trigger}")
    for key, (typ, default) in spec.items():
        value = raw.get(key, default)
        if value is REQUIRED:
            bad(f"trigger.{key}", f"required for {trigger}")
        elif not isinstance(value, typ) or isinstance(value, bool):
            bad(f"trigger.{key}", f"must be {typ.__name__}")
        else:
            params[key] = value
    return trigger, params


def _targeting(raw: Any, category: Any, holdout: float, bad) -> Targeting:
    """targeting.mode (all or uplift), learning_share, offer_cost and learn_from."""
    if raw is None:
        return Targeting()
    if not isinstance(raw, dict):
        bad("targeting", "must be a mapping: mode, learning_share, offer_cost, learn_from")
        return Targeting()
    for key in raw:
        if key not in ("mode", "learning_share", "offer_cost", "learn_from"):
            bad(f"targeting.{key}",
                "unknown; expected mode, learning_share, offer_cost or learn_from")  # fmt: skip
    learn_from = raw.get("learn_from", [])
    if not isinstance(learn_from, list) or not all(
        isinstance(x, str) and ID.match(x) for x in learn_from
    ):
        bad("targeting.learn_from", "must be a list of campaign ids")
        learn_from = []
    mode = raw.get("mode", "all")
    if mode not in TARGETING_MODES:
        bad("targeting.mode", f"must be one of {', '.join(TARGETING_MODES)}")
    elif mode == "uplift" and category == "transactional":
        bad("targeting.mode", "a transactional message goes to everyone it concerns")
    elif mode == "uplift" and holdout <= 0:
        bad("targeting.mode", "uplift learns from the holdout and is measured by it: "
                              "holdout_share must be above 0")  # fmt: skip
    try:
        learning = _share(raw.get("learning_share", Targeting.learning_share))
    except ValueError as exc:
        bad("targeting.learning_share", str(exc))
        learning = 0.0
    offer = raw.get("offer_cost", 0.0)
    if not isinstance(offer, int | float) or isinstance(offer, bool) or offer < 0:
        bad("targeting.offer_cost", "must be a number of USD per text, 0 or more")
        offer = 0.0
    return Targeting(str(mode), learning, float(offer), tuple(learn_from))


def _holdout(raw: Any, bad) -> float:
    try:
        return _share(raw)
    except ValueError as exc:
        bad("holdout_share", str(exc))
        return 0.0


def _active(raw: Any, bad) -> tuple[Any, Any]:
    """active.from and active.until (dates or None)."""
    active_from = raw.get("from") if isinstance(raw, dict) else None
    active_until = raw.get("until") if isinstance(raw, dict) else None
    for key, value in (("active.from", active_from), ("active.until", active_until)):
        if value is not None and not isinstance(value, date):
            bad(key, "must be a date YYYY-MM-DD")
    dated = isinstance(active_from, date) and isinstance(active_until, date)
    if dated and active_until < active_from:
        bad("active.until", "is before active.from")
    return active_from, active_until


def _limits(raw: dict, program: Program, bad) -> tuple[Any, Any, Any]:
    """cooldown_days, max_segments and planned_units."""
    cooldown = raw.get("cooldown_days", 30)
    if cooldown is not None and (not isinstance(cooldown, int) or cooldown < 0):
        bad("cooldown_days", "must be a whole number of days >= 0, or null for once ever")
    max_segments = raw.get("max_segments", program.default_max_segments)
    if not isinstance(max_segments, int) or not 1 <= max_segments <= 10:
        bad("max_segments", "must be an integer from 1 to 10")
    planned = raw.get("planned_units")
    if planned is not None and (not isinstance(planned, int) or planned < 2):
        bad("planned_units", "must be a whole number of units >= 2, or left out")
    return cooldown, max_segments, planned


def _reply_options(raw: Any, bad) -> tuple[tuple[ReplyOption, ...], int]:
    """``reply_options: {valid_hours, options: [{reply, also, action, answer}]}``. A consent
    keyword (STOP, START, HELP and their kin) is never an answer: it keeps its meaning."""
    if raw is None:
        return (), 24
    if not isinstance(raw, dict) or not isinstance(raw.get("options"), list) or not raw["options"]:
        bad("reply_options", "must be a mapping with options: a list of {reply, action, answer}")
        return (), 24
    for key in raw:
        if key not in ("valid_hours", "options"):
            bad(f"reply_options.{key}", "unknown field; expected valid_hours, options")
    hours = raw.get("valid_hours", 24)
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 24 * 14:
        bad("reply_options.valid_hours", "must be a whole number of hours from 1 to 336")
        hours = 24
    options, seen = [], set()
    for i, o in enumerate(raw["options"]):
        option = _reply_option(o, f"reply_options.options[{i}]", bad)
        if option is None:
            continue
        for word in option.words:
            if reply_key(word) in seen:
                bad(f"reply_options.options[{i}]", f"{word!r} answers another option too")
            seen.add(reply_key(word))
        options.append(option)
    return tuple(options), hours


def _reply_option(raw: Any, where: str, bad) -> ReplyOption | None:
    if not isinstance(raw, dict):
        bad(where, "must be a mapping with reply, action and answer")
        return None
    for key in raw:
        if key not in ("reply", "also", "action", "answer"):
            bad(f"{where}.{key}", "unknown field; expected reply, also, action, answer")
    words = [raw.get("reply"), *(raw.get("also") or [])]
    if not all(isinstance(w, str) and reply_key(w) for w in words):
        bad(f"{where}.reply", "the reply (and each of also) must be a word or two")
        return None
    reader = ReplyClassifier()
    consent = [w for w in words if reader.read(w).intent in CONSENT_INTENTS]
    if consent:
        bad(f"{where}.reply", f"{consent[0]!r} is a consent keyword: it opts out, in or asks "
            "for help whatever the question, so it is never an answer option")  # fmt: skip
    action, answer = raw.get("action"), raw.get("answer")
    if not isinstance(action, str) or not ID.match(action):
        bad(f"{where}.action", "required: lower-case letters, digits and _ (the state recorded)")
    if not isinstance(answer, str) or not answer.strip():
        bad(f"{where}.answer", "required: the one message that answers the reply")
    if consent or not isinstance(action, str) or not isinstance(answer, str):
        return None
    return ReplyOption(tuple(words), action, answer.strip())


# replies these intents read are about consent or help, whatever question was asked
CONSENT_INTENTS = ("opt_out", "opt_in", "help")


def reply_key(text: str) -> str:
    """A reply as it is compared with the options: lower case, accents and punctuation gone,
    words separated by one space (the SQL twin is ``send_jobs.answers.REPLY_KEY_SQL``)."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def _link(raw: Any, bad) -> str | None:
    if raw is None:
        return None
    try:
        return _url(raw)
    except ValueError as exc:
        bad("link", str(exc))
        return None


def _url(raw: Any) -> str:
    """An absolute http(s) URL with a host, as given."""
    parts = urlsplit(raw) if isinstance(raw, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL with a host, got {raw!r}")
    return raw


def _tracked(raw: Any, bad) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        bad("uses_tracked_fields", "must be a list of field names")
        return []
    return raw


def _costs(raw: Any, program: Program, bad) -> dict[str, float]:
    """The program's price per segment by country, overridden where the campaign says."""
    cost = dict(program.cost_per_segment)
    if not isinstance(raw, dict):
        bad("cost_per_segment", "must map country codes (or default) to a price")
        return cost
    for key, value in raw.items():
        if not isinstance(value, int | float) or value < 0:
            bad(f"cost_per_segment.{key}", "must be a price >= 0")
        else:
            cost[str(key)] = float(value)
    return cost


def _variants(raw, program: Program, trigger: str, tracked: list[str], bad) -> list[Variant]:
    if not isinstance(raw, list) or not raw:
        bad("variants", "needs at least one variant with an id and a template")
        return []
    out: list[Variant] = []
    weighted = 0
    for i, v in enumerate(raw):
        where = f"variants[{i}]"
        if not isinstance(v, dict):
            bad(where, "must be a mapping with id and template")
            continue
        vid = v.get("id")
        if not isinstance(vid, str) or not ID.match(vid):
            bad(f"{where}.id", "required: lower-case letters, digits and _")
            continue
        where = f"variants.{vid}"
        for key in v:
            if key not in ("id", "template", "offer", "when", "weight"):
                bad(f"{where}.{key}", "unknown field; expected template, offer, when, weight")
        offer = v.get("offer")
        if offer is not None and (not isinstance(offer, str) or not offer.strip()):
            bad(f"{where}.offer", "must be text")
            offer = None
        try:
            template = templates.compile_template(str(v.get("template") or ""))
        except templates.TemplateError as exc:
            bad(f"{where}.template", str(exc))
            continue
        for name in sorted(template.fields):
            spec = program.fields.get(name)
            if spec is None:
                bad(f"{where}.template", f"unknown field {{{{ {name} }}}}; known: "
                    + ", ".join(sorted(program.fields)))  # fmt: skip
            elif spec["provenance"] == "tracked" and name not in tracked:
                bad(
                    f"{where}.template",
                    f"{{{{ {name} }}}} is derived from tracked browsing; declare it in "
                    "uses_tracked_fields to use it",
                )
            elif spec.get("triggers") and trigger and trigger not in spec["triggers"]:
                bad(f"{where}.template", f"{{{{ {name} }}}} is not available for {trigger}")
            elif name == "offer" and offer is None:
                bad(f"{where}.template", "uses {{ offer }} but the variant has no offer")
        when = _conditions(v.get("when", []), f"{where}.when", bad)
        weight = v.get("weight", 1.0)
        if not isinstance(weight, int | float) or weight <= 0:
            bad(f"{where}.weight", "must be a number > 0")
            weight = 1.0
        weighted += not when
        out.append(Variant(vid, template, offer, tuple(when), float(weight)))
    if out and weighted == 0:
        bad("variants", "the last variant(s) need no `when`, so every recipient gets one")
    if len({v.id for v in out}) != len(out):
        bad("variants", "variant ids must be unique")
    return out


def _conditions(raw, where: str, bad) -> list[Condition]:
    if not isinstance(raw, list):
        bad(where, "must be a list of {field, op, value}")
        return []
    out = []
    for i, c in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(c, dict) or c.get("field") not in AUDIENCE_FIELDS:
            bad(at, f"field must be one of {', '.join(AUDIENCE_FIELDS)}")
            continue
        op, value = c.get("op"), c.get("value")
        typ = AUDIENCE_FIELDS[c["field"]]
        if op not in OPS:
            bad(f"{at}.op", f"must be one of {', '.join(sorted(OPS))}")
            continue
        values = value if op in ("in", "not_in") else [value]
        if op in ("is_null", "not_null"):
            values = []
        elif op in ("in", "not_in") and (not isinstance(value, list) or not value):
            bad(f"{at}.value", f"{op} needs a non-empty list")
            continue
        if any(not _fits(x, typ) for x in values):
            kind = {float: "numbers", bool: "true or false"}.get(typ, "text")
            bad(f"{at}.value", f"{c['field']} takes {kind}")
            continue
        out.append(Condition(c["field"], op, value))
    return out


def _fits(value, typ) -> bool:
    if typ is bool:
        return isinstance(value, bool)
    if typ is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


def _share(value) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
        raise ValueError(f"must be a share from 0 to below 1, got {value!r}")
    return float(value)


def _read(path: Path):
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CampaignError([(str(path), "(file)", f"not valid YAML: {exc}")]) from exc
