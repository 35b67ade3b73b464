"""evaluate_slo (the SLO decision) and the metrics.json schema."""

from __future__ import annotations

import json

import pytest

from components.metrics_schema import (
    FIELD_UNITS,
    SCHEMA_VERSION,
    V4_FIELDS,
    LoadTestMetrics,
    SchemaError,
    evaluate_checks,
    evaluate_slo,
    format_slo_table,
    parse_check,
    validate_metrics,
)

GOOD = {"requests": 100, "p95_ms": 250.0, "failure_ratio": 0.0, "rps": 20.0}
LIMITS = {"max_p95_ms": 500.0, "max_failure_ratio": 0.01, "min_rps": 10.0}


def _failed(checks) -> set[str]:
    return {c.name for c in checks if not c.passed}


def test_all_thresholds_met():
    passed, checks = evaluate_slo(GOOD, **LIMITS)
    assert passed and not _failed(checks)
    assert [c.name for c in checks] == ["requests", "p95_ms", "failure_ratio", "rps"]
    assert "SLO verdict: PASS" in format_slo_table(checks)


def test_thresholds_are_inclusive():
    edge = {"requests": 1, "p95_ms": 500.0, "failure_ratio": 0.01, "rps": 10.0}
    assert evaluate_slo(edge, **LIMITS)[0]


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"p95_ms": 500.5}, "p95_ms"),
        ({"failure_ratio": 0.02}, "failure_ratio"),
        ({"rps": 9.99}, "rps"),
        ({"requests": 0}, "requests"),
    ],
)
def test_each_threshold_failing(change, failing):
    passed, checks = evaluate_slo({**GOOD, **change}, **LIMITS)
    assert not passed
    assert _failed(checks) == {failing}
    table = format_slo_table(checks)
    assert "SLO verdict: FAIL" in table
    (row,) = [line for line in table.splitlines() if line.startswith(failing)]
    assert row.rstrip().endswith("FAIL")


def test_all_failing():
    bad = {"requests": 0, "p95_ms": 9000.0, "failure_ratio": 1.0, "rps": 0.0}
    passed, checks = evaluate_slo(bad, **LIMITS)
    assert not passed and _failed(checks) == {"requests", "p95_ms", "failure_ratio", "rps"}
    described = "; ".join(c.describe() for c in checks)
    assert "p95_ms 9000 (required <= 500)" in described and "rps 0 (required >= 10)" in described


def test_missing_or_bad_metrics_fail():
    passed, checks = evaluate_slo({"requests": 5, "rps": "fast", "p95_ms": float("nan")}, **LIMITS)
    assert not passed and _failed(checks) == {"p95_ms", "failure_ratio", "rps"}
    assert all(c.measured is None for c in checks if not c.passed)
    assert "missing" in format_slo_table(checks)


def _metrics(**change) -> dict:
    data = {
        "requests": 10,
        "failures": 1,
        "failure_ratio": 0.1,
        "rps": 5.0,
        "p50_ms": 10.0,
        "p90_ms": 20.0,
        "p95_ms": 30.0,
        "p99_ms": 40.0,
        "mean_ms": 15.0,
        "min_ms": 5.0,
        "max_ms": 41.0,
        "output_tokens": 144,
        "output_tokens_per_s": 72.0,
        "duration_s": 2.0,
        "wall_s": 3.0,
        "users": 2,
        "spawn_rate": 2.0,
        "run_time": "2s",
        "processes": 1,
        "max_new_tokens": 16,
        "host": "http://127.0.0.1:1",
        "path": "/predict",
        "locust_version": "2.46.6",
        "started_at": "2026-01-01T00:00:00+00:00",
        "schema_version": 1,
    }
    if change.pop("_v1", False):
        data.update(change)
        return data
    data = LoadTestMetrics.from_dict(data).to_dict()  # + the version-2 fields, defaults
    data["schema_version"] = SCHEMA_VERSION
    data.update(change)
    return data


def test_schema_round_trip_and_units():
    metrics = validate_metrics(_metrics())
    assert LoadTestMetrics.from_json(metrics.to_json()) == metrics
    assert set(FIELD_UNITS) == set(metrics.to_dict())
    assert json.loads(metrics.to_json())["schema_version"] == 6


