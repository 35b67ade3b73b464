"""KFP v2 component: record the run, judge it against its history, write the run report.

Runs after the load test ended and before the gate: a run cancelled earlier records nothing, and
a failing gate still leaves the record in the history. Never fails on a verdict; it returns the
verdict (JSON) for the gate, which applies `regression` (fail, warn, off). The work is
components/runtime/record_run.py.
"""

# No `from __future__ import annotations` here: KFP reads the real annotation objects.
from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def record_run(
    stats: Input[Artifact],
    model: Input[Artifact],
    history: str,
    regression: str,
    trigger: str,
    template: str,
    run_id: str,
    job_id: str,
    location: str,
    api_endpoint: str,
    machine_type: str,
    accelerator_type: str,
    accelerator_count: int,
    min_replicas: int,
    max_replicas: int,
    users: int,
    spawn_rate: float,
    duration: str,
    max_new_tokens: int,
    slo_p95_ms: float,
    max_failure_ratio: float,
    min_rps: float,
    record: Output[Artifact],
    report: Output[HTML],
    min_parity: float = 1.0,
    min_expect_pass: float = 1.0,
    slo_checks: list = [],  # noqa: B006 (KFP takes a list default as the parameter's default)
    candidate: dict = {},  # noqa: B006
) -> str:
    """Writes run.json (+ verdict.json) to `record`, appends the run to `history`, renders `report`.

    Args:
        stats: the load test's stats folder (metrics.json, Locust's JSON/CSV stats and report).
        model: the model under test; only `metadata["resourceName"]` is read.
        history: a folder or gs://BUCKET/PREFIX; empty records the run in its folder only.
        regression: the gate's mode (fail, warn, off; empty = by trigger), shown in the report.
        trigger: manual, merge, model-upload or schedule.
        template: the template tag or git commit the pipeline came from.
        run_id: the explicit run id, if any (else the pipeline job's id).
        job_id: the pipeline job's resource name (`PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER`).
        location: the region, for the Model Registry.
        api_endpoint: the emulator's URL; empty means the real regional Vertex AI.
        machine_type: series field.
        accelerator_type: series field.
        accelerator_count: series field.
        min_replicas: series field.
        max_replicas: series field.
        users: series field.
        spawn_rate: series field.
        duration: series field.
        max_new_tokens: series field.
        slo_p95_ms: the SLO, for the report's SLO table.
        max_failure_ratio: the SLO, for the report's SLO table.
        min_rps: the SLO, for the report's SLO table.
        min_parity: the gate's least parity ratio, for the report's table.
        min_expect_pass: the gate's least share of expectations met, for the report's table.
        slo_checks: the gate's extra checks (e.g. "ttft_p95_ms<=500"), for the report's table.
        candidate: a right-sizing branch's candidate (empty: a single run); its key joins the
            history entry's run id.
        record: folder with run.json, metrics.json and verdict.json.
        report: the run report (self-contained HTML).

    Returns:
        verdict.json's text, or "" when there was no history to judge against.
    """
    from components.runtime.record_run import record_and_report

    verdict = record_and_report(
        stats_dir=stats.path,
        stats_uri=stats.uri,
        record_dir=record.path,
        report_path=report.path,
        model_resource=model.metadata.get("resourceName", ""),
        history=history,
        regression=regression,
        trigger=trigger,
        template=template,
        run_id=run_id,
        job_id=job_id,
        location=location,
        api_endpoint=api_endpoint,
        parameters={
            "machine_type": machine_type,
            "accelerator_type": accelerator_type,
            "accelerator_count": accelerator_count,
            "min_replicas": min_replicas,
            "max_replicas": max_replicas,
            "users": users,
            "spawn_rate": spawn_rate,
            "duration": duration,
            "max_new_tokens": max_new_tokens,
        },
        gate={
            "slo_p95_ms": slo_p95_ms,
            "max_failure_ratio": max_failure_ratio,
            "min_rps": min_rps,
            "slo_checks": list(slo_checks),
            "min_parity": min_parity,
            "min_expect_pass": min_expect_pass,
        },
        candidate=dict(candidate) or None,
    )
    record.metadata.update(verdict.pop("metadata"))
    return verdict["text"]
