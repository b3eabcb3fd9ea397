"""Campaign files: the shipped ones load; bad ones fail at load with file, field and why."""

import pytest
import yaml

from send_jobs.campaign_specs import CampaignError, load_campaigns, load_program, parse_campaign

PROGRAM = load_program()
BASE = {
    "id": "promo",
    "name": "Promo",
    "category": "marketing",
    "trigger": {"type": "customers"},
    "variants": [{"id": "v1", "template": "Hi {{ first_name }}: {{ link }}"}],
}


def problems(**changes) -> list[tuple[str, str, str]]:
    with pytest.raises(CampaignError) as err:
        parse_campaign({**BASE, **changes}, PROGRAM, "promo.yaml")
    assert str(err.value).startswith("invalid campaign configuration:")
    return err.value.problems


def test_shipped_campaigns_load_in_priority_order():
    campaigns = load_campaigns()
    ids = [c.id for c in campaigns]
    assert ids[0] == "appointment_reminder"  # transactional first
    assert set(ids) == {
        "appointment_reminder", "checkout_reminder", "welcome", "replenishment_reminder",
        "loyalty_recognition", "fragrance_launch", "winback",
    }  # fmt: skip
    by_id = {c.id: c for c in campaigns}
    assert by_id["appointment_reminder"].category == "transactional"
    assert by_id["appointment_reminder"].holdout_share == 0.0
    assert by_id["welcome"].holdout_share == 0.10
    assert by_id["checkout_reminder"].trigger == "checkout_abandoned"
    assert [o.action for o in by_id["appointment_reminder"].reply_options] == [
        "confirmed", "reschedule_requested"]  # fmt: skip
    assert {v.id for v in by_id["welcome"].variants} == {"not_purchased", "purchased"}
    for c in campaigns:  # every shipped template names the brand via the program prefix
        assert not c.uses_tracked_fields


def test_tracked_browsing_field_is_refused_unless_declared():
    tracked = [{"id": "v1", "template": "Still thinking about {{ last_viewed_product }}?"}]
    [(file, field, why)] = problems(variants=tracked)
    assert (file, field) == ("promo.yaml", "variants.v1.template")
    assert "tracked browsing" in why and "uses_tracked_fields" in why
    ok = parse_campaign(
        {**BASE, "variants": tracked, "uses_tracked_fields": ["last_viewed_product"]}, PROGRAM
    )
    assert ok.fields() == {"last_viewed_product"}


@pytest.mark.parametrize(
    ("changes", "field", "why"),
    [
        ({"category": "promo"}, "category", "must be one of marketing, transactional"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"holdout_share": 1.5}, "holdout_share", "share from 0"),
        ({"trigger": {"type": "sometimes"}}, "trigger.type", "must be one of"),
        ({"trigger": {"type": "category_launch"}}, "trigger.category", "required"),
        (
            {"variants": [{"id": "v1", "template": "{% if first_name %}Hi{% endif %}"}]},
            "variants.v1.template",
            "use a variant with `when`",
        ),
        (
            {"variants": [{"id": "v1", "template": "Hi {{ first_name|upper }}"}]},
            "variants.v1.template",
            "filters, attributes and expressions are refused",
        ),
        (
            {"variants": [{"id": "v1", "template": "Hi {{ first_name "}]},
            "variants.v1.template",
            "Jinja syntax error",
        ),
        (
            {"variants": [{"id": "v1", "template": "Hi {{ shoe_size }}"}]},
            "variants.v1.template",
            "unknown field {{ shoe_size }}",
        ),
        (
            {"variants": [{"id": "v1", "template": "Your {{ product_name }}"}]},
            "variants.v1.template",
            "not available for customers",
        ),
        (
            {"variants": [{"id": "v1", "template": "{{ offer }} off"}]},
            "variants.v1.template",
            "has no offer",
        ),
        (
            {"audience": [{"field": "lifecycle_stage", "op": "in", "value": "lapsed"}]},
            "audience[0].value",
            "non-empty list",
        ),
        (
            {"audience": [{"field": "password", "op": "eq", "value": "x"}]},
            "audience[0]",
            "field must be one of",
        ),
        (
            {
                "variants": [
                    {
                        "id": "v1",
                        "template": "Hi",
                        "when": [{"field": "orders_count", "op": "eq", "value": 0}],
                    }
                ]
            },
            "variants",
            "need no `when`",
        ),  # fmt: skip
        (
            {
                "category": "transactional",
                "variants": [{"id": "v1", "template": "{{ offer }}", "offer": "10% off"}],
            },
            "variants.v1.offer",
            "transactional message carries no offer",
        ),  # fmt: skip
        ({"planned_units": 1}, "planned_units", "whole number of units >= 2"),
        ({"planned_units": "lots"}, "planned_units", "whole number of units >= 2"),
    ],
)
def test_invalid_campaigns_name_the_field_and_why(changes, field, why):
    found = problems(**changes)
    assert any(f == field and why in w for _, f, w in found), found


def test_a_folder_reports_every_bad_file_and_duplicate_ids(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(BASE))
    (tmp_path / "c.yaml").write_text("id: [unclosed")
    with pytest.raises(CampaignError) as err:
        load_campaigns(tmp_path, PROGRAM)
    files = {(f.rsplit("/", 1)[-1], fld) for f, fld, _ in err.value.problems}
    assert ("b.yaml", "id") in files and ("c.yaml", "(file)") in files