def test_schema_5_files_read_with_the_exact_latencies_and_6_needs_the_source():
    from components.metrics_schema import V6_FIELDS, upgrade

    v5 = {k: v for k, v in _metrics().items() if k not in V6_FIELDS}
    # A version-5 file from our locustfile: Locust's rounded p95 1500, the requests' own 1547.
    v5.update(p95_ms=1500.0, p99_ms=1600.0, e2e_p50_ms=9.0, e2e_p90_ms=21.0)
    v5.update(e2e_p95_ms=1547.0, e2e_p99_ms=1590.0, e2e_mean_ms=16.0)
    old = validate_metrics({**v5, "schema_version": 5})
    assert old.latency_source == "locust" and old.p95_ms == 1500.0  # as the file meant it
    with pytest.raises(SchemaError, match="missing fields .*'latency_source'"):
        validate_metrics({**v5, "schema_version": 6})
    up = upgrade({**v5, "schema_version": 5})
    assert (up["p95_ms"], up["locust_p95_ms"], up["latency_source"]) == (1547.0, 1500.0, "requests")
    assert up["p50_ms"] == 9.0 and up["locust_p50_ms"] == 10.0 and up["schema_version"] == 5
    # a locustfile of the user's own kept no per-request E2E: Locust's stay, and say so
    own = upgrade({**v5, "e2e_p95_ms": None})
    assert (own["p95_ms"], own["latency_source"]) == (1500.0, "locust")
    assert upgrade(up) == up  # already upgraded: unchanged


def test_histograms_are_bounded_and_checked():
    from components.llm_metrics import bounded_histogram
    from components.metrics_schema import MAX_HISTOGRAM_BINS

    few = bounded_histogram([[12.5, 2], [10.0, 1], [12.5, 1]])
    assert few == {"counts": [[10.0, 1], [12.5, 3]], "n": 4, "step": None}
    many = bounded_histogram([[float(v), 1] for v in range(100, 5100)])
    assert len(many["counts"]) <= MAX_HISTOGRAM_BINS and many["n"] == 5000
    assert many["step"] == 50.0 and all(v % 50 == 0 for v, _ in many["counts"])
    assert validate_metrics(_metrics(histograms={"e2e_ms": many})).histograms["e2e_ms"] == many
    for bad, match in (
        ({"tpot_ms": few}, "unknown series"),
        ({"e2e_ms": {"counts": [[1.0, 1]] * (MAX_HISTOGRAM_BINS + 1)}}, "at most"),
        ({"e2e_ms": {"counts": [[-1.0, 1]]}}, "bad value"),
        ({"e2e_ms": {"counts": [[1.0, 1.5]]}}, "bad count"),
    ):
        with pytest.raises(SchemaError, match=match):
            validate_metrics(_metrics(histograms=bad))
    with pytest.raises(SchemaError, match="latency_source must be one of"):
        validate_metrics(_metrics(latency_source="guess"))


def test_latency_fields_are_the_requests_own_and_locusts_without_them():
    from components.llm_metrics import latency_fields

    locust = {f"locust_{s}_ms": v for s, v in (("p50", 10), ("p90", 20), ("p95", 1500))}
    locust |= {"locust_p99_ms": 1600.0, "locust_mean_ms": 15.0}
    e2e = {"p50": 9.0, "p90": 21.0, "p95": 1547.0, "p99": 1590.0, "mean": 16.0, "count": 40}
    exact = latency_fields(locust, {"e2e_ms": e2e})
    assert exact["p95_ms"] == 1547.0 and exact["latency_source"] == "requests"
    for summary in (None, {"e2e_ms": {**e2e, "count": 0}}):  # no summary; no success
        fallback = latency_fields(locust, summary)
        assert fallback["p95_ms"] == 1500.0 and fallback["latency_source"] == "locust"


def test_gate_checks_judge_what_the_gate_task_sees_with_the_exact_p95():
    from components.metrics_schema import gate_checks

    params = {"slo_p95_ms": 1520.0, "max_failure_ratio": 0.2, "min_rps": 1.0}
    # schema 5: p95_ms is Locust's 1500 (would pass); the requests' own 1547 is judged
    v5 = {**_metrics(schema_version=5, p95_ms=1500.0, p99_ms=1600.0), "e2e_p95_ms": 1547.0}
    from components.metrics_schema import V6_FIELDS

    v5 = {k: v for k, v in v5.items() if k not in V6_FIELDS}
    v5.update(e2e_p50_ms=9.0, e2e_p90_ms=21.0, e2e_p99_ms=1590.0, e2e_mean_ms=16.0)
    p95 = next(c for c in gate_checks(v5, params) if c.name == "p95_ms")
    assert (p95.measured, p95.passed) == (1547.0, False)
    checks = gate_checks(
        _metrics(parity_ratio=0.5, workload_requests=4),
        {**params, "slo_checks": ["p99_ms<=50"], "min_parity": 0.9},
    )
    assert [c.name for c in checks] == [
        "requests", "p95_ms", "failure_ratio", "rps", "p99_ms", "parity_ratio",
    ]  # fmt: skip
    assert [c.passed for c in checks] == [True, True, True, True, True, False]
    assert gate_checks(None, params) == []
    # a field the gate task never sees is refused up front, not failed at the gate
    with pytest.raises(ValueError, match="not among the numbers the gate task sees"):
        parse_check("workload_requests>=1")


