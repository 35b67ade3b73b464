"""Service accounts and least-privilege IAM. No primitive roles, no keys.

| account            | gets                                                                 |
| ------------------ | -------------------------------------------------------------------- |
| pipeline runner    | Vertex AI user; object admin on the pipeline-root bucket, object      |
|                    | viewer on the load-test bucket (those two buckets only); Artifact     |
|                    | Registry reader on both repositories; act-as on itself               |
| Cloud Build        | log writer; Artifact Registry writer on both repositories (push       |
|                    | images, upload templates); Vertex AI user (submit); act-as on runner; |
|                    | object user on the load-test bucket (upload and check the locustfile) |
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
from cdktf_cdktf_provider_google.storage_bucket import StorageBucket
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
        # The grants too: IAM calls fail until the IAM and Resource Manager APIs are on.
        self._depends_on = list(depends_on)
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
        self._bucket_role("runner-pipeline-root", storage.pipeline_root, self.runner, "objectAdmin")
        self._bucket_role("runner-loadtests", storage.loadtests, self.runner, "objectViewer")
        for repo_id, repo in (("docker", registry.docker), ("kfp", registry.kfp)):
            self._repo_role(f"runner-{repo_id}-reader", repo, self.runner, "reader")
        self._act_as("runner-self", self.runner, self.runner)

        # Cloud Build.
        self._project_role("build-logs", self.build, "roles/logging.logWriter")
        self._project_role("build-aiplatform", self.build, "roles/aiplatform.user")
        for repo_id, repo in (("docker", registry.docker), ("kfp", registry.kfp)):
            self._repo_role(f"build-{repo_id}-writer", repo, self.build, "writer")
        self._act_as("build-runner", self.runner, self.build)
        # The merge build uploads the locustfile and `submit` checks it exists. objectUser,
        # not objectCreator: replacing an existing object needs storage.objects.delete as
        # well as create (Cloud Storage IAM), and the check needs storage.objects.get.
        self._bucket_role("build-loadtests", storage.loadtests, self.build, "objectUser")

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
            self,
            id_,
            project=self._settings.project_id,
            role=role,
            member=member(account),
            depends_on=self._depends_on,
        )

    def _bucket_role(
        self, id_: str, bucket: StorageBucket, account: ServiceAccount, role: str
    ) -> None:
        StorageBucketIamMember(
            self,
            id_,
            bucket=bucket.name,
            role=f"roles/storage.{role}",
            member=member(account),
            depends_on=self._depends_on,
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
            depends_on=self._depends_on,
        )

    def _act_as(self, id_: str, target: ServiceAccount, account: ServiceAccount) -> None:
        """Let `account` run things as `target` (iam.serviceAccounts.actAs on target only)."""
        ServiceAccountIamMember(
            self,
            id_,
            service_account_id=target.name,
            role="roles/iam.serviceAccountUser",
            member=member(account),
            depends_on=self._depends_on,
        )
