"""Artifact Registry: a Docker repository (images) and a KFP repository (templates)."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepository,
    ArtifactRegistryRepositoryCleanupPolicies,
    ArtifactRegistryRepositoryCleanupPoliciesCondition,
)
from constructs import Construct

from deploytest_infra.settings import InfraSettings

UNTAGGED_IMAGE_AGE = f"{14 * 24 * 3600}s"


class Registry(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        kms = settings.kms_key_name or None
        self.docker = ArtifactRegistryRepository(
            self,
            "docker",
            project=settings.project_id,
            location=settings.region,
            repository_id=settings.docker_repository,
            format="DOCKER",
            description="deploytest model-server and component images",
            docker_config={"immutable_tags": False},
            cleanup_policies=[
                ArtifactRegistryRepositoryCleanupPolicies(
                    id="delete-untagged",
                    action="DELETE",
                    condition=ArtifactRegistryRepositoryCleanupPoliciesCondition(
                        tag_state="UNTAGGED", older_than=UNTAGGED_IMAGE_AGE
                    ),
                )
            ],
            cleanup_policy_dry_run=False,
            kms_key_name=kms,
            labels=settings.labels,
            depends_on=list(depends_on),
        )
        self.kfp = ArtifactRegistryRepository(
            self,
            "kfp",
            project=settings.project_id,
            location=settings.region,
            repository_id=settings.kfp_repository,
            format="KFP",
            description="deploytest pipeline templates (uploaded by Cloud Build)",
            kms_key_name=kms,
            labels=settings.labels,
            depends_on=list(depends_on),
        )