def test_schema_4_files_read_without_the_workload_and_5_needs_it():
    from components.metrics_schema import V5_FIELDS, V6_FIELDS

    v4 = {k: v for k, v in _metrics().items() if k not in V5_FIELDS | V6_FIELDS}
    old = validate_metrics({**v4, "schema_version": 4})
    assert (old.workload, old.workload_id, old.achieved) == (None, "", {})
    with pytest.raises(SchemaError, match="missing fields .*'workload'"):
        validate_metrics({**v4, "schema_version": 5})
    assert validate_metrics({**v4, "schema_version": 4}).latency_source == "locust"
    with pytest.raises(SchemaError, match="workload must be an object"):
        validate_metrics(_metrics(workload="64/16"))


def test_schema_3_files_read_without_the_correctness_phase_and_4_needs_it():
    from components.metrics_schema import V5_FIELDS, V6_FIELDS

    v3 = {k: v for k, v in _metrics().items() if k not in V4_FIELDS | V5_FIELDS | V6_FIELDS}
    old = validate_metrics({**v3, "schema_version": 3})
    assert (old.parity_ratio, old.expect_pass_ratio, old.correctness) == (None, None, {})
    with pytest.raises(SchemaError, match="missing fields .*'parity_ratio'"):
        validate_metrics({**v3, "schema_version": 4})
    with pytest.raises(SchemaError, match="parity_ratio must be a ratio"):
        validate_metrics(_metrics(parity_ratio=1.5))
    assert validate_metrics(_metrics(parity_ratio=0.5)).parity_ratio == 0.5


def test_schema_2_files_read_without_the_serving_api_and_3_needs_it():
    v2 = {k: v for k, v in _metrics().items() if k not in ("api", "output_tokens_source")}
    old = validate_metrics({**v2, "schema_version": 2})
    assert (old.api, old.output_tokens_source) == ("deploytest", "answer")
    with pytest.raises(SchemaError, match="missing fields .*'api'"):
        validate_metrics({**v2, "schema_version": 3})
    new = validate_metrics(_metrics(api="openai-chat", output_tokens_source="tokenizer"))
    assert new.to_dict()["api"] == "openai-chat"


def test_schema_1_files_still_read_and_llm_fields_are_checked():
    old = validate_metrics(_metrics(_v1=True))
    assert old.schema_version == 1 and old.llm == {} and not old.stream
    with pytest.raises(SchemaError, match="missing fields"):
        validate_metrics({k: v for k, v in _metrics().items() if k != "ttft_p95_ms"})
    with pytest.raises(SchemaError, match="ttft_p95_ms must be finite"):
        validate_metrics(_metrics(ttft_p95_ms=-1.0))
    with pytest.raises(SchemaError, match="stream must be true or false"):
        validate_metrics(_metrics(stream="yes"))
    good = validate_metrics(_metrics(ttft_p95_ms=120.5, goodput_rps=3.0))
    assert good.to_dict()["ttft_p95_ms"] == 120.5 and good.goodput_rps == 3.0


def test_extra_checks_gate_on_any_metric():
    metrics = _metrics(ttft_p95_ms=120.0, goodput_ratio=0.8)
    ttft, goodput, tpot = evaluate_checks(
        metrics, ["ttft_p95_ms<=150", "goodput_ratio>=0.9", "tpot_p95_ms<=20"]
    )
    assert ttft.passed and not goodput.passed
    assert not tpot.passed and tpot.measured is None  # not measured: fails
    for bad in ("ttft_p95_ms<150", "nope<=1", "ttft_p95_ms<=x", "ttft_p95_ms<=inf"):
        with pytest.raises(ValueError, match="bad SLO check"):
            parse_check(bad)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"schema_version": 7}, "unsupported schema_version"),
        ({"requests": "10"}, "requests must be an int"),
        ({"rps": -1.0}, "rps must be finite"),
        ({"p95_ms": float("inf")}, "p95_ms must be finite"),
        ({"failures": 11, "failure_ratio": 1.1}, "failure_ratio"),
        ({"failure_ratio": 0.5}, "failure_ratio != failures / requests"),
        ({"p95_ms": 5.0}, "p50 <= p90 <= p95 <= p99"),
        ({"requests": 0, "failures": 0, "failure_ratio": 0.0}, "1.0 when there were no requests"),
        ({"users": 0}, "users"),
        ({"extra": 1}, "unknown fields"),
    ],
)
def test_schema_rejects(change, match):
    with pytest.raises(SchemaError, match=match):
        validate_metrics(_metrics(**change))


def test_schema_rejects_missing_field_and_bad_json():
    data = _metrics()
    del data["p99_ms"]
    with pytest.raises(SchemaError, match="missing fields"):
        validate_metrics(data)
    with pytest.raises(SchemaError, match="not JSON"):
        LoadTestMetrics.from_json("{")
