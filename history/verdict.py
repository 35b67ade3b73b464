"""The statistical verdict: is a candidate run worse than the runs of its series before it?

Per metric:
* **baseline**: the series' earlier runs since the last change point Otava finds in them (a
  step the series already took is history, not noise), at most MAX_BASELINE runs.
* **series test** (every metric): is the candidate a plausible next draw of the baseline? A
  two-sided Student's t prediction test, t = (x - mean) / (s * sqrt(1 + 1/n)), n - 1 degrees of
  freedom: the test Bencher's t-test threshold uses. It carries the run-to-run noise.
* **per-request test**, where the per-request data is the stronger evidence: p50 latency gets a
  Mann-Whitney U test of the candidate's response times against the baseline runs' pooled
  (Locust's response-time histograms); failure ratio gets Fisher's exact test on the request
  counts (a series of mostly-zero ratios has no variance to test against).
* a word: REGRESSION or IMPROVEMENT when the tests agree at ALPHA and the change is at least
  MIN_CHANGE (a practical floor: a 1 % shift may be real and still not worth a red build).

Thresholds (ALPHA, MIN_CHANGE, MIN_HISTORY) come from the measurement in
tests/history/test_verdict_power.py; see its docstring for the figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from components.metrics_schema import LATENCY_FIELDS, upgrade
from history.changepoints import change_points
from history.store import Entry

ALPHA = 0.02
MIN_CHANGE = 0.05
# Fewer earlier runs than this: NOT ENOUGH HISTORY. With 6, stable synthetic series alarm in
# about 2 % and a 25 % slowdown under 5 % run-to-run noise is called in about 83 %; with 3 the
# false alarms pass 5 % (tests/history/test_verdict_power.py has the table).
MIN_HISTORY = 6
MAX_BASELINE = 30
# A failure ratio must also rise by this much (absolute) to count: 0 -> 0.2 % is not a regression.
MIN_FAILURE_RATIO_CHANGE = 0.01
# Bound the per-request sample: Mann-Whitney is O(n log n), Locust runs can be long.
MAX_REQUESTS_PER_SIDE = 50_000

REGRESSION, IMPROVEMENT, NO_CHANGE = "REGRESSION", "IMPROVEMENT", "NO CHANGE"
NOT_ENOUGH_HISTORY = "NOT ENOUGH HISTORY"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str
    unit: str
    lower_is_better: bool
    gated: bool
    per_request: str = ""  # "", "mannwhitney" or "fisher"


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("p50_ms", "p50 latency", "ms", True, True, "mannwhitney"),
    MetricSpec("p95_ms", "p95 latency", "ms", True, True),
    # The tail of a short run is its noisiest number: reported, never gating.
    MetricSpec("p99_ms", "p99 latency", "ms", True, False),
    MetricSpec("rps", "requests/s", "1/s", False, True),
    MetricSpec("output_tokens_per_s", "output tokens/s", "1/s", False, True),
    MetricSpec("failure_ratio", "failure ratio", "", True, True, "fisher"),
    # Streaming runs only (metrics.json schema 2): judged where the candidate has a number.
    MetricSpec("ttft_p95_ms", "p95 time to first token", "ms", True, True),
)


@dataclass
class MetricVerdict:
    metric: str
    label: str
    gated: bool
    candidate: float
    baseline: float | None  # mean of the baseline runs
    baseline_runs: int
    change_pct: float | None
    method: str
    pvalue: float | None
    request_pvalue: float | None
    word: str
    note: str = ""


@dataclass
class Verdict:
    candidate_run: str
    series_key: str
    series: str
    history_runs: int  # earlier runs of the series
    overall: str
    metrics: list[MetricVerdict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable history entries
    # The answers against the series' last PASS run (history/drift.py); {} when not judged.
    correctness_drift: dict[str, Any] = field(default_factory=dict)
    # This run's entry in the history, where the gate writes its outcome.
    history_entry: str = ""

    @property
    def gate_failed(self) -> bool:
        return any(m.gated and m.word == REGRESSION for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gate_failed": self.gate_failed}


def prediction_ttest(baseline: Sequence[float], value: float) -> float:
    """Two-sided p-value that `value` is one more draw from the baseline's normal population."""
    from scipy import stats

    n = len(baseline)
    mean = sum(baseline) / n
    sd = math.sqrt(sum((b - mean) ** 2 for b in baseline) / (n - 1)) if n > 1 else 0.0
    if sd == 0.0:
        return 1.0 if math.isclose(value, mean, rel_tol=1e-12, abs_tol=1e-12) else 0.0
    t = (value - mean) / (sd * math.sqrt(1 + 1 / n))
    return float(2 * stats.t.sf(abs(t), n - 1))


