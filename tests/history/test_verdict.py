"""The verdict's rules: series only, optional metrics, failure counts, degenerate baselines."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from history.store import Entry
from history.verdict import (
    IMPROVEMENT,
    NO_CHANGE,
    NOT_ENOUGH_HISTORY,
    REGRESSION,
    judge,
    prediction_ttest,
)
from tests.history.synthetic import history, make_entry


def with_metrics(entry: Entry, **changes) -> Entry:
    return replace(entry, metrics={**entry.metrics, **changes})


def words(verdict):
    return {m.metric: m.word for m in verdict.metrics}


def test_runs_of_another_series_are_not_compared():
    rng = np.random.default_rng(1)
    earlier = history(10, rng)
    me = make_entry(10, rng, slowdown=2.0)
    other = replace(me.record.series, users=64)
    me = replace(me, record=replace(me.record, series=other))
    verdict = judge(me, earlier)
    assert verdict.history_runs == 0 and verdict.overall == NOT_ENOUGH_HISTORY
    assert not verdict.gate_failed


def test_later_runs_and_the_candidate_itself_are_not_its_history():
    rng = np.random.default_rng(2)
    runs = history(12, rng)
    verdict = judge(runs[5], runs)
    assert verdict.history_runs == 5  # runs 0..4 only


def test_faster_is_an_improvement_not_a_regression():
    rng = np.random.default_rng(3)
    verdict = judge(make_entry(10, rng, slowdown=0.7), history(10, rng))
    assert words(verdict)["p95_ms"] == IMPROVEMENT and words(verdict)["rps"] == IMPROVEMENT
    assert verdict.overall == IMPROVEMENT and not verdict.gate_failed


def test_failures_are_judged_on_request_counts():
    rng = np.random.default_rng(4)
    earlier = [with_metrics(e, failures=0, failure_ratio=0.0) for e in history(8, rng)]
    me = make_entry(8, rng)
    few = with_metrics(me, failures=2, failure_ratio=2 / me.metrics["requests"])
    many = with_metrics(me, failures=40, failure_ratio=40 / me.metrics["requests"])
    assert words(judge(few, earlier))["failure_ratio"] == NO_CHANGE  # 0.5 %: under the floor
    assert words(judge(many, earlier))["failure_ratio"] == REGRESSION
    assert judge(many, earlier).gate_failed


def test_ttft_is_judged_only_where_measured():
    rng = np.random.default_rng(5)
    earlier = [with_metrics(e, ttft_p95_ms=100.0 + i % 3) for i, e in enumerate(history(8, rng))]
    plain = make_entry(8, rng)
    assert "ttft_p95_ms" not in words(judge(plain, earlier))
    assert "ttft_p95_ms" not in words(judge(with_metrics(plain, ttft_p95_ms=None), earlier))
    slow = with_metrics(plain, ttft_p95_ms=140.0)
    assert words(judge(slow, earlier))["ttft_p95_ms"] == REGRESSION


def test_prediction_ttest():
    assert prediction_ttest([10.0, 10.0, 10.0], 10.0) == 1.0
    assert prediction_ttest([10.0, 10.0, 10.0], 11.0) == 0.0
    assert prediction_ttest([9.0, 10.0, 11.0], 10.0) > 0.9
    assert prediction_ttest([9.0, 10.0, 11.0], 20.0) < 0.05
