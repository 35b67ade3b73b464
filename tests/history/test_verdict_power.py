"""The verdict's false-alarm rate and recall, measured on synthetic series with known changes.

Run-to-run noise 5 % on the latency scale (plus the sampling noise of 400 requests per run), the
candidate either drawn from the same population or 25 % slower. The figures (seed 7, 400 series
each) at ALPHA 0.02 two-sided:

    earlier runs   false alarms   recall (25 % slower)
    5              3.0 %          73 %
    6              4.0 %          86 %
    8              2.0 %          89 %
    10             3.5 %          94 %

MIN_HISTORY = 6 is the smallest baseline with recall above 85 % and false alarms under 5 %.
Otava's change points on 24-run series: 1 % false, 99.5 % of mid-series 25 % steps found.
"""

from __future__ import annotations

import numpy as np

from history.changepoints import change_points
from history.verdict import MIN_HISTORY, REGRESSION, judge
from tests.history.synthetic import history, make_entry


def rates(n_history: int, trials: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    false_alarms = hits = 0
    for _ in range(trials):
        earlier = history(n_history, rng)
        false_alarms += judge(make_entry(n_history, rng), earlier).overall == REGRESSION
        hits += judge(make_entry(n_history, rng, slowdown=1.25), earlier).overall == REGRESSION
    return false_alarms / trials, hits / trials


def test_false_alarms_at_most_5_percent_and_recall_at_the_minimum_history():
    false_alarm, recall = rates(MIN_HISTORY, trials=300, seed=11)
    print(f"n={MIN_HISTORY}: false alarms {false_alarm:.1%}, recall {recall:.1%}")
    assert false_alarm <= 0.05
    assert recall >= 0.75


def test_longer_history_keeps_false_alarms_down_and_finds_more():
    false_alarm, recall = rates(12, trials=200, seed=12)
    print(f"n=12: false alarms {false_alarm:.1%}, recall {recall:.1%}")
    assert false_alarm <= 0.05
    assert recall >= 0.85


def test_otava_finds_mid_series_steps_and_stays_quiet_on_stable_series():
    rng = np.random.default_rng(13)
    trials, found, false = 100, 0, 0
    for _ in range(trials):
        stable = [e.metrics["p95_ms"] for e in history(24, rng)]
        false += bool(change_points(stable))
        stepped = [e.metrics["p95_ms"] for e in history(24, rng, step_at=12)]
        found += any(abs(cp.index - 12) <= 1 for cp in change_points(stepped))
    print(
        f"Otava on 24 runs: false change points {false / trials:.0%}, "
        f"steps found {found / trials:.0%}"
    )
    assert false / trials <= 0.05
    assert found / trials >= 0.9
