"""``docs/landing-contract.md``, written from ``sources.yaml`` and the validation's own checks
(``make docs`` writes it; a test fails when the file and the contract differ)."""

from __future__ import annotations

import sys
from pathlib import Path

from ingest.landing import EXPECTED_NAME
from ingest.spec import Column, Source, sources
from ingest.validate import column_checks

DOC = Path(__file__).resolve().parents[1] / "docs" / "landing-contract.md"
# reasons for a whole line or file, before its values are read (ingest/validate.py, load.py)
LINE_REASONS = {
    "invalid UTF-8": "the line is not valid UTF-8 (save the file as UTF-8)",
    "unclosed quote": "a quoted CSV field is not closed",
    "malformed quoting": "a quote inside an unquoted CSV field",
    "wrong column count": "a CSV line with more or fewer fields than its header",
    "invalid JSON": "a JSON line that is not one object",
    "unreadable header": "the first line of a CSV file is not a header (every line is quarantined)",
    "duplicate column names": "the header repeats a name (every line is quarantined)",
    "file missing required columns": "the header lacks a required column (every line is "
    "quarantined)",
    "duplicate key with conflicting content": "the key (and updated_at, where the source has "
    "it) of a row already loaded, with other values; the first row stays",
}
TYPES = {
    "string": "text",
    "integer": "whole number",
    "decimal": "number, `.` as decimal separator",
    "timestamp": "ISO 8601 or `YYYY-MM-DD HH:MM:SS` with `Z`, `UTC` or an offset "
    "(`+02:00`, `+0200`, ` -0500`)",
    "enum": "one of the listed values",
    "phone": "phone number in any format libphonenumber reads; stored in E.164",
    "time_zone": "IANA zone name (`Europe/Paris`)",
    "country": "ISO 3166-1 alpha-2 code (`FR`)",
    "json": "a JSON value",
}


def _reasons(col: Column) -> list[str]:
    """The quarantine reasons the column's checks can give, in the order they are tried."""
    return [reason.strip("'").replace("''", "'") for _, reason, _ in column_checks(col)]


def _rule(col: Column) -> str:
    parts = [TYPES[col.type]]
    if col.values:
        parts.append(", ".join(f"`{v}`" for v in col.values))
    if col.min is not None:
        parts.append(f"at least {col.min:g}")
    if col.country_column:
        parts.append(f"national formats read with `{col.country_column}`")
    return "; ".join(parts)


def _source(src: Source) -> list[str]:
    fmt = "jsonl" if src.example.lstrip().startswith("{") else "csv"
    out = [
        f"## {src.name}",
        "",
        f"Key: {', '.join(f'`{k}`' for k in src.key)}"
        + (
            " (with `updated_at`: a later version of the record)"
            if "updated_at" in src.names
            else ""
        ),  # fmt: skip
        "",
        "| column | required | type and rule | quarantine reasons |",
        "| --- | --- | --- | --- |",
    ]
    for col in src.columns:
        reasons = "; ".join(_reasons(col))
        out.append(f"| `{col.name}` | {'yes' if col.required else ''} | {_rule(col)} | {reasons} |")
    if src.rules:
        out += ["", "Rules across columns:", ""]
        out += [f"- {r.detail or r.reason} (reason: {r.reason})" for r in src.rules]
    out += ["", f"Example, `{src.name}/2025-03-03.{fmt}`:", "", f"```{fmt}", src.example.rstrip(),
            "```", ""]  # fmt: skip
    return out


def render() -> str:
    lines = [
        "# The landing contract",
        "",
        "<!-- written by `make docs` from ingest/sources.yaml; edit that file, not this one -->",
        "",
        "Retentext loads files from a landing folder, one folder per source:",
        f"`<landing>/<source>/{EXPECTED_NAME}`. The day in the name is the file's partition",
        "(`2025-03-03.csv`, `20250303.csv`, `2025-03-03.part2.CSV`, `2025-03-03.csv.gz`,",
        "`2025-03-03.parquet`). Files whose name fits no pattern, symbolic links and paths that",
        "resolve outside the landing folder are not loaded; `retentext run` and the Dagster",
        "load list them with the reason.",
        "",
        "Every line read is accepted, dropped as an exact duplicate of a row already loaded, or",
        "quarantined in `raw.quarantine` with a reason and a detail: rows read = accepted +",
        "quarantined + duplicates, per file (`raw.load_files`). Empty values count as missing.",
        "CSV files are UTF-8 (a BOM is dropped) with a header; columns not listed below are",
        "kept in `extra` and reported. `retentext import` turns Shopify exports and other CSV",
        "files into this layout (docs/importing.md).",
        "",
        "## Reasons for a whole line or file",
        "",
        *[f"- {reason}: {why}" for reason, why in LINE_REASONS.items()],
        "",
    ]
    for src in sources().values():
        lines += _source(src)
    return "\n".join(lines)


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
