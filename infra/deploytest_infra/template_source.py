"""Read access to the environment the templates come from (test and prod read dev's).

A promoted environment runs the template version dev's merge build uploaded, from dev's
KFP repository, and that template names images in dev's Docker repository: the same
bytes, never a copy. This stack (deployed after dev) grants its own accounts read access
on those two repositories, in dev's project; the deploying user needs Artifact Registry
Administrator there too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.artifact_registry_repository_iam_member import (
    ArtifactRegistryRepositoryIamMember,
)
from constructs import Construct

READER = "roles/artifactregistry.reader"


@dataclass(frozen=True)
class TemplateSourceProps:
    """The source's two repositories and who here reads them."""

    project_id: str
    region: str
    kfp_repository: str
    docker_repository: str
    readers: Mapping[str, str]  # construct id -> IAM member (serviceAccount:…)


class TemplateSourceAccess(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        props: TemplateSourceProps,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        self.grants = [
            ArtifactRegistryRepositoryIamMember(
                self,
                f"{who}-{kind}",
                project=props.project_id,
                location=props.region,
                repository=repo,
                role=READER,
                member=member,
                depends_on=list(depends_on),
            )
            for kind, repo in (("kfp", props.kfp_repository), ("docker", props.docker_repository))
            for who, member in props.readers.items()
        ]
