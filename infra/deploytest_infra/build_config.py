"""What the Cloud Build triggers pass to `cloudbuild.yaml`, and which log entries feed
the Model Registry trigger. Plain Python (no jsii), so tests can use it without a synth.

Which audit-log field holds the new model
-----------------------------------------
`ModelService.UploadModel` is a long-running operation, so Cloud Audit Logs writes two
Admin Activity entries for it. The first (`operation.first=true`) is written when the
call is accepted; its `protoPayload.response` is the `google.longrunning.Operation`
(`name: projects/N/locations/L/models/ID/operations/OP`), which carries no model field.
The last (`operation.last=true`) is written when the upload has finished; its
`protoPayload.response` is the operation's result, an `UploadModelResponse`, whose
`model` is `projects/{project}/locations/{location}/models/{model}` and whose
`modelVersionId` is the version just uploaded. The sink therefore forwards only the
`operation.last` entries that carry `protoPayload.response.model`, and the trigger reads
`$(body.message.data.protoPayload.response.model)` and `...modelVersionId`.
"""

from __future__ import annotations

from deploytest_infra.settings import InfraSettings

BUILD_CONFIG = "cloudbuild.yaml"
UPLOAD_METHODS = (
    "google.cloud.aiplatform.v1.ModelService.UploadModel",
    "google.cloud.aiplatform.v1beta1.ModelService.UploadModel",
)
MODEL_FIELD = "protoPayload.response.model"
MODEL_VERSION_FIELD = "protoPayload.response.modelVersionId"


def model_upload_filter(settings: InfraSettings) -> str:
    """Logging query: finished, successful model uploads in the stack's region."""
    methods = " OR ".join(f'protoPayload.methodName="{m}"' for m in UPLOAD_METHODS)
    return " AND ".join(
        [
            f'logName="projects/{settings.project_id}/logs/cloudaudit.googleapis.com%2Factivity"',
            'protoPayload.serviceName="aiplatform.googleapis.com"',
            f"({methods})",
            "operation.last=true",
            # Present only on a successful UploadModelResponse; pins the region too.
            f'{MODEL_FIELD}:"/locations/{settings.region}/models/"',
        ]
    )


def build_substitutions(settings: InfraSettings, runner_email: str) -> dict[str, str]:
    """What both triggers pass to cloudbuild.yaml (the model comes per trigger)."""
    labels = settings.cost_labels
    return {
        "_REGION": settings.region,
        "_KFP_REPO": settings.kfp_repository,
        "_PIPELINE_NAME": settings.pipeline_package,
        "_PIPELINE_ROOT": settings.pipeline_root,
        "_RUNNER_SA": runner_email,
        "_LOCUSTFILE": settings.regression_locustfile_uri,
        "_MACHINE_TYPE": settings.machine_type,
        "_ACCELERATOR_TYPE": settings.serving_gpu_type,
        "_ACCELERATOR_COUNT": str(settings.serving_gpu_count),
        "_LABEL_TEAM": labels["team"],
        "_LABEL_ENVIRONMENT": labels["environment"],
        "_LABEL_COST_CENTER": labels["cost-center"],
        "_LABEL_GPU_TYPE": labels["gpu-type"],
    }


def split_model(resource: str) -> tuple[str, str]:
    """'projects/.../models/ID@v' -> ('projects/.../models/ID', 'v'); no version: 'default'."""
    name, _, version = resource.partition("@")
    return name, version or "default"
