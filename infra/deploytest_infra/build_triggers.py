"""Cloud Build: a trigger on pushes to the main branch, and a Pub/Sub trigger fed by a
logging sink on Model Registry uploads. Both run the repository's `cloudbuild.yaml`.

The sink forwards the `operation.last` audit-log entry of each finished `UploadModel`;
the trigger reads the new model from `protoPayload.response.model` (see build_config.py
for why that field and not the first entry's).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.cloudbuild_trigger import CloudbuildTrigger
from cdktf_cdktf_provider_google.logging_project_sink import LoggingProjectSink
from cdktf_cdktf_provider_google.pubsub_topic import PubsubTopic
from cdktf_cdktf_provider_google.pubsub_topic_iam_member import PubsubTopicIamMember
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from constructs import Construct

from deploytest_infra.build_config import (
    BUILD_CONFIG,
    MODEL_FIELD,
    MODEL_VERSION_FIELD,
    build_substitutions,
    model_upload_filter,
    split_model,
)
from deploytest_infra.settings import InfraSettings


class BuildTriggers(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        build_account: ServiceAccount,
        extra_substitutions: Mapping[str, str] | None = None,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        common = build_substitutions(settings, settings.runner_email)
        common.update(extra_substitutions or {})
        branch = settings.main_branch
        kms = settings.kms_key_name or None

        # Model Registry uploads -> audit log sink -> topic -> Cloud Build.
        self.topic = PubsubTopic(
            self,
            "model-uploads",
            project=settings.project_id,
            name=f"{settings.prefix}-model-uploads",
            message_retention_duration="86400s",
            kms_key_name=kms,
            labels=settings.labels,
            depends_on=list(depends_on),
        )
        self.sink = LoggingProjectSink(
            self,
            "model-upload-sink",
            project=settings.project_id,
            name=f"{settings.prefix}-model-uploads",
            description="Finished Vertex AI Model Registry uploads, for deploytest Cloud Build",
            destination=f"pubsub.googleapis.com/{self.topic.id}",
            filter=model_upload_filter(settings),
            unique_writer_identity=True,
            depends_on=list(depends_on),
        )
        # The sink's own writer identity may publish to this topic, nothing else.
        self.sink_publisher = PubsubTopicIamMember(
            self,
            "sink-publisher",
            project=settings.project_id,
            topic=self.topic.name,
            role="roles/pubsub.publisher",
            member=self.sink.writer_identity,
        )

        regression_model, regression_version = split_model(settings.regression_model)
        # Every merge: test, compile, upload the template, run it against the
        # production (regression) model.
        self.merge = CloudbuildTrigger(
            self,
            "merge",
            project=settings.project_id,
            location="global",
            name=f"{settings.prefix}-merge",
            description=f"deploytest: every push to {branch}",
            github={
                "owner": settings.github_owner,
                "name": settings.github_repo,
                "push": {"branch": f"^{re.escape(branch)}$"},
            },
            filename=BUILD_CONFIG,
            service_account=build_account.id,
            include_build_logs="INCLUDE_BUILD_LOGS_WITH_STATUS",
            substitutions={
                **common,
                "_TRIGGER": "merge",
                "_MODEL_RESOURCE_NAME": regression_model,
                "_MODEL_VERSION_ID": regression_version,
            },
            tags=["deploytest", settings.environment, "merge"],
            depends_on=list(depends_on),
        )
        # Every new model (version) in the Model Registry: the same build, for that model.
        self.model_upload = CloudbuildTrigger(
            self,
            "model-upload",
            project=settings.project_id,
            location="global",
            name=f"{settings.prefix}-model-upload",
            description="deploytest: every model uploaded to the Vertex AI Model Registry",
            pubsub_config={"topic": self.topic.id},
            source_to_build={
                "uri": settings.github_uri,
                "ref": f"refs/heads/{branch}",
                "repo_type": "GITHUB",
            },
            git_file_source={
                "path": BUILD_CONFIG,
                "uri": settings.github_uri,
                "revision": f"refs/heads/{branch}",
                "repo_type": "GITHUB",
            },
            service_account=build_account.id,
            substitutions={
                **common,
                "_TRIGGER": "model-upload",
                "_MODEL_RESOURCE_NAME": f"$(body.message.data.{MODEL_FIELD})",
                "_MODEL_VERSION_ID": f"$(body.message.data.{MODEL_VERSION_FIELD})",
            },
            # Belt and braces: only build for a model in this project and region.
            filter=(
                '_MODEL_RESOURCE_NAME.matches("^projects/[^/]+/locations/'
                f'{settings.region}/models/[^/@]+$")'
            ),
            tags=["deploytest", settings.environment, "model-upload"],
            depends_on=[*depends_on, self.sink_publisher],
        )
