"""Service accounts and least-privilege IAM. No primitive roles, no keys.

| account            | gets                                                                 |
| ------------------ | -------------------------------------------------------------------- |
| pipeline runner    | Vertex AI user; object admin on the pipeline-root bucket, object      |
|                    | viewer on the load-test bucket (those two buckets only); Artifact     |
|                    | Registry reader on both repositories; act-as on itself               |
| Cloud Build        | log writer; Artifact Registry writer on both repositories (push       |
|                    | images, upload templates); Vertex AI user (submit); act-as on runner  |
| Scheduler invoker  | Vertex AI user (pipelineJobs.create); template reader; act-as on      |
|                    | the runner                                                            |
"""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepository,
)
from cdktf_cdktf_provider_google.artifact_registry_repository_iam_member import (
    ArtifactRegistryRepositoryIamMember,
)
from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from cdktf_cdktf_provider_google.service_account_iam_member import ServiceAccountIamMember
from cdktf_cdktf_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from constructs import Construct

from deploytest_infra.registry import Registry
from deploytest_infra.settings import InfraSettings
from deploytest_infra.storage import Storage


def member(account: ServiceAccount) -> str:
    return f"serviceAccount:{account.email}"


class Identity(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        storage: Storage,
        registry: Registry,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        self._settings = settings
        self.runner = self._account(
            "runner",
            settings.runner_account_id,
            "deploytest pipeline runner",
            "Runs deploytest pipelines on Vertex AI: deploys, load-tests, cleans up.",
            depends_on,
        )
        self.build = self._account(
            "build",
            settings.build_account_id,
            "deploytest Cloud Build",
            "Runs cloudbuild.yaml: tests, compiles, uploads templates, submits runs.",
            depends_on,
        )
        self.invoker = self._account(
            "scheduler",
            settings.invoker_account_id,
            "deploytest scheduler invoker",
            "OAuth identity of the Cloud Scheduler regression job (pipelineJobs.create).",
            depends_on,
        )

        # Pipeline runner.
        self._project_role("runner-aiplatform", self.runner, "roles/aiplatform.user")
        StorageBucketIamMember(
            self,
            "runner-pipeline-root",
            bucket=storage.pipeline_root.name,
            role="roles/storage.objectAdmin",
            member=member(self.runner),
        )
        StorageBucketIamMember(
            self,
            "runner-loadtests",
            bucket=storage.loadtests.name,
            role="roles/storage.objectViewer",
            member=member(self.runner),
        )
        for repo_id, repo in (("docker", registry.docker), ("kfp", registry.kfp)):
            self._repo_role(f"runner-{repo_id}-reader", repo, self.runner, "reader")
        self._act_as("runner-self", self.runner, self.runner)

        # Cloud Build.
        self._project_role("build-logs", self.build, "roles/logging.logWriter")
        self._project_role("build-aiplatform", self.build, "roles/aiplatform.user")
        for repo_id, repo in (("docker", registry.docker), ("kfp", registry.kfp)):
            self._repo_role(f"build-{repo_id}-writer", repo, self.build, "writer")
        self._act_as("build-runner", self.runner, self.build)

        # Scheduler invoker.
        self._project_role("invoker-aiplatform", self.invoker, "roles/aiplatform.user")
        self._repo_role("invoker-kfp-reader", registry.kfp, self.invoker, "reader")
        self._act_as("invoker-runner", self.runner, self.invoker)

    def _account(
        self,
        id_: str,
        account_id: str,
        display_name: str,
        description: str,
        depends_on: Sequence[ITerraformDependable],
    ) -> ServiceAccount:
        return ServiceAccount(
            self,
            id_,
            project=self._settings.project_id,
            account_id=account_id,
            display_name=display_name,
            description=description,
            depends_on=list(depends_on),
        )

    def _project_role(self, id_: str, account: ServiceAccount, role: str) -> None:
        ProjectIamMember(
            self, id_, project=self._settings.project_id, role=role, member=member(account)
        )

    def _repo_role(
        self, id_: str, repo: ArtifactRegistryRepository, account: ServiceAccount, level: str
    ) -> None:
        ArtifactRegistryRepositoryIamMember(
            self,
            id_,
            project=self._settings.project_id,
            location=repo.location,
            repository=repo.name,
            role=f"roles/artifactregistry.{level}",
            member=member(account),
        )

    def _act_as(self, id_: str, target: ServiceAccount, account: ServiceAccount) -> None:
        """Let `account` run things as `target` (iam.serviceAccounts.actAs on target only)."""
        ServiceAccountIamMember(
            self,
            id_,
            service_account_id=target.name,
            role="roles/iam.serviceAccountUser",
            member=member(account),
        )
