"""Drift of the answers: this run's correctness-phase answers against those of its series'
last PASS run (the gate's outcome.json in the history). A new model version is expected to
answer differently, a new serving image for the same model is not; so drift is always
reported and the gate fails on it only when asked (`correctness_drift` = fail)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from history.store import Entry

# Changed prompts listed in the verdict (the count covers them all).
MAX_LISTED = 20


def answers(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The correctness phase's answers by prompt, as metrics.json keeps them ({} if none)."""
    got = (metrics.get("correctness") or {}).get("answers") or {}
    return {str(k): str(v) for k, v in got.items()} if isinstance(got, Mapping) else {}


def baseline(series: Sequence[Entry], before: Entry) -> Entry | None:
    """The series' last run before `before` that the gate passed and that kept answers."""
    earlier = [
        e for e in series
        if e.name != before.name and e.record.started <= before.record.started
        and e.outcome == "PASS" and answers(e.metrics)
    ]  # fmt: skip
    return max(earlier, key=lambda e: e.record.started) if earlier else None


def drift(me: Entry, series: Sequence[Entry]) -> dict[str, Any]:
    """{"state": "NO BASELINE" | "NO ANSWERS" | "SAME" | "DRIFT", ...} with the prompts
    compared, those changed (before and now) and the baseline run."""
    now = answers(me.metrics)
    if not now:
        return {"state": "NO ANSWERS", "note": "this run's correctness phase kept no answers"}
    base = baseline(series, me)
    if base is None:
        return {"state": "NO BASELINE", "note": "no earlier PASS run of the series kept answers"}
    before = answers(base.metrics)
    common = sorted(set(now) & set(before))
    changed = [p for p in common if now[p] != before[p]]
    return {
        "state": "DRIFT" if changed else "SAME",
        "baseline_run": base.record.run_id,
        "compared": len(common),
        "changed": len(changed),
        "prompts": [
            {"prompt": p, "before": before[p], "now": now[p]} for p in changed[:MAX_LISTED]
        ],
    }


def describe(result: Mapping[str, Any]) -> str:
    """One line for logs, the summary and the report."""
    state = result.get("state", "")
    if state in ("SAME", "DRIFT"):
        return (
            f"{state}: {result['changed']} of {result['compared']} answers differ from the last "
            f"PASS run {result['baseline_run']}"
        )
    return f"{state}: {result.get('note', '')}"
