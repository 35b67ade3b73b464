"""Labels on every resource a run creates: how clean-up and the janitor find them.

GCP label keys and values: lowercase letters, digits, `_` and `-`, at most 63 characters;
keys start with a letter. The run label is built from plain strings (the run id, or the
pipeline job's resource name) because Vertex may not substitute a placeholder inside a dict
constant.

Run identity: without an explicit run id, the label comes from the job's resource name
(`PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER`, `projects/P/locations/L/pipelineJobs/ID`),
whose last segment is unique per project and location (it is the resource's id). Not the
job *name* placeholder: KFP documents `{{$.pipeline_job_name}}` as the run's display name,
Vertex AI does not document what it substitutes, and Cloud Build and the Scheduler submit
with fixed display names, so two runs could share a label and one's clean-up delete the
other's endpoint. Job ids may be 128 characters: a longer id is cut and given a digest of
the whole, so two ids that share their first 63 characters still get different labels.
"""

from __future__ import annotations

import hashlib
import re

RUN_LABEL_KEY = "deploytest-run"
MANAGED_LABEL_KEY = "deploytest-managed"
EXPIRES_LABEL_KEY = "deploytest-expires-at"
# Set by Vertex AI Pipelines on a run and propagated to what EndpointCreateOp creates
# (docs: pipelines/understand-pipeline-cost-labels); the key to the run's billed cost.
BILLING_LABEL_KEY = "vertex-ai-pipelines-run-billing-id"
MAX_LABEL_LENGTH = 63
# Slack after the deploy timeout, the load and the clean-up bound before the janitor may
# take an endpoint: the import steps, the gate and scheduling delays of the pipeline.
EXPIRY_SLACK_S = 600

_INVALID = re.compile(r"[^a-z0-9_-]+")
_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def _lowercase_dashed(raw: str) -> str:
    return _INVALID.sub("-", raw.strip().lower()).strip("-")


def label_value(raw: str) -> str:
    """Return `raw` as a valid label value (lowercased, invalid runs become `-`, cut to 63)."""
    return _lowercase_dashed(raw)[:MAX_LABEL_LENGTH].rstrip("-")


def job_id_of(job: str) -> str:
    """The pipeline job's id: the last segment of its resource name (or `job` itself)."""
    return job.strip().rsplit("/pipelineJobs/", 1)[-1]


def run_label(run_id: str, job: str) -> str:
    """The `deploytest-run` value: the explicit run id if given, else the pipeline job's id
    (from its resource name, see the module docstring), unique within 63 characters."""
    raw = run_id or job_id_of(job)
    if "{{" in raw:  # an unresolved placeholder would label every run the same
        raise ValueError(f"the pipeline job's name was not substituted: {raw!r}")
    value = _lowercase_dashed(raw)
    if len(value) > MAX_LABEL_LENGTH:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        value = value[: MAX_LABEL_LENGTH - 9].rstrip("-") + "-" + digest
    if not value:
        raise ValueError("a run needs a run id or a pipeline job id to label its resources")
    return value


def validate_labels(labels: dict[str, str]) -> None:
    """Raise ValueError naming every key or value that GCP would refuse."""
    bad = [f"{k}={v}" for k, v in labels.items() if not _KEY.match(k) or not _VALUE.match(v)]
    if bad:
        raise ValueError(
            "invalid GCP labels (lowercase letters, digits, '_' or '-', at most 63 characters, "
            f"keys start with a letter): {', '.join(bad)}"
        )


def expires_at(
    start: float, deploy_timeout_s: float, load_s: float, cleanup_timeout_s: float
) -> int:
    """Unix second after which an endpoint of the run is a leak: the run's start plus every
    bound the run itself keeps (deploy timeout, load duration, clean-up bound) plus slack."""
    bounds = (deploy_timeout_s, load_s, cleanup_timeout_s)
    if any(b < 0 for b in bounds):
        raise ValueError(f"negative bound in {bounds}")
    return int(start + sum(bounds) + EXPIRY_SLACK_S)


def resource_labels(
    run_id: str,
    job_id: str,
    cost_labels: dict[str, str] | None = None,
    expires: int | None = None,
) -> dict:
    """Every label a created resource carries: the cost labels plus the run's own ones
    (`deploytest-expires-at` when `expires`, a unix second, is given)."""
    labels = dict(cost_labels or {})
    labels[RUN_LABEL_KEY] = run_label(run_id, job_id)
    labels[MANAGED_LABEL_KEY] = "true"
    if expires is not None:
        labels[EXPIRES_LABEL_KEY] = str(int(expires))
    validate_labels(labels)
    return labels


def label_filter(key: str, value: str) -> str:
    """The Vertex AI list filter that selects resources carrying label `key=value`."""
    return f'labels.{key}="{value}"'


def run_filter(label: str) -> str:
    """The Vertex AI list filter that selects a run's resources."""
    return label_filter(RUN_LABEL_KEY, label)
