"""Runs grouped by series, and the per-metric change points Otava finds in each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from history.changepoints import ChangePoint, change_points
from history.records import Series
from history.store import Entry
from history.verdict import METRICS


@dataclass
class SeriesRuns:
    key: str
    series: Series
    entries: list[Entry]  # oldest first
    change_points: dict[str, list[ChangePoint]] = field(default_factory=dict)

    def values(self, metric: str) -> list[float]:
        return [float(e.metrics.get(metric, float("nan"))) for e in self.entries]


def group(entries: Sequence[Entry]) -> dict[str, SeriesRuns]:
    """Entries by series key, each oldest first, with Otava's change points per metric."""
    out: dict[str, SeriesRuns] = {}
    for e in sorted(entries, key=lambda e: e.record.started):
        key = e.record.series.key()
        out.setdefault(key, SeriesRuns(key, e.record.series, [])).entries.append(e)
    for runs in out.values():
        for spec in METRICS:
            if all(spec.name in e.metrics for e in runs.entries):
                runs.change_points[spec.name] = change_points(runs.values(spec.name))
    return out


def select(groups: dict[str, SeriesRuns], wanted: str) -> list[SeriesRuns]:
    """The series whose key starts with `wanted` or whose model display name is `wanted`."""
    if not wanted:
        return list(groups.values())
    return [
        g
        for g in groups.values()
        if g.key.startswith(wanted) or g.series.model_display_name == wanted
    ]