def _expand(histogram: Mapping[float, int], limit: int):
    import numpy as np

    keys = np.array(list(histogram.keys()), dtype=float)
    counts = np.array(list(histogram.values()), dtype=np.int64)
    total = int(counts.sum())
    if total > limit:  # thin evenly, keeping the histogram's shape
        counts = np.floor(counts * (limit / total)).astype(np.int64)
    return np.repeat(keys, counts)


def mannwhitney(candidate: Mapping[float, int], baseline: Sequence[Mapping[float, int]]):
    """(p-value, +1 if the candidate is slower / -1 faster) of a Mann-Whitney U test."""
    from collections import Counter

    from scipy import stats

    pooled: Counter[float] = Counter()
    for h in baseline:
        pooled.update(h)
    x = _expand(candidate, MAX_REQUESTS_PER_SIDE)
    y = _expand(pooled, MAX_REQUESTS_PER_SIDE)
    if len(x) == 0 or len(y) == 0:
        return None, 0
    result = stats.mannwhitneyu(x, y, alternative="two-sided")
    effect = result.statistic / (len(x) * len(y)) - 0.5  # > 0: candidate tends to be slower
    return float(result.pvalue), (1 if effect > 0 else -1 if effect < 0 else 0)


def fisher(candidate: Mapping[str, Any], baseline: Sequence[Mapping[str, Any]]):
    """Fisher's exact test on failures/requests, candidate against the pooled baseline."""
    from scipy import stats

    cf, cr = int(candidate["failures"]), int(candidate["requests"])
    bf = sum(int(m["failures"]) for m in baseline)
    br = sum(int(m["requests"]) for m in baseline)
    if cr == 0 or br == 0:
        return None
    return float(stats.fisher_exact([[cf, cr - cf], [bf, br - bf]]).pvalue)


def baseline_window(values: Sequence[float]) -> tuple[int, str]:
    """Start index of the baseline: after Otava's last change point, at most MAX_BASELINE runs."""
    start, note = 0, ""
    points = change_points(values)
    if points:
        start = points[-1].index
        note = f"baseline since the change point at earlier run {start + 1}"
    return max(start, len(values) - MAX_BASELINE), note


def number(metrics: Mapping[str, Any], name: str) -> float | None:
    """metrics[name] as a finite float, or None (missing, null, not a number)."""
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def judge_metric(
    spec: MetricSpec, candidate: Entry, history: Sequence[Entry], min_history: int
) -> MetricVerdict:
    value = number(candidate.metrics, spec.name)
    assert value is not None, spec.name
    usable = [e for e in history if number(e.metrics, spec.name) is not None]
    if spec.name in LATENCY_FIELDS:  # like with like: exact E2E or Locust's rounded figures
        source = candidate.metrics.get("latency_source")
        usable = [e for e in usable if e.metrics.get("latency_source") == source]
    values = [float(e.metrics[spec.name]) for e in usable]
    start, note = baseline_window(values) if len(values) >= min_history else (0, "")
    base_entries, base = usable[start:], values[start:]
    verdict = MetricVerdict(
        metric=spec.name,
        label=spec.label,
        gated=spec.gated,
        candidate=value,
        baseline=None,
        baseline_runs=len(base),
        change_pct=None,
        method={
            "fisher": "Fisher exact (requests)",
            "mannwhitney": "t-test (prediction) + Mann-Whitney U (requests)",
        }.get(spec.per_request, "t-test (prediction)"),
        pvalue=None,
        request_pvalue=None,
        word=NOT_ENOUGH_HISTORY,
        note=note,
    )
    if len(base) < min_history:
        verdict.note = f"{len(base)} comparable earlier run(s), {min_history} needed" + (
            f" ({note})" if note else ""
        )
        return verdict
    mean = sum(base) / len(base)
    verdict.baseline = mean
    verdict.change_pct = (value - mean) / mean * 100 if mean else None
    verdict.pvalue = prediction_ttest(base, value)
    worse = value > mean if spec.lower_is_better else value < mean
    significant = verdict.pvalue < ALPHA
    if spec.per_request == "fisher":
        verdict.request_pvalue = fisher(candidate.metrics, [e.metrics for e in base_entries])
        big = abs(value - mean) >= MIN_FAILURE_RATIO_CHANGE
        significant = verdict.request_pvalue is not None and verdict.request_pvalue < ALPHA
    else:
        big = verdict.change_pct is not None and abs(verdict.change_pct) >= MIN_CHANGE * 100
        histograms = [e.response_times for e in base_entries if e.response_times]
        if spec.per_request == "mannwhitney" and candidate.response_times and histograms:
            p, slower = mannwhitney(candidate.response_times, histograms)
            verdict.request_pvalue = p
            agrees = slower == (1 if worse else -1)
            significant = significant and p is not None and p < ALPHA and agrees
        elif spec.per_request == "mannwhitney":
            verdict.method = "t-test (prediction)"  # no per-request histograms to compare
    if significant and big:
        verdict.word = REGRESSION if worse else IMPROVEMENT
    else:
        verdict.word = NO_CHANGE
    return verdict


