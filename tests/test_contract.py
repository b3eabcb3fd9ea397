"""The public marts, their keys and their column types come from dbt's manifest (the marts
YAML, enforced at every build), not from a list typed again in Python."""

import re

import duckdb
import pytest

from warehouse.contract import create_marts_sql, marts_in, public_marts

# the keys as the marts' SQL builds them, written out by hand
EXPECTED_KEYS = {
    "dim_customers": "customer_id",
    "dim_products": "product_id",
    "customer_replenishment": "customer_product_key",
    "customer_consent": "consent_key",
    "customer_time_zones": "customer_zone_key",
    "customer_category_affinity": "customer_category_key",
    "fct_orders": "order_id",
    "fct_order_lines": "order_line_id",
    "fct_events": "event_id",
    "fct_consent_events": "consent_event_id",
    "fct_appointments": "appointment_id",
    "customer_purchase_history": "customer_id",
}


def test_the_public_marts_and_their_keys_come_from_the_manifest():
    marts = public_marts()
    assert {m.name: m.key for m in marts} == EXPECTED_KEYS
    assert all(m.description.strip() for m in marts)


def test_a_mart_knows_where_its_rows_are_stored():
    """The facts kept by landing day are views of their intermediate store; the rest are
    tables of their own (Spark's engine comparison reads the stored files)."""
    stored = {m.name: m.stored_in for m in public_marts()}
    assert stored["fct_order_lines"] == ("intermediate", "int_order_lines_accumulated")
    assert stored["fct_consent_events"] == ("intermediate", "int_consent_events_accumulated")
    assert stored["dim_customers"] == ("marts", "dim_customers")


def _manifest(tests: list[tuple[str, str]], x_type: str = "string") -> dict:
    columns = {"x_id": {"name": "x_id", "data_type": x_type}}
    model = {"resource_type": "model", "name": "dim_x", "config": {"schema": "marts"},
             "columns": columns}  # fmt: skip
    nodes = {"model.r.dim_x": model}
    for i, (name, column) in enumerate(tests):
        nodes[f"test.r.t{i}"] = {
            "resource_type": "test", "test_metadata": {"name": name},
            "attached_node": "model.r.dim_x", "column_name": column,
        }  # fmt: skip
    return {"nodes": nodes}


def test_a_mart_without_a_tested_key_is_an_error():
    with pytest.raises(ValueError, match="dim_x needs one column tested unique and not_null"):
        marts_in(_manifest([("unique", "x_id")]))  # not_null missing
    [mart] = marts_in(_manifest([("unique", "x_id"), ("not_null", "x_id"), ("not_null", "y")]))
    assert mart.key == "x_id"


def test_every_public_mart_enforces_its_contract_and_types_every_column():
    models = _models().values()
    marts = {m.name for m in public_marts()}
    enforced = {n["name"] for n in models if n["config"]["contract"]["enforced"]}
    assert enforced == marts
    assert all(data_type for m in public_marts() for _, data_type in m.columns)


def test_a_mart_view_of_several_models_is_an_error():
    """A view's rows are read from the one model it shows (Spark's comparison reads its
    files); a view of more is refused rather than compared wrongly."""
    manifest = _manifest([("unique", "x_id"), ("not_null", "x_id")])
    model = manifest["nodes"]["model.r.dim_x"]
    model["config"]["materialized"] = "view"
    model["depends_on"] = {"nodes": ["model.r.a", "model.r.b"]}
    for name in ("a", "b"):
        manifest["nodes"][f"model.r.{name}"] = {
            "resource_type": "model", "name": name, "config": {"schema": "intermediate"},
        }  # fmt: skip
    with pytest.raises(ValueError, match="dim_x is a view of 2 models, not one"):
        marts_in(manifest)
    model["depends_on"] = {"nodes": ["model.r.a"]}
    assert marts_in(manifest)[0].stored_in == ("intermediate", "a")


def test_a_mart_column_without_a_type_is_an_error():
    keyed = [("unique", "x_id"), ("not_null", "x_id")]
    with pytest.raises(ValueError, match=r"dim_x columns without a data_type: \['x_id'\]"):
        marts_in(_manifest(keyed, x_type=""))


def test_the_contract_makes_empty_marts_duckdb_types_as_dbt_builds_them():
    """The types written by hand here are what dbt builds on DuckDB (a dbt build of the real
    marts is compared with the same DDL in tests/test_features.py)."""
    con = duckdb.connect()
    con.execute(create_marts_sql())
    types = dict(con.execute(
        "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'marts'").fetchall())  # fmt: skip
    assert types["dim_customers.customer_id"] == "VARCHAR"
    assert types["dim_customers.lifetime_revenue"] == "DECIMAL(38,12)"
    assert types["dim_customers.rfm_recency_score"] == "BIGINT"
    assert types["fct_orders.items"] == "BIGINT"
    assert types["fct_events.occurred_at"] == "TIMESTAMP"
    assert types["customer_category_affinity.share"] == "DOUBLE"
    assert {t.split(".")[0] for t in types} == {m.name for m in public_marts()}
    con.execute(create_marts_sql())  # again: nothing to do (IF NOT EXISTS)


def _models() -> dict[str, dict]:
    import json

    from warehouse.dbt_build import DBT_DIR, ensure_manifest

    nodes = json.loads(ensure_manifest(DBT_DIR).read_text())["nodes"]
    return {k: n for k, n in nodes.items() if n["resource_type"] == "model"}


def test_the_layers_read_downward_only():
    """staging reads sources and seeds, intermediate reads staging and intermediate: no
    intermediate model reads a mart (stg -> int -> marts)."""
    models = _models()
    layer = {k: n["config"]["schema"] for k, n in models.items()}
    allowed = {"staging": {"staging"}, "intermediate": {"staging", "intermediate"},
               "marts": {"staging", "intermediate", "marts"}}  # fmt: skip
    upward = [
        (n["name"], models[parent]["name"])
        for key, n in models.items()
        for parent in n["depends_on"]["nodes"]
        if parent in models and layer[parent] not in allowed[layer[key]]
    ]
    assert upward == []
    assert {n["config"]["schema"] for n in models.values()} == set(allowed)


def test_every_model_keeps_its_folders_materialisation():
    """How a model is stored is its folder's default (dbt_project.yml), never set again in
    the model's own config()."""
    overridden = [
        n["name"]
        for n in _models().values()
        if re.search(r"config\([^)]*materialized", n["raw_code"])
    ]
    assert overridden == []
    facts = {n["name"]: (n["config"]["materialized"], n["config"].get("incremental_strategy"),
                         n["config"].get("on_schema_change"))
             for n in _models().values() if n["name"].startswith("fct_")}  # fmt: skip
    assert facts == {
        "fct_events": ("incremental", "delete+insert", "append_new_columns"),
        "fct_orders": ("incremental", "append", "append_new_columns"),
        "fct_order_lines": ("view", None, "ignore"),
        "fct_consent_events": ("view", None, "ignore"),
        "fct_appointments": ("table", None, "ignore"),
    }
