"""The platform stack: one construct per resource family, composed."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import GcsBackend, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_google.provider import GoogleProvider
from constructs import Construct

from deploytest_infra.build_config import promote_substitutions
from deploytest_infra.build_triggers import BuildTriggers
from deploytest_infra.identity import Identity, member
from deploytest_infra.janitor import Janitor, JanitorProps
from deploytest_infra.notifications import Notifications
from deploytest_infra.promotion import PromoteProps, PromoteTrigger
from deploytest_infra.quota import GpuQuota
from deploytest_infra.registry import Registry
from deploytest_infra.scheduler import DEFAULT_CLI, RegressionSchedule
from deploytest_infra.service_agents import ServiceAgents
from deploytest_infra.services import ProjectApis
from deploytest_infra.settings import InfraSettings
from deploytest_infra.storage import Storage
from deploytest_infra.template_source import TemplateSourceAccess, TemplateSourceProps


class DeploytestStack(TerraformStack):
    """One environment: its stack is `deploytest-ENV`, its state `deploytest/ENV`."""

    def __init__(
        self,
        scope: Construct,
        settings: InfraSettings,
        *,
        scheduler_body: dict | None = None,
        cli: Sequence[str] = DEFAULT_CLI,
    ) -> None:
        super().__init__(scope, settings.stack_name)
        self.settings = settings
        if settings.state_bucket:
            GcsBackend(
                self, bucket=settings.state_bucket, prefix=f"deploytest/{settings.environment}"
            )
        GoogleProvider(
            self,
            "google",
            project=settings.project_id,
            region=settings.region,
            # With user credentials (gcloud auth application-default login) the Cloud
            # Quotas and Service Usage APIs need a quota project: send it on every call
            # (terraform-provider-google #18337, #24500).
            user_project_override=True,
            billing_project=settings.billing_project_id,
            # No provider default_labels: CDKTF rewrites map keys in provider blocks
            # (cost-center -> cost_center). Every construct labels its resources itself,
            # and the policy tests check it.
        )
        apis = ProjectApis(self, "apis", settings=settings)
        needs = apis.services
        # Service agents exist and hold the CMEK key before anything encrypted is created.
        self.agents = ServiceAgents(self, "agents", settings=settings, depends_on=needs)
        encrypted_needs = [*needs, *self.agents.key_grants]
        self.storage = Storage(self, "storage", settings=settings, depends_on=encrypted_needs)
        self.registry = Registry(self, "registry", settings=settings, depends_on=encrypted_needs)
        self.agents.grant_template_reader(self.registry.kfp)
        self.identity = Identity(
            self,
            "identity",
            settings=settings,
            storage=self.storage,
            registry=self.registry,
            depends_on=needs,
        )
        self.quota = GpuQuota(self, "quota", settings=settings, depends_on=needs)
        self.notifications = Notifications(
            self,
            "notify",
            settings=settings,
            runner_member=member(self.identity.runner),
            depends_on=encrypted_needs,
        )
        self.schedule = None
        if settings.scheduler_enabled:
            self.schedule = RegressionSchedule(
                self,
                "schedule",
                settings=settings,
                invoker=self.identity.invoker,
                body=scheduler_body,
                cli=cli,
                depends_on=needs,
            )
        self.triggers = BuildTriggers(
            self,
            "build",
            settings=settings,
            build_account=self.identity.build,
            depends_on=encrypted_needs,
        )
        self.source_access = self.promote = None
        if settings.template_source:
            self.source_access = TemplateSourceAccess(
                self,
                "template-source",
                props=TemplateSourceProps(
                    project_id=settings.source_project,
                    region=settings.source_region,
                    kfp_repository=settings.source_kfp_repository,
                    docker_repository=settings.source_docker_repository,
                    # Who may be the one reading (unverified which, for a version: the
                    # caller or Vertex AI's service agent), so all of them.
                    readers={
                        "runner": member(self.identity.runner),
                        "build": member(self.identity.build),
                        "invoker": member(self.identity.invoker),
                        "vertex-agent": "serviceAccount:"
                        + self.agents.identity("aiplatform.googleapis.com").email,
                    },
                ),
                depends_on=needs,
            )
        if "promote" in settings.triggers:
            self.promote = PromoteTrigger(
                self,
                "promote",
                props=PromoteProps(
                    project_id=settings.project_id,
                    name=f"{settings.prefix}-promote",
                    environment=settings.environment,
                    github_uri=settings.github_uri,
                    branch=settings.main_branch,
                    build_account_id=self.identity.build.id,
                    substitutions=promote_substitutions(settings, settings.runner_email),
                    requires_approval=settings.promote_requires_approval,
                ),
                depends_on=needs,
            )
        self.janitor = Janitor(
            self, "janitor", props=JanitorProps.from_settings(settings), depends_on=needs
        )

        outputs = {
            "pipeline_root": settings.pipeline_root,
            "loadtest_bucket": f"gs://{settings.loadtest_bucket}",
            "kfp_host": settings.kfp_host,
            "template_host": settings.source_kfp_host,
            "docker_repository": (
                f"{settings.region}-docker.pkg.dev/{settings.project_id}/"
                f"{settings.docker_repository}"
            ),
            "runner_service_account": settings.runner_email,
            "janitor_job": self.janitor.job.id,
        }
        if self.triggers.topic is not None:
            outputs["model_upload_topic"] = self.triggers.topic.id
        if self.schedule is not None:
            outputs["regression_job"] = self.schedule.job.id
        if self.notifications.topic is not None:
            outputs["run_end_topic"] = self.notifications.topic.id
        if self.notifications.secret is not None:
            outputs["run_end_webhook_secret"] = self.notifications.secret.id
        if settings.template_version:
            outputs["template_version"] = settings.template_uri(settings.template_version)
        for name, value in outputs.items():
            TerraformOutput(self, name, value=value)
