"""The regression run's Vertex AI request body, produced by the project's own code.

`deploytest submit --dry-run --json` prints the `PipelineJob` REST body it would POST;
the Scheduler job sends exactly that. Plain Python (no jsii).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence

from deploytest_infra.settings import InfraSettings

DEFAULT_CLI: tuple[str, ...] = (sys.executable, "-m", "deploytest")
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class RequestBodyError(RuntimeError):
    """`deploytest submit --dry-run --json` did not produce a request body."""


def regression_submit_args(settings: InfraSettings) -> list[str]:
    """The `deploytest submit` arguments of the scheduled regression run."""
    args = [
        "submit",
        "--project",
        settings.project_id,
        "--location",
        settings.region,
        "--pipeline-root",
        settings.pipeline_root,
        "--service-account",
        settings.runner_email,
        "--model",
        settings.regression_model,
        "--locustfile",
        settings.regression_locustfile_uri,
        "--template-uri",
        settings.template_uri(settings.scheduler_template_ref),
        "--machine-type",
        settings.machine_type,
        "--accelerator-type",
        settings.serving_gpu_type,
        "--accelerator-count",
        str(settings.serving_gpu_count),
        "--slo-p95-ms",
        f"{settings.slo_p95_ms:g}",
        "--max-failure-ratio",
        f"{settings.max_failure_ratio:g}",
        "--min-rps",
        f"{settings.min_rps:g}",
        "--display-name",
        f"{settings.prefix}-regression",
        # judged against the history of its series; a regression fails the run (history/)
        "--trigger",
        "schedule",
        "--history",
        settings.pipeline_root.rstrip("/") + "/history",
    ]
    if settings.kms_key_name:
        args += ["--kms-key-name", settings.kms_key_name]
    # the run-end message (notifications.py): to the stack's topic and webhook secret
    if settings.notify_topic_name:
        args += ["--notify-topic", settings.notify_topic_name]
    if settings.notify_secret_version:
        args += ["--notify-secret", settings.notify_secret_version]
    # --label: on the PipelineJob (its bill); --cost-label: on the endpoints it creates.
    for key, value in {**settings.cost_labels, "trigger": "scheduler"}.items():
        args += ["--label", f"{key}={value}"]
    for key, value in settings.cost_labels.items():
        args += ["--cost-label", f"{key}={value}"]
    for key, value in settings.prices.items():
        args += ["--price", f"{key}={value}"]
    return args + ["--dry-run", "--json"]


def regression_request_body(
    settings: InfraSettings, cli: Sequence[str] = DEFAULT_CLI, timeout: float = 300
) -> dict:
    """Run `deploytest submit ... --dry-run --json` and return the PipelineJob it prints."""
    cmd = [*cli, *regression_submit_args(settings)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RequestBodyError(f"could not run {' '.join(cmd)}: {exc}") from exc
    if proc.returncode != 0:
        raise RequestBodyError(
            f"`{' '.join(cmd)}` exited with {proc.returncode}:\n{proc.stderr.strip()}\n"
            f"{proc.stdout.strip()}"
        )
    try:
        body = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RequestBodyError(
            f"`deploytest submit --dry-run --json` printed no single JSON object: {exc}\n"
            f"stdout was:\n{proc.stdout[:2000]}"
        ) from exc
    if not isinstance(body, dict):
        raise RequestBodyError("`deploytest submit --dry-run --json` printed no JSON object")
    return body


def pipeline_jobs_url(settings: InfraSettings) -> str:
    return (
        f"https://{settings.region}-aiplatform.googleapis.com/v1/projects/"
        f"{settings.project_id}/locations/{settings.region}/pipelineJobs"
    )
