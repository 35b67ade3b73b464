"""The janitor: a scheduled sweep for endpoints that runs left behind, and an alert.

| resource                 | what it is                                                       |
| ------------------------ | ---------------------------------------------------------------- |
| service account          | the janitor's own identity (`dt-ENV-janitor`), nothing else uses it |
| custom role              | list/get/undeploy/delete endpoints, list operations: no create,  |
|                          | no deploy, no predict, no other resource                         |
| Cloud Run job            | `deploytest cleanup --expired` in the components image           |
| Cloud Scheduler job      | runs the Cloud Run job (`jobs.run`), OAuth as the janitor account |
| log-based metric         | counts the `"event": "deploytest-leak"` lines the janitor logs   |
| alert policy             | fires on any leak: a run that did not clean up is a bug           |

Cancelling a deploy in flight needs a permission Google does not document for endpoint
operations (by the pattern of its IAM table, the permission of the method that started
the operation: `aiplatform.endpoints.deploy`, which the janitor is not given). Refused, the
janitor logs it, waits within its bound and reports what is left; the next sweep takes
the endpoint once the deploy ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.cloud_run_v2_job import (
    CloudRunV2Job,
    CloudRunV2JobTemplate,
    CloudRunV2JobTemplateTemplate,
    CloudRunV2JobTemplateTemplateContainers,
    CloudRunV2JobTemplateTemplateContainersResources,
)
from cdktf_cdktf_provider_google.cloud_run_v2_job_iam_member import CloudRunV2JobIamMember
from cdktf_cdktf_provider_google.cloud_scheduler_job import CloudSchedulerJob
from cdktf_cdktf_provider_google.logging_metric import (
    LoggingMetric,
    LoggingMetricMetricDescriptor,
    LoggingMetricMetricDescriptorLabels,
)
from cdktf_cdktf_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicy,
    MonitoringAlertPolicyAlertStrategy,
    MonitoringAlertPolicyConditions,
    MonitoringAlertPolicyConditionsConditionThreshold,
    MonitoringAlertPolicyConditionsConditionThresholdAggregations,
    MonitoringAlertPolicyConditionsConditionThresholdTrigger,
    MonitoringAlertPolicyDocumentation,
)
from cdktf_cdktf_provider_google.project_iam_custom_role import ProjectIamCustomRole
from cdktf_cdktf_provider_google.project_iam_member import ProjectIamMember
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from constructs import Construct

from deploytest_infra.settings import InfraSettings
from deploytest_infra.submit_body import CLOUD_PLATFORM_SCOPE

# What `deploytest cleanup --expired` calls, and nothing more (components/janitor.py).
JANITOR_PERMISSIONS = (
    "aiplatform.endpoints.list",
    "aiplatform.endpoints.get",
    "aiplatform.endpoints.undeploy",
    "aiplatform.endpoints.delete",
    "aiplatform.operations.list",
)
LEAK_EVENT = "deploytest-leak"  # components.janitor.LEAK_EVENT (infra imports none of ours)
CLEANUP_TIMEOUT_S = 900


@dataclass(frozen=True)
class JanitorProps:
    """What the janitor needs to know, and no more."""

    project_id: str
    region: str
    name: str  # resource name prefix, e.g. deploytest-dev
    account_id: str
    image: str
    schedule: str
    time_zone: str
    max_age: str
    labels: Mapping[str, str]
    alert_channels: Sequence[str] = ()

    @classmethod
    def from_settings(cls, s: InfraSettings) -> JanitorProps:
        image = s.janitor_image or (
            f"{s.region}-docker.pkg.dev/{s.project_id}/{s.docker_repository}/components:latest"
        )
        return cls(
            project_id=s.project_id,
            region=s.region,
            name=s.prefix,
            account_id=f"dt-{s.environment}-janitor"[:30],
            image=image,
            schedule=s.janitor_schedule,
            time_zone=s.regression_time_zone,
            max_age=s.janitor_max_age,
            labels=s.labels,
            alert_channels=s.janitor_alert_channels,
        )

    @property
    def command(self) -> list[str]:
        """The janitor's command line in the components image."""
        return [
            "deploytest",
            "cleanup",
            "--project",
            self.project_id,
            "--location",
            self.region,
            "--expired",
            "--max-age",
            self.max_age,
            "--timeout-s",
            str(CLEANUP_TIMEOUT_S),
        ]


