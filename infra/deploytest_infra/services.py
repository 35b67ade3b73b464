"""Project APIs the stack and the pipeline need. Left enabled on destroy."""

from __future__ import annotations

from cdktf_cdktf_provider_google.project_service import ProjectService
from constructs import Construct

from deploytest_infra.settings import InfraSettings

APIS = (
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudquotas.googleapis.com",
    # Project IAM grants go through Resource Manager; Service Usage enables the rest and,
    # with user_project_override, is where quota-project checks happen.
    "cloudresourcemanager.googleapis.com",
    "serviceusage.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
)


class ProjectApis(Construct):
    """Enables the APIs; every other construct depends on `self.services`."""

    def __init__(self, scope: Construct, id_: str, *, settings: InfraSettings) -> None:
        super().__init__(scope, id_)
        self.services = [
            ProjectService(
                self,
                api.split(".")[0],
                project=settings.project_id,
                service=api,
                # Other workloads in the project may use these APIs too.
                disable_on_destroy=False,
                disable_dependent_services=False,
            )
            for api in APIS
        ]
