"""Cloud Storage: the pipeline-root bucket and the load-test (locustfile) bucket."""

from __future__ import annotations

from collections.abc import Sequence

from cdktf import ITerraformDependable
from cdktf_cdktf_provider_google.storage_bucket import (
    StorageBucket,
    StorageBucketLifecycleRule,
    StorageBucketLifecycleRuleAction,
    StorageBucketLifecycleRuleCondition,
)
from constructs import Construct

from deploytest_infra.build_config import PR_LOCUSTFILE_PREFIX
from deploytest_infra.settings import InfraSettings

NONCURRENT_VERSION_DAYS = 7
PR_LOCUSTFILE_DAYS = 30


class Storage(Construct):
    """Both buckets: uniform access, public access prevention enforced, versioned."""

    def __init__(
        self,
        scope: Construct,
        id_: str,
        *,
        settings: InfraSettings,
        depends_on: Sequence[ITerraformDependable] = (),
    ) -> None:
        super().__init__(scope, id_)
        # Run artifacts live under gs://BUCKET/root/<run>; they expire, and so do the
        # non-current versions that versioning keeps after an overwrite or delete.
        self.pipeline_root = self._bucket(
            "pipeline-root",
            settings.pipeline_root_bucket,
            settings,
            depends_on,
            [
                StorageBucketLifecycleRule(
                    condition=StorageBucketLifecycleRuleCondition(
                        age=settings.artifact_retention_days, matches_prefix=["root/"]
                    ),
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                )
            ],
        )
        # Locustfiles are small and few; superseded versions expire, and so do the
        # per-commit ones of pull-request runs (cloudbuild-pr.yaml).
        self.loadtests = self._bucket(
            "loadtests",
            settings.loadtest_bucket,
            settings,
            depends_on,
            [
                StorageBucketLifecycleRule(
                    condition=StorageBucketLifecycleRuleCondition(
                        age=PR_LOCUSTFILE_DAYS, matches_prefix=[PR_LOCUSTFILE_PREFIX]
                    ),
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                )
            ],
        )

    def _bucket(
        self,
        id_: str,
        name: str,
        settings: InfraSettings,
        depends_on: Sequence[ITerraformDependable],
        rules: list[StorageBucketLifecycleRule],
    ) -> StorageBucket:
        # Nested structs as classes, not dicts: jsii passes dicts inside lists through
        # unconverted, and multi-word keys (matches_prefix, ...) would be dropped.
        rules = [
            *rules,
            StorageBucketLifecycleRule(
                condition=StorageBucketLifecycleRuleCondition(
                    days_since_noncurrent_time=NONCURRENT_VERSION_DAYS, with_state="ARCHIVED"
                ),
                action=StorageBucketLifecycleRuleAction(type="Delete"),
            ),
        ]
        return StorageBucket(
            self,
            id_,
            project=settings.project_id,
            name=name,
            location=settings.region.upper(),
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": True},
            lifecycle_rule=rules,
            encryption=(
                {"default_kms_key_name": settings.kms_key_name} if settings.kms_key_name else None
            ),
            labels=settings.labels,
            force_destroy=False,
            depends_on=list(depends_on),
        )