class Janitor(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        props: JanitorProps,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        p = props
        needs = list(depends_on)
        self.account = ServiceAccount(
            self,
            "account",
            project=p.project_id,
            account_id=p.account_id,
            display_name="deploytest janitor",
            description="Removes expired deploytest-managed Vertex AI endpoints on a schedule.",
            depends_on=needs,
        )
        member = f"serviceAccount:{self.account.email}"
        self.role = ProjectIamCustomRole(
            self,
            "role",
            project=p.project_id,
            role_id=p.name.replace("-", "_") + "_janitor",
            title=f"{p.name} janitor",
            description="Undeploy and delete expired deploytest endpoints; nothing else.",
            permissions=list(JANITOR_PERMISSIONS),
            depends_on=needs,
        )
        ProjectIamMember(
            self,
            "role-member",
            project=p.project_id,
            role=self.role.id,
            member=member,
            depends_on=needs,  # the IAM and Resource Manager APIs must be on first
        )

        cmd, *args = p.command
        self.job = CloudRunV2Job(
            self,
            "job",
            project=p.project_id,
            location=p.region,
            name=f"{p.name}-janitor",
            labels=dict(p.labels),
            deletion_protection=False,
            template=CloudRunV2JobTemplate(
                task_count=1,
                template=CloudRunV2JobTemplateTemplate(
                    service_account=self.account.email,
                    timeout=f"{CLEANUP_TIMEOUT_S + 300}s",
                    max_retries=1,  # clean-up is idempotent; a retry is cheap
                    containers=[
                        CloudRunV2JobTemplateTemplateContainers(
                            image=p.image,
                            command=[cmd],
                            args=args,
                            resources=CloudRunV2JobTemplateTemplateContainersResources(
                                limits={"cpu": "1", "memory": "512Mi"}
                            ),
                        )
                    ],
                ),
            ),
            depends_on=needs,
        )
        # The schedule runs the job as the janitor account: `run.jobs.run` on this job only.
        CloudRunV2JobIamMember(
            self,
            "job-invoker",
            project=p.project_id,
            location=p.region,
            name=self.job.name,
            role="roles/run.invoker",
            member=member,
            depends_on=needs,
        )
        self.schedule = CloudSchedulerJob(
            self,
            "schedule",
            project=p.project_id,
            region=p.region,
            name=f"{p.name}-janitor",
            description="deploytest janitor: remove expired managed endpoints",
            schedule=p.schedule,
            time_zone=p.time_zone,
            attempt_deadline="60s",
            retry_config={"retry_count": 1},
            http_target={
                "http_method": "POST",
                "uri": f"https://run.googleapis.com/v2/{self.job.id}:run",
                "oauth_token": {
                    "service_account_email": self.account.email,
                    "scope": CLOUD_PLATFORM_SCOPE,
                },
            },
            depends_on=needs,
        )

        self.metric = LoggingMetric(
            self,
            "leaks",
            project=p.project_id,
            name=f"{p.name}-leaked-endpoints",
            description="Endpoints the deploytest janitor found past their expiry (leaks).",
            filter=(
                'resource.type="cloud_run_job" AND '
                f'resource.labels.job_name="{p.name}-janitor" AND '
                f'jsonPayload.event="{LEAK_EVENT}"'
            ),
            metric_descriptor=LoggingMetricMetricDescriptor(
                metric_kind="DELTA",
                value_type="INT64",
                unit="1",
                labels=[LoggingMetricMetricDescriptorLabels(key="run", value_type="STRING")],
            ),
            label_extractors={"run": "EXTRACT(jsonPayload.run)"},
            depends_on=needs,
        )
        self.alert = MonitoringAlertPolicy(
            self,
            "leak-alert",
            project=p.project_id,
            display_name=f"{p.name}: a run leaked a Vertex AI endpoint",
            combiner="OR",
            severity="ERROR",
            conditions=[
                MonitoringAlertPolicyConditions(
                    display_name="the janitor found an expired managed endpoint",
                    condition_threshold=MonitoringAlertPolicyConditionsConditionThreshold(
                        filter=(
                            f'metric.type="logging.googleapis.com/user/{self.metric.name}" '
                            'AND resource.type="cloud_run_job"'
                        ),
                        comparison="COMPARISON_GT",
                        threshold_value=0,
                        duration="0s",
                        aggregations=[
                            MonitoringAlertPolicyConditionsConditionThresholdAggregations(
                                alignment_period="300s", per_series_aligner="ALIGN_SUM"
                            )
                        ],
                        trigger=MonitoringAlertPolicyConditionsConditionThresholdTrigger(count=1),
                    ),
                )
            ],
            notification_channels=list(p.alert_channels),
            alert_strategy=MonitoringAlertPolicyAlertStrategy(auto_close="86400s"),
            documentation=MonitoringAlertPolicyDocumentation(
                mime_type="text/markdown",
                content=(
                    "The deploytest janitor found an endpoint labelled "
                    "`deploytest-managed=true` past its `deploytest-expires-at`: a run did "
                    "not clean up after itself. The janitor has undeployed and deleted it "
                    '(see its Cloud Run job logs, `jsonPayload.event="deploytest-leak"`, '
                    "for the endpoint and the run). File a bug with the run's id."
                ),
            ),
            user_labels=dict(p.labels),
            depends_on=needs,
        )
