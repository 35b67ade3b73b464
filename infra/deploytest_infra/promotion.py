"""The promote trigger of test and prod: a manual Cloud Build trigger that load-tests the
environment's pinned template version (`template_version`, a sha256: version in the
source environment's KFP repository) against its regression model.

Manual: it runs only when someone runs it (console, or `gcloud builds triggers run`),
from the main branch; the version comes from the settings as a default substitution, so
what ran in test is the version reviewed in the settings' pull request. The build refuses
a tag (`submit --require-version`). Prod can require an approval before the build starts
(Cloud Build approvals).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.cloudbuild_trigger import CloudbuildTrigger
from constructs import Construct

PROMOTE_BUILD_CONFIG = "cloudbuild-promote.yaml"


@dataclass(frozen=True)
class PromoteProps:
    project_id: str
    name: str  # trigger name, e.g. deploytest-prod-promote
    environment: str
    github_uri: str
    branch: str
    build_account_id: str  # the service account's resource id
    substitutions: Mapping[str, str]
    requires_approval: bool


class PromoteTrigger(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        props: PromoteProps,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        ref = f"refs/heads/{props.branch}"
        self.trigger = CloudbuildTrigger(
            self,
            "promote",
            project=props.project_id,
            location="global",
            name=props.name,
            description=(
                f"deploytest: load-test the pinned template version in {props.environment} "
                "(run by hand)"
            ),
            service_account=props.build_account_id,
            tags=["deploytest", props.environment, "promote"],
            # No event: a manual trigger (source_to_build + git_file_source only).
            source_to_build={"uri": props.github_uri, "ref": ref, "repo_type": "GITHUB"},
            git_file_source={
                "path": PROMOTE_BUILD_CONFIG,
                "uri": props.github_uri,
                "revision": ref,
                "repo_type": "GITHUB",
            },
            approval_config={"approval_required": props.requires_approval},
            substitutions=dict(props.substitutions),
            depends_on=list(depends_on),
        )
