"""The right-sizing recommendation: per candidate its knee, tokens/s and price, and the
cheapest candidate meeting the SLO, by rate or by price per token; labels and run ids that
keep candidates apart."""

import math

import pytest

from components.runtime.candidate_labels import candidate_labels, candidate_run_id, describe, key
from components.runtime.recommend import candidate_row, recommend

SMALL = {
    "machine_type": "n1-standard-2",
    "accelerator_type": "",
    "accelerator_count": 0,
    "replicas": 1,
}
BIG = {
    "machine_type": "n1-standard-8",
    "accelerator_type": "",
    "accelerator_count": 0,
    "replicas": 1,
}
GPU = {
    "machine_type": "g2-standard-8",
    "accelerator_type": "NVIDIA_L4",
    "accelerator_count": 1,
    "replicas": 2,
}


def _m(knee, tokens):
    return {"knee_rps": knee, "knee_output_tokens_per_s": tokens}


def test_a_row_prices_a_million_output_tokens_at_the_knee():
    row = candidate_row(BIG, _m(32.0, 400.0), usd_per_hour=0.437)
    assert row["outcome"] == "measured" and row["meets"] and row["replicas_needed"] == 1
    assert math.isclose(row["usd_per_million_output_tokens"], 0.437 / (400 * 3600) * 1e6)


def test_replicas_needed_for_a_required_rate_scale_the_per_replica_knee():
    # 2 replicas carry 8 req/s: 4 each; 10 req/s needs ceil(10 / 4) = 3
    row = candidate_row(GPU, _m(8.0, 100.0), usd_per_hour=2.0, required_rps=10.0)
    assert row["replicas_needed"] == 3 and math.isclose(row["usd_per_hour_needed"], 3.0)
    exact = candidate_row(GPU, _m(8.0, 100.0), usd_per_hour=2.0, required_rps=8.0)
    assert exact["replicas_needed"] == 2  # never fewer than measured
    by_tokens = candidate_row(SMALL, _m(2.0, 25.0), 0.1, required_tokens_per_s=100.0)
    assert by_tokens["replicas_needed"] == 4


def test_a_candidate_without_a_result_or_a_knee_is_kept_but_never_chosen():
    failed = candidate_row(SMALL, None, 0.1, failure="its deploy failed")
    assert failed["outcome"] == "failed" and failed["reason"] == "its deploy failed"
    no_knee = candidate_row(SMALL, _m(None, None), 0.1)
    assert no_knee["outcome"] == "measured" and not no_knee["meets"]
    assert "no offered rate" in no_knee["reason"]
    out = recommend([failed, no_knee])
    assert out["recommended"] is None and "no candidate met the SLO" in out["reason"]


def test_the_choice_is_the_cheapest_at_the_required_rate_else_per_token():
    small = candidate_row(SMALL, _m(2.0, 30.0), 0.1093, required_rps=20.0)  # 10 x 0.1093
    big = candidate_row(BIG, _m(32.0, 400.0), 0.437, required_rps=20.0)  # 1 x 0.437
    out = recommend([small, big], required_rps=20.0)
    assert (
        out["recommended"] == BIG
        and out["replicas"] == 1
        and out["chosen_by"] == "usd_per_hour_needed"
    )
    # a low enough rate: the small machine carries it alone and is cheaper
    small = candidate_row(SMALL, _m(2.0, 30.0), 0.1093, required_rps=2.0)
    big = candidate_row(BIG, _m(32.0, 400.0), 0.437, required_rps=2.0)
    assert recommend([small, big], required_rps=2.0)["recommended"] == SMALL
    # no rate: the lowest price per million output tokens at the knee
    out = recommend(
        [candidate_row(SMALL, _m(2.0, 30.0), 0.1093), candidate_row(BIG, _m(32.0, 400.0), 0.437)]
    )
    assert out["recommended"] == BIG and out["chosen_by"] == "usd_per_million_output_tokens"


def test_a_candidate_without_a_price_is_never_chosen_and_the_reason_says_so():
    unpriced = candidate_row(SMALL, _m(2.0, 30.0), None)
    out = recommend([unpriced])
    assert out["recommended"] is None and "price" in out["reason"]


def test_a_knee_at_the_sweeps_top_rate_is_marked_a_lower_bound():
    assert candidate_row(BIG, _m(32.0, 400.0), 0.4, top_rate=32.0)["knee_capped"]
    assert not candidate_row(BIG, _m(16.0, 200.0), 0.4, top_rate=32.0)["knee_capped"]


def test_keys_labels_and_run_ids_tell_candidates_apart():
    assert key(SMALL) == "n1-standard-2" and key(GPU) == "g2-standard-8-nvidia_l4x1-r2"
    assert describe(GPU) == "g2-standard-8 + 1 x NVIDIA_L4, 2 replicas"
    assert candidate_labels({"deploytest-run": "r1"}, GPU) == {
        "deploytest-run": "r1", "deploytest-candidate": "g2-standard-8-nvidia_l4x1-r2",
    }  # fmt: skip
    long_run = "x" * 60
    a, b = candidate_run_id(long_run, SMALL), candidate_run_id(long_run, BIG)
    assert len(a) <= 63 and len(b) <= 63 and a != b and a.endswith("-n1-standard-2")


@pytest.mark.parametrize("bad", [float("nan"), -1.0])
def test_hourly_prices_come_from_the_table_and_bad_overrides_are_refused(bad):
    from components.cost import hourly_price

    usd, why = hourly_price(GPU, {"NVIDIA_L4": 0.5, "g2-standard-8": 0.8})
    assert math.isclose(usd, 1.3) and why == ""
    assert hourly_price({"machine_type": "z9-huge"})[0] is None
    with pytest.raises(ValueError):
        hourly_price(SMALL, {"n1-standard-2": bad})
