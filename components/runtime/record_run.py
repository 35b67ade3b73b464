"""The record task's work (the KFP component is components/record_run.py): record the run
(history.recorder), judge it against its series' history, and render the run report
(reports.run_report)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any


def record_and_report(
    *,
    stats_dir: str,
    stats_uri: str,
    record_dir: str,
    report_path: str,
    model_resource: str,
    history: str,
    regression: str,
    trigger: str,
    template: str,
    run_id: str,
    job_id: str,
    location: str,
    api_endpoint: str,
    parameters: dict[str, Any],
    gate: dict[str, Any],
    candidate: dict[str, Any] | None = None,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, Any]:
    """Write run.json (+ verdict.json) to `record_dir`, append the run to `history`, write
    the report to `report_path`. A right-sizing branch gives its `candidate`: the entry's run
    id then names it too (components/runtime/candidate_labels.py). Return {"text":
    verdict.json's text or "", "metadata": the record artifact's metadata}."""
    from components.runtime.make_labels import run_label
    from history.recorder import record_and_judge, regression_mode
    from reports.run_report import build_report

    os.makedirs(record_dir, exist_ok=True)
    run = run_label(run_id, job_id)
    if candidate:
        from components.runtime.candidate_labels import candidate_run_id

        run = candidate_run_id(run, candidate)
    rec, metrics, series, verdict = record_and_judge(
        stats_dir=stats_dir,
        out_dir=record_dir,
        history=history,
        run_id=run,
        pipeline_job="" if "{{" in job_id else job_id,  # an unresolved placeholder
        model=model_resource,
        template=template,
        trigger=trigger,
        parameters=parameters,
        location=location,
        api_endpoint=api_endpoint,
        log=log,
    )
    page = build_report(
        rec.run_id,
        stats_dir=stats_dir,
        record=rec,
        metrics=metrics,
        series=series,
        verdict=verdict,
        gate=gate,
        regression_mode=regression_mode(regression, trigger),
        cleanup_note="The clean-up runs after this report, in the exit handler: its record is the "
        "output of the `clean up` task.",
        locust_report_link=stats_uri.rstrip("/") + "/report.html",
        cost_note="The cost is known after the clean-up, in the exit handler: see the output "
        "of the `clean up` task (and `deploytest run`'s summary).",
    )
    os.makedirs(os.path.dirname(report_path) or ".", exist_ok=True)
    with open(report_path, "w", encoding="utf-8") as f:
        f.write(page)
    metadata = {"series_key": rec.series.key(), "history": history}
    if verdict is None:
        return {"text": "", "metadata": metadata}
    metadata["verdict"] = verdict.overall
    return {"text": json.dumps(verdict.to_dict()), "metadata": metadata}
