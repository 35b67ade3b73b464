"""The run's record, its verdict against history, and its report: the body of the record task.

Runs after the load test ended (so a run cancelled before that never writes a record) and before
the gate (so a failing gate still leaves the record in the history). It never fails on a verdict:
the gate decides what a REGRESSION means (`regression` = fail, warn or off).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from history.records import METRICS_JSON, RUN_JSON, RunRecord, build_record
from history.store import (
    Entry,
    check_metrics,
    entry_name,
    open_store,
    response_times_from_locust,
)

VERDICT_JSON = "verdict.json"
REGRESSION_MODES = ("fail", "warn", "off")


def regression_mode(mode: str, trigger: str) -> str:
    """The gate's mode: as given, or by default `fail` for scheduled runs and `warn` otherwise."""
    if mode:
        return mode
    return "fail" if trigger == "schedule" else "warn"


def check_choices(regression: str, trigger: str) -> None:
    """ValueError naming a bad --regression or --trigger."""
    from history.records import TRIGGERS

    if regression not in ("", *REGRESSION_MODES):
        raise ValueError(f"regression must be one of {', '.join(REGRESSION_MODES)}: {regression!r}")
    if trigger not in TRIGGERS:
        raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}: {trigger!r}")


def model_facts(model: str, location: str, api_endpoint: str) -> tuple[str, str]:
    """(display name, version id) of a Model Registry model."""
    from components.vertex_clients import model_client

    got = model_client(location, api_endpoint).get_model(name=model)
    return got.display_name, got.version_id or ""


def load_fields(metrics: Mapping[str, Any]) -> tuple[str, str, str]:
    """(prompt set, load shape, workload identity) of a load test: the metrics' own fields
    where the schema has them, else the locustfile's defaults (loadtests/prompts/default.txt,
    closed-loop users, no workload)."""
    return (
        str(metrics.get("prompt_set") or "default"),
        str(metrics.get("load_shape") or "users"),
        str(metrics.get("workload_id") or ""),
    )


def record_and_judge(
    *,
    stats_dir: str | Path,
    out_dir: str | Path,
    history: str,
    run_id: str,
    pipeline_job: str,
    model: str,
    template: str,
    trigger: str,
    parameters: Mapping[str, Any],
    location: str,
    api_endpoint: str,
    log=print,
):
    """Write run.json (and verdict.json) into out_dir, append the run to the history, judge it.

    Returns (record, metrics, entries of the series oldest first with this run, verdict or None).
    """
    from history.drift import describe as describe_drift
    from history.drift import drift as answer_drift
    from history.verdict import format_verdict, judge

    stats_dir, out_dir = Path(stats_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = check_metrics(json.loads((stats_dir / METRICS_JSON).read_text()))
    locust_json = stats_dir / "locust_stats.json"
    times = response_times_from_locust(locust_json) if locust_json.is_file() else None
    display_name, version = model_facts(model, location, api_endpoint)
    prompts, shape, workload = load_fields(metrics)
    record = build_record(
        run_id=run_id,
        started_at=metrics["started_at"],
        pipeline_job=pipeline_job,
        model_resource=model,
        model_version=version,
        model_display_name=display_name,
        template=template,
        trigger=trigger,
        parameters=parameters,
        prompt_set=prompts,
        load_shape=shape,
        workload=workload,
        workload_spec=metrics.get("workload"),
    )
    (out_dir / RUN_JSON).write_text(record.to_json())
    (out_dir / METRICS_JSON).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    me = Entry(entry_name(record), record, metrics, times)
    if not history:
        log("no history given: the run is recorded in its folder only")
        return record, metrics, [me], None
    store = open_store(history)
    listing = store.list()
    log(f"appended the run to the history: {store.append(record, metrics, times)}")
    for problem in listing.problems:
        log(f"skipped history entry {problem}")
    verdict = judge(me, listing.entries, listing.problems)
    key = record.series.key()
    series = [e for e in listing.entries if e.record.series.key() == key]
    verdict.correctness_drift = answer_drift(me, series)
    verdict.history_entry = me.name
    log(f"correctness drift: {describe_drift(verdict.correctness_drift)}")
    (out_dir / VERDICT_JSON).write_text(json.dumps(verdict.to_dict(), indent=2) + "\n")
    log(format_verdict(verdict))
    series = sorted([*series, me], key=lambda e: e.record.started)
    return record, metrics, series, verdict


def load_verdict(path: Path):
    """A Verdict back from verdict.json (None if absent or unreadable)."""
    from history.verdict import MetricVerdict, Verdict

    try:
        data = json.loads(path.read_text())
        data.pop("gate_failed", None)
        metrics = [MetricVerdict(**m) for m in data.pop("metrics")]
        return Verdict(**data, metrics=metrics)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def drift_of(verdict_json: str) -> dict[str, Any]:
    """The correctness drift in verdict.json's text ({} when not judged)."""
    return dict(json.loads(verdict_json).get("correctness_drift") or {}) if verdict_json else {}


def entry_of(verdict_json: str) -> str:
    """This run's history entry named in verdict.json's text ("" when none)."""
    return str(json.loads(verdict_json).get("history_entry") or "") if verdict_json else ""


def gate_failed(verdict_json: str) -> tuple[bool, str]:
    """(a gated metric regressed, the overall word) from verdict.json's text ("" = no verdict)."""
    if not verdict_json:
        return False, "NOT JUDGED"
    data = json.loads(verdict_json)
    return bool(data.get("gate_failed")), str(data.get("overall", ""))


def read_record(folder: Path) -> RunRecord | None:
    path = folder / RUN_JSON
    if not path.is_file():
        return None
    return RunRecord.from_json(path.read_text())
