"""What the Cloud Build triggers pass to the build configs, and which log entries feed
the Model Registry trigger. Plain Python (no jsii), so tests can use it without a synth.

Which audit-log entry, and which field holds the new model (undocumented)
------------------------------------------------------------------------
`ModelService.UploadModel` is a long-running operation. Cloud Audit Logs' convention for
those is two Admin Activity entries: one when the call is accepted (`operation.first`),
carrying the request, and one when it ends (`operation.last`), carrying the result
(`UploadModelResponse{model, modelVersionId}`). Google does not document which of these
Vertex AI writes for UploadModel, nor which fields each holds. So the sink accepts either
entry (the filter names no `operation` field at all), and the trigger reads the model
from `protoPayload.resourceName`, which every audit entry has. The opt-in label is read
from the logged request (`protoPayload.request.model.labels`), so in practice the entry
that carries the request passes. infra/README.md says how to check all of this with one
real upload; if both entries carried the request, one upload would start two builds.
"""

from __future__ import annotations

from deploytest_infra.settings import InfraSettings

BUILD_CONFIG = "cloudbuild.yaml"  # merges to the main branch
MODEL_BUILD_CONFIG = "cloudbuild-model.yaml"  # opted-in Model Registry uploads
BUILDER_BUILD_CONFIG = "builder/cloudbuild.yaml"  # the builder image
PR_BUILD_CONFIG = "cloudbuild-pr.yaml"  # a pull request, on a `/gcbrun` comment
PROMOTE_BUILD_CONFIG = "cloudbuild-promote.yaml"  # test/prod: the pinned version, by hand
PR_LOCUSTFILE_PREFIX = "locustfiles/pr/"  # per-commit locustfiles of PR runs (they expire)
UPLOAD_METHODS = (
    "google.cloud.aiplatform.v1.ModelService.UploadModel",
    "google.cloud.aiplatform.v1beta1.ModelService.UploadModel",
)
# Every audit entry names the resource; the response's `model` is on the last one only.
MODEL_FIELD = "protoPayload.resourceName"
LABELS_FIELD = "protoPayload.request.model.labels"


def model_upload_filter(settings: InfraSettings) -> str:
    """Logging query: opted-in model uploads in the stack's region (any entry of the LRO)."""
    methods = " OR ".join(f'protoPayload.methodName="{m}"' for m in UPLOAD_METHODS)
    key, value = settings.opt_in_label
    return " AND ".join(
        [
            f'logName="projects/{settings.project_id}/logs/cloudaudit.googleapis.com%2Factivity"',
            'protoPayload.serviceName="aiplatform.googleapis.com"',
            f"({methods})",
            "severity<ERROR",
            f'{MODEL_FIELD}:"/locations/{settings.region}/models/"',
            f'{LABELS_FIELD}."{key}"="{value}"',
        ]
    )


def model_trigger_filter(settings: InfraSettings) -> str:
    """CEL filter of the model-upload trigger: only a model of this region."""
    return (
        '_MODEL_RESOURCE_NAME.matches("^projects/[^/]+/locations/'
        f'{settings.region}/models/[^/@]+(@[A-Za-z0-9_-]+)?$")'
    )


def build_substitutions(settings: InfraSettings, runner_email: str) -> dict[str, str]:
    """What both run triggers pass (cloudbuild.yaml adds the image and merge-only ones)."""
    labels = settings.cost_labels
    return {
        "_REGION": settings.region,
        "_DOCKER_REPO": settings.docker_repository,
        "_KFP_REPO": settings.kfp_repository,
        "_PIPELINE_NAME": settings.pipeline_package,
        "_TEMPLATE_TAG": settings.template_tag,
        "_PIPELINE_ROOT": settings.pipeline_root,
        "_RUNNER_SA": runner_email,
        "_LOCUSTFILE": settings.regression_locustfile_uri,
        "_MACHINE_TYPE": settings.machine_type,
        "_ACCELERATOR_TYPE": settings.serving_gpu_type,
        "_ACCELERATOR_COUNT": str(settings.serving_gpu_count),
        "_SLO_P95_MS": f"{settings.slo_p95_ms:g}",
        "_MAX_FAILURE_RATIO": f"{settings.max_failure_ratio:g}",
        "_MIN_RPS": f"{settings.min_rps:g}",
        "_KMS_KEY_NAME": settings.kms_key_name,
        # the run-end message (notifications.py); '' = none
        "_NOTIFY_TOPIC": settings.notify_topic_name,
        "_NOTIFY_SECRET": settings.notify_secret_version,
        "_LABEL_TEAM": labels["team"],
        "_LABEL_ENVIRONMENT": labels["environment"],
        "_LABEL_COST_CENTER": labels["cost-center"],
        "_LABEL_GPU_TYPE": labels["gpu-type"],
    }


def merge_substitutions(settings: InfraSettings, runner_email: str) -> dict[str, str]:
    """cloudbuild.yaml's: images, the regression model, whether to run the load test."""
    model, version = split_model(settings.regression_model)
    return {
        **build_substitutions(settings, runner_email),
        "_SERVING_TORCH_INDEX": settings.serving_torch_index,
        "_LOAD_TEST": "true" if settings.merge_runs_load_test else "false",
        "_MODEL_RESOURCE_NAME": model,
        "_MODEL_VERSION_ID": version,
    }


def _pinned_run_substitutions(settings: InfraSettings, runner_email: str) -> dict[str, str]:
    """Runs of an existing template: the source's KFP repository, the pin or main's tag."""
    common = build_substitutions(settings, runner_email)
    return {
        **{k: v for k, v in common.items() if k not in {"_KFP_REPO", "_TEMPLATE_TAG"}},
        "_TEMPLATE_HOST": settings.source_kfp_host,
        "_TEMPLATE_REF": settings.run_template_ref,
    }


def model_upload_substitutions(settings: InfraSettings, runner_email: str) -> dict[str, str]:
    """cloudbuild-model.yaml's: the model comes from the audit-log entry."""
    return {
        **_pinned_run_substitutions(settings, runner_email),
        "_MODEL_RESOURCE_NAME": f"$(body.message.data.{MODEL_FIELD})",
    }


def promote_substitutions(settings: InfraSettings, runner_email: str) -> dict[str, str]:
    """cloudbuild-promote.yaml's: the pinned version against the regression model."""
    model, version = split_model(settings.regression_model)
    return {
        **_pinned_run_substitutions(settings, runner_email),
        "_MODEL_RESOURCE_NAME": model,
        "_MODEL_VERSION_ID": version,
    }


def pr_substitutions(settings: InfraSettings, runner_email: str) -> dict[str, str]:
    """cloudbuild-pr.yaml's: no template, a per-commit locustfile, the regression model."""
    unused = {"_KFP_REPO", "_PIPELINE_NAME", "_TEMPLATE_TAG", "_LOCUSTFILE"}
    model, version = split_model(settings.regression_model)
    common = build_substitutions(settings, runner_email)
    return {
        **{k: v for k, v in common.items() if k not in unused},
        "_LOADTEST_BUCKET": settings.loadtest_bucket,
        "_MODEL_RESOURCE_NAME": model,
        "_MODEL_VERSION_ID": version,
    }


def builder_substitutions(settings: InfraSettings) -> dict[str, str]:
    """builder/cloudbuild.yaml's."""
    return {"_REGION": settings.region, "_DOCKER_REPO": settings.docker_repository}


def split_model(resource: str) -> tuple[str, str]:
    """'projects/.../models/ID@v' -> ('projects/.../models/ID', 'v'); no version: 'default'."""
    name, _, version = resource.partition("@")
    return name, version or "default"
