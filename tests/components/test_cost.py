"""The run's cost from a clean-up record: replica-seconds times the price table, 'unknown'
(with the reason) rather than a made-up number, and nothing for an endpoint that never
had a model deployed."""

import pytest

from components.cost import describe, load_price_table, run_cost, validate_prices

TABLE = {
    "source": "test",
    "date": "2026-11-25",
    "verified": True,
    "machine_types": {"n1-standard-8": 0.40},
    "accelerators": {"NVIDIA_TESLA_T4": 0.35},
}


def record(deployed, created=1000.0, deleted=1000.0 + 3600):
    return {
        "endpoints": [
            {"name": "e1", "created_at": created, "deleted_at": deleted, "deployed": deployed}
        ]
    }


def model(machine="n1-standard-8", accelerator="NVIDIA_TESLA_T4", count=2, start=1000.0 + 600):
    return {
        "id": "1",
        "machine_type": machine,
        "accelerator_type": accelerator,
        "accelerator_count": count,
        "min_replicas": 2,
        "max_replicas": 4,
        "deploy_started_at": start,
    }


def test_replica_seconds_from_deploy_start_to_delete_end_times_hourly_price():
    cost = run_cost(record([model()]), output_tokens=50_000, table=TABLE)
    assert cost["status"] == "known" and cost["reason"] == ""
    # 3000 s x 2 replicas x (0.40 + 2 x 0.35) $/h
    assert cost["billed_replica_seconds"] == 6000
    assert cost["usd"] == pytest.approx(6000 * 1.10 / 3600)
    assert cost["usd_per_1k_output_tokens"] == pytest.approx(cost["usd"] / 50, rel=1e-6)
    assert cost["endpoint_seconds"] == 3600
    assert "$1.8333 for 6000.0 replica-seconds" in describe(cost)


def test_overrides_win_over_the_table_and_bad_ones_are_refused():
    cost = run_cost(record([model()]), {"NVIDIA_TESLA_T4": "1.0"}, table=TABLE)
    assert cost["usd"] == pytest.approx(6000 * 2.40 / 3600)
    assert cost["price_overrides"] == {"NVIDIA_TESLA_T4": 1.0}
    with pytest.raises(ValueError, match="a=x"):
        validate_prices({"a": "x", "b": "1"})
    with pytest.raises(ValueError, match="c=-1"):
        validate_prices({"c": -1})


def test_an_unknown_type_makes_the_cost_unknown_and_says_why():
    cost = run_cost(record([model(accelerator="NVIDIA_H200")]), table=TABLE)
    assert cost["status"] == "unknown" and cost["usd"] is None
    assert "no price for NVIDIA_H200" in cost["reason"]
    assert cost["items"][0]["usd"] is None
    assert describe(cost).startswith("unknown (")


def test_an_endpoint_left_behind_has_no_known_cost():
    cost = run_cost(record([model()], deleted=None), table=TABLE)
    assert cost["status"] == "unknown" and "still billed" in cost["reason"]


def test_a_run_that_never_deployed_costs_only_the_endpoints_lifetime_which_is_free():
    cost = run_cost(record([], deleted=1000.0 + 42), table=TABLE)
    assert cost["status"] == "known" and cost["usd"] == 0
    assert cost["billed_replica_seconds"] == 0 and cost["endpoint_seconds"] == 42
    assert "no model was deployed" in describe(cost)


def test_the_shipped_table_names_its_source_and_date():
    table = load_price_table()
    assert table["source"].startswith("https://cloud.google.com/vertex-ai/pricing")
    assert table["date"] and "verified" in table
    assert table["machine_types"]["n1-standard-4"] > 0
    validate_prices({**table["machine_types"], **table["accelerators"]})


def test_the_pipeline_run_billing_id_is_recorded(monkeypatch):
    from components.cost import billing_id_from_environment

    monkeypatch.setenv(
        "VERTEX_AI_PIPELINES_RUN_LABELS", '{"vertex-ai-pipelines-run-billing-id": "123456"}'
    )
    assert billing_id_from_environment() == "123456"
    monkeypatch.setenv("VERTEX_AI_PIPELINES_RUN_LABELS", "not json")
    assert billing_id_from_environment() == ""
    rec = record([model()])
    rec["endpoints"][0]["billing_id"] = "789"
    assert run_cost({**rec, "billing_id": "123456"}, table=TABLE)["billing_id"] == "123456,789"
