"""Cloud Scheduler: the regression run.

The job POSTs a Vertex AI `PipelineJob` to `pipelineJobs.create` with an OAuth token of
the invoker account. The request body is not written here: it is what
`deploytest submit --dry-run --json` prints for the regression model and the template
of the settings' `scheduler_template` (a sha256: version, or a tag: `template_tag` by
default) in the KFP repository, so it cannot drift from what `submit` sends. A tag is
resolved by Vertex AI itself, through its service agent (registry.py grants it read
access on the KFP repository for that case).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.cloud_scheduler_job import CloudSchedulerJob
from cdktf_cdktf_provider_google.service_account import ServiceAccount
from constructs import Construct

from deploytest_infra.settings import InfraSettings
from deploytest_infra.submit_body import (
    CLOUD_PLATFORM_SCOPE,
    DEFAULT_CLI,
    pipeline_jobs_url,
    regression_request_body,
)


class RegressionSchedule(Construct):
    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        invoker: ServiceAccount,
        body: dict | None = None,
        cli: Sequence[str] = DEFAULT_CLI,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        self.body = body if body is not None else regression_request_body(settings, cli)
        encoded = base64.b64encode(json.dumps(self.body, sort_keys=True).encode()).decode()
        self.job = CloudSchedulerJob(
            self,
            "regression",
            project=settings.project_id,
            region=settings.region,
            name=f"{settings.prefix}-regression",
            description=(
                f"deploytest regression run of {settings.regression_model} "
                f"({settings.serving_gpu_count} x {settings.serving_gpu_type})"
            ),
            schedule=settings.regression_schedule,
            time_zone=settings.regression_time_zone,
            attempt_deadline="60s",
            # A retried create could start a second paid run; a missed week is cheaper.
            retry_config={"retry_count": 0},
            http_target={
                "http_method": "POST",
                "uri": pipeline_jobs_url(settings),
                "headers": {"Content-Type": "application/json"},
                "body": encoded,
                "oauth_token": {
                    "service_account_email": invoker.email,
                    "scope": CLOUD_PLATFORM_SCOPE,
                },
            },
            depends_on=list(depends_on),
        )
