"""GPU quota: a Cloud Quotas preference for the serving GPU of the region.

The quota is Vertex AI's custom-model-serving GPU quota for the configured GPU type
(e.g. CustomModelServingT4GPUsPerProjectPerRegion, metric
aiplatform.googleapis.com/custom_model_serving_nvidia_t4_gpus), dimension `region`.
Quota preferences take no labels; the GPU type is on every other resource's labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.cloud_quotas_quota_preference import (
    CloudQuotasQuotaPreference,
)
from constructs import Construct

from deploytest_infra.settings import InfraSettings


class GpuQuota(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        gpu = settings.cost_labels["gpu-type"]
        self.preference = CloudQuotasQuotaPreference(
            self,
            "serving-gpu",
            parent=f"projects/{settings.project_id}",
            name=f"{settings.prefix}-serving-{gpu}-{settings.region}"[:63].rstrip("-"),
            service="aiplatform.googleapis.com",
            quota_id=settings.serving_quota_id,
            dimensions={"region": settings.region},
            quota_config={"preferred_value": str(settings.gpu_quota_limit)},
            justification=(
                f"deploytest ({settings.team}, {settings.environment}) load-tests models on "
                f"Vertex AI endpoints with {settings.serving_gpu_count} x "
                f"{settings.serving_gpu_type} each; endpoints are deleted after every run."
            ),
            contact_email=settings.quota_contact_email or None,
            depends_on=list(depends_on),
        )
