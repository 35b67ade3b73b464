"""Change points over a series of runs, found by Apache Otava (e-divisive means + t-test merge).

Otava's `compute_change_points` is the algorithm of "Hunter: Using Change Point Detection to Hunt
for Performance Regressions" (Fleming et al., 2023): it splits the series with e-divisive in
sliding windows, then keeps only the splits whose two sides differ by a t-test at `max_pvalue`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Otava's own default: a split must be significant at 0.001. On stable synthetic series of 12-24
# runs with 5 % noise it reported a change point in 1.5-2 % of series and found a mid-series
# 25 % step in 90-98 % (tests/history/test_verdict_power.py measures it).
MAX_PVALUE = 0.001
WINDOW_LEN = 30


@dataclass(frozen=True)
class ChangePoint:
    index: int  # the first run after the change
    before: float  # mean of the segment before
    after: float  # mean of the segment after
    change_pct: float
    pvalue: float


def change_points(values: Sequence[float], max_pvalue: float = MAX_PVALUE) -> list[ChangePoint]:
    """Otava's change points of `values` (oldest first)."""
    if len(values) < 3:
        return []
    from otava.analysis import compute_change_points

    points, _ = compute_change_points(
        [float(v) for v in values], window_len=WINDOW_LEN, max_pvalue=max_pvalue
    )
    return [
        ChangePoint(
            index=int(cp.index),
            before=float(cp.stats.mean_1),
            after=float(cp.stats.mean_2),
            change_pct=float(cp.stats.forward_change_percent()),
            pvalue=float(cp.stats.pvalue),
        )
        for cp in points
    ]
