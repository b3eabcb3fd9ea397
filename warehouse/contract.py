"""The public mart contract, read from dbt's manifest rather than typed again in Python: the
models of the ``marts`` schema, each with its key (the column its YAML tests ``unique``, or
``unique_for_rows_built`` on the large facts, and ``not_null``) and its columns with the types
dbt enforces at every build (``contract: {enforced: true}``). ``create_marts_sql`` makes
empty marts of exactly that shape for the worlds tests and the simulator write by hand."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from warehouse.dbt_build import DBT_DIR, ensure_manifest

UNIQUENESS_TESTS = ("unique", "unique_for_rows_built")


@dataclass(frozen=True)
class Mart:
    name: str
    key: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (name, contract data type), in the YAML's order
    stored_in: tuple[str, str]  # (schema, table) holding the rows


def _stored_in(node: dict, nodes: dict) -> tuple[str, str]:
    """Where a mart's rows are stored: its own table, or for a view of one model that
    model's (the facts kept by landing day are views of their intermediate store)."""
    if node["config"].get("materialized") != "view":
        return ("marts", node["name"])
    parents = [nodes[uid] for uid in node["depends_on"]["nodes"] if uid in nodes]
    if len(parents) != 1:
        raise ValueError(f"mart {node['name']} is a view of {len(parents)} models, not one")
    return (parents[0]["config"]["schema"], parents[0]["name"])


def marts_in(manifest: dict) -> list[Mart]:
    """The public marts of a parsed manifest, by name; a mart without a tested key is an
    error (every public mart has one)."""
    models = {
        uid: n
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "model" and n["config"].get("schema") == "marts"
    }
    unique, not_null = set(), set()
    for node in manifest["nodes"].values():
        test = node.get("test_metadata") or {}
        at = (node.get("attached_node"), node.get("column_name"))
        if test.get("name") in UNIQUENESS_TESTS:
            unique.add(at)
        elif test.get("name") == "not_null":
            not_null.add(at)
    marts = []
    for uid, node in models.items():
        keys = sorted(col for (owner, col) in unique & not_null if owner == uid)
        if len(keys) != 1:
            raise ValueError(f"mart {node['name']} needs one column tested unique and "
                             f"not_null (found {keys or 'none'})")  # fmt: skip
        columns = tuple((c["name"], c.get("data_type") or "") for c in node["columns"].values())
        untyped = [name for name, data_type in columns if not data_type]
        if untyped:
            raise ValueError(f"mart {node['name']} columns without a data_type: {untyped}")
        stored_in = _stored_in(node, manifest["nodes"])
        marts.append(Mart(node["name"], keys[0], node.get("description", ""), columns, stored_in))
    return sorted(marts, key=lambda m: m.name)


@cache
def public_marts(dbt_dir: Path = DBT_DIR) -> tuple[Mart, ...]:
    """The public marts of the dbt project (its manifest parsed again when stale)."""
    return tuple(marts_in(json.loads(ensure_manifest(dbt_dir).read_text())))


def create_marts_sql(marts: tuple[Mart, ...] | None = None) -> str:
    """``CREATE TABLE IF NOT EXISTS marts.<mart> (...)`` for every public mart, typed as the
    contract types it (DuckDB reads the contract's type names)."""
    statements = ["CREATE SCHEMA IF NOT EXISTS marts"]
    for mart in public_marts() if marts is None else marts:
        columns = ", ".join(f'"{name}" {data_type}' for name, data_type in mart.columns)
        statements.append(f"CREATE TABLE IF NOT EXISTS marts.{mart.name} ({columns})")
    return ";\n".join(statements) + ";"
