"""The public marts and their keys come from dbt's manifest (the marts YAML), not from a list
typed again in Python."""

import pytest

from warehouse.contract import marts_in, public_marts

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
}


def test_the_public_marts_and_their_keys_come_from_the_manifest():
    marts = public_marts()
    assert {m.name: m.key for m in marts} == EXPECTED_KEYS
    assert all(m.description.strip() for m in marts)


def _manifest(tests: list[tuple[str, str]]) -> dict:
    model = {"resource_type": "model", "name": "dim_x", "config": {"schema": "marts"}}
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
