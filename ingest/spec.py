"""The landing sources' contract, read from ``sources.yaml``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

SPEC_FILE = Path(__file__).with_name("sources.yaml")
TYPES = {
    "string",
    "integer",
    "decimal",
    "timestamp",
    "enum",
    "phone",
    "time_zone",
    "country",
    "json",
}
SQL_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18,4)",
    "timestamp": "TIMESTAMP",
    "enum": "VARCHAR",
    "phone": "VARCHAR",
    "time_zone": "VARCHAR",
    "country": "VARCHAR",
    "json": "VARCHAR",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    min: float | None = None
    values: tuple[str, ...] = ()
    reason: str | None = None
    country_column: str | None = None

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class Rule:
    when: str
    reason: str
    detail: str | None = None


@dataclass(frozen=True)
class Source:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    rules: tuple[Rule, ...] = field(default_factory=tuple)
    example: str = ""  # a small landing file, shown in docs/landing-contract.md

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def version_key(self) -> tuple[str, ...]:
        """What tells one row from another: the key, plus ``updated_at`` where a record may
        change (a later version supersedes the earlier one; both are kept)."""
        return self.key + (("updated_at",) if "updated_at" in self.names else ())

    @property
    def kept_raw(self) -> list[str]:
        """Stored beside the contract's columns: a phone as written, before E.164."""
        return [c.name + "_raw" for c in self.columns if c.type == "phone"]


def _parse(name: str, raw: dict) -> Source:
    columns = []
    for col, opts in raw["columns"].items():
        if opts["type"] not in TYPES:
            raise ValueError(f"{SPEC_FILE}: {name}.{col}: unknown type {opts['type']!r}")
        columns.append(
            Column(
                name=col,
                type=opts["type"],
                required=bool(opts.get("required", False)),
                min=opts.get("min"),
                values=tuple(opts.get("values", ())),
                reason=opts.get("reason"),
                country_column=opts.get("country_column"),
            )
        )
    names = {c.name for c in columns}
    missing = [k for k in raw["key"] if k not in names]
    if missing:
        raise ValueError(f"{SPEC_FILE}: {name}: key columns {missing} are not declared")
    rules = tuple(Rule(r["when"], r["reason"], r.get("detail")) for r in raw.get("rules", []))
    return Source(name, tuple(raw["key"]), tuple(columns), rules, raw.get("example", ""))


@cache
def sources() -> dict[str, Source]:
    raw = yaml.safe_load(SPEC_FILE.read_text())
    return {name: _parse(name, body) for name, body in raw.items()}
