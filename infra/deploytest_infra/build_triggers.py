"""Cloud Build triggers:

* merge: pushes to the main branch run `cloudbuild.yaml` (images, tests, locustfile,
  compile, upload and tag the template; a load test only if `merge_runs_load_test`);
* model-upload: a logging sink on opted-in Model Registry uploads feeds a Pub/Sub topic
  that runs `cloudbuild-model.yaml` (a run of that model with main's template; it never
  uploads or tags anything);
* pull-request: a `/gcbrun` comment by a repository owner or collaborator on a pull
  request to the main branch runs `cloudbuild-pr.yaml` (the paid load test of the PR's
  pipeline; it tags and uploads nothing main's runs use);
* builder: pushes to the main branch that change `builder/` rebuild the builder image.

An environment has only the triggers its settings name (`triggers`); test and prod's
promote trigger is promotion.py.

The sink accepts the first or the last audit-log entry of `UploadModel` and the trigger
reads the model from `protoPayload.resourceName` (see build_config.py for why).
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
    BUILDER_BUILD_CONFIG,
    MODEL_BUILD_CONFIG,
    PR_BUILD_CONFIG,
    builder_substitutions,
    merge_substitutions,
    model_trigger_filter,
    model_upload_filter,
    model_upload_substitutions,
    pr_substitutions,
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
        extra = dict(extra_substitutions or {})
        branch = settings.main_branch
        kms = settings.kms_key_name or None

        self._settings, self._build_account = settings, build_account
        enabled = set(settings.triggers)
        self.topic = self.sink = self.sink_publisher = None
        self.merge = self.model_upload = self.pull_request = self.builder = None
        on_push = {
            "owner": settings.github_owner,
            "name": settings.github_repo,
            "push": {"branch": f"^{re.escape(branch)}$"},
        }
        if "model-upload" in enabled:
            self._model_upload(settings, branch, kms, extra, depends_on)
        # Every merge: images, tests, locustfile, compile, upload and tag the template;
        # a run against the production (regression) model only if the settings say so.
        if "merge" in enabled:
            self.merge = self._trigger(
                "merge",
                f"deploytest: every push to {branch}",
                depends_on,
                github=on_push,
                filename=BUILD_CONFIG,
                include_build_logs="INCLUDE_BUILD_LOGS_WITH_STATUS",
                substitutions={**merge_substitutions(settings, settings.runner_email), **extra},
            )
        # The expensive run of a pull request, only on a `/gcbrun` comment by an owner or
        # collaborator (Cloud Build comment control), as the Vertex AI MLOps templates do.
        if "pull-request" in enabled:
            self.pull_request = self._trigger(
                "pull-request",
                f"deploytest: a pull request to {branch}, on a /gcbrun comment",
                depends_on,
                github={
                    "owner": settings.github_owner,
                    "name": settings.github_repo,
                    "pull_request": {
                        "branch": f"^{re.escape(branch)}$",
                        "comment_control": "COMMENTS_ENABLED",
                    },
                },
                filename=PR_BUILD_CONFIG,
                include_build_logs="INCLUDE_BUILD_LOGS_WITH_STATUS",
                substitutions={**pr_substitutions(settings, settings.runner_email), **extra},
            )
        # The image the other builds run in, rebuilt when its Dockerfile changes.
        if "builder" in enabled:
            self.builder = self._trigger(
                "builder",
                f"deploytest: the builder image, on pushes to {branch} that change it",
                depends_on,
                github=on_push,
                included_files=["builder/**"],
                filename=BUILDER_BUILD_CONFIG,
                substitutions=builder_substitutions(settings),
            )

    def _model_upload(self, settings, branch, kms, extra, depends_on) -> None:
        """Model Registry uploads -> audit log sink -> topic -> Cloud Build."""
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
            description=(
                "Vertex AI Model Registry uploads labelled "
                f"{settings.model_opt_in_label}, for deploytest Cloud Build"
            ),
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
        # Every opted-in model (version) in the Model Registry: a run with main's template
        # (in an environment with a template_source: its pinned version).
        self.model_upload = self._trigger(
            "model-upload",
            "deploytest: models uploaded to the Vertex AI Model Registry with "
            f"{settings.model_opt_in_label}",
            [*depends_on, self.sink_publisher],
            pubsub_config={"topic": self.topic.id},
            source_to_build={
                "uri": settings.github_uri,
                "ref": f"refs/heads/{branch}",
                "repo_type": "GITHUB",
            },
            git_file_source={
                "path": MODEL_BUILD_CONFIG,
                "uri": settings.github_uri,
                "revision": f"refs/heads/{branch}",
                "repo_type": "GITHUB",
            },
            substitutions={
                **model_upload_substitutions(settings, settings.runner_email),
                **extra,
            },
            # Belt and braces: only build for a model in this region.
            filter=model_trigger_filter(settings),
        )

    def _trigger(
        self,
        id_: str,
        description: str,
        depends_on: Sequence[ITerraformDependable],
        **config,
    ) -> CloudbuildTrigger:
        """A trigger that runs as the build account, named and tagged after `id_`."""
        s = self._settings
        return CloudbuildTrigger(
            self,
            id_,
            project=s.project_id,
            location="global",
            name=f"{s.prefix}-{id_}",
            description=description,
            service_account=self._build_account.id,
            tags=["deploytest", s.environment, id_],
            depends_on=list(depends_on),
            **config,
        )