def judge(
    candidate: Entry,
    history: Sequence[Entry],
    skipped: Sequence[str] = (),
    min_history: int = MIN_HISTORY,
) -> Verdict:
    """Compare `candidate` with the earlier runs of its series in `history` (every side read
    with metrics.json schema 6's meaning of p50_ms .. mean_ms, whatever version wrote it)."""
    candidate = replace(candidate, metrics=upgrade(candidate.metrics))
    history = [replace(e, metrics=upgrade(e.metrics)) for e in history]
    key = candidate.record.series.key()
    earlier = sorted(
        (
            e
            for e in history
            if e.record.series.key() == key
            and e.record.run_id != candidate.record.run_id
            and e.record.started < candidate.record.started
        ),
        key=lambda e: e.record.started,
    )
    verdict = Verdict(
        candidate_run=candidate.record.run_id,
        series_key=key,
        series=candidate.record.series.describe(),
        history_runs=len(earlier),
        overall=NOT_ENOUGH_HISTORY,
        skipped=list(skipped),
    )
    for spec in METRICS:
        if number(candidate.metrics, spec.name) is not None:
            verdict.metrics.append(judge_metric(spec, candidate, earlier, min_history))
    words = [m.word for m in verdict.metrics if m.gated]
    if verdict.gate_failed:
        verdict.overall = REGRESSION
    elif NOT_ENOUGH_HISTORY in words:
        verdict.overall = NOT_ENOUGH_HISTORY
    elif IMPROVEMENT in words:
        verdict.overall = IMPROVEMENT
    else:
        verdict.overall = NO_CHANGE
    return verdict


def notes(verdict: Verdict) -> list[str]:
    """The metrics' notes, one line for a note that every metric shares."""
    found = [(m.label, m.note) for m in verdict.metrics if m.note]
    texts = {note for _, note in found}
    if len(found) > 1 and len(texts) == 1 and len(found) == len(verdict.metrics):
        return [f"every metric: {found[0][1]}"]
    return [f"{label}: {note}" for label, note in found]


def format_verdict(verdict: Verdict) -> str:
    """The verdict as a plain-text table."""
    rows = [("metric", "candidate", "baseline", "change", "method", "p-value", "verdict")]
    for m in verdict.metrics:
        p = [f"{v:.2g}" for v in (m.pvalue, m.request_pvalue) if v is not None]
        rows.append(
            (
                m.label + ("" if m.gated else " (not gated)"),
                f"{m.candidate:.4g}",
                "-" if m.baseline is None else f"{m.baseline:.4g} (n={m.baseline_runs})",
                "-" if m.change_pct is None else f"{m.change_pct:+.1f}%",
                m.method,
                " / ".join(p) or "-",
                m.word,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"series {verdict.series_key}: {verdict.series}"]
    lines.append(f"candidate {verdict.candidate_run} against {verdict.history_runs} earlier run(s)")
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for note in notes(verdict):
        lines.append(f"note: {note}")
    for problem in verdict.skipped:
        lines.append(f"skipped history entry {problem}")
    lines.append(f"regression verdict: {verdict.overall}")
    return "\n".join(lines)
