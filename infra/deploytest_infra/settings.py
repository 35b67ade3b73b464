"""One typed settings object for the whole stack, validated before anything is synthesised.

Load order: the defaults below, overridden by a JSON file named in
``DEPLOYTEST_INFRA_SETTINGS`` (or passed to :meth:`InfraSettings.load`). Unknown keys and
invalid values raise :class:`SettingsError` that lists every problem at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SETTINGS_ENV = "DEPLOYTEST_INFRA_SETTINGS"

# Serving GPU -> (Cloud Quotas quota ID, quota metric) of Vertex AI custom-model serving,
# per region. Names as used by `gcloud ai model-garden` (googlecloudsdk
# command_lib/ai/model_garden_utils.py): service aiplatform.googleapis.com, dimension region.
SERVING_GPU_QUOTAS: Mapping[str, tuple[str, str]] = {
    "NVIDIA_TESLA_T4": (
        "CustomModelServingT4GPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_t4_gpus",
    ),
    "NVIDIA_L4": (
        "CustomModelServingL4GPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_l4_gpus",
    ),
    "NVIDIA_TESLA_V100": (
        "CustomModelServingV100GPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_v100_gpus",
    ),
    "NVIDIA_TESLA_P100": (
        "CustomModelServingP100GPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_p100_gpus",
    ),
    "NVIDIA_TESLA_P4": (
        "CustomModelServingP4GPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_p4_gpus",
    ),
    "NVIDIA_TESLA_A100": (
        "CustomModelServingA100GPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_a100_gpus",
    ),
    "NVIDIA_A100_80GB": (
        "CustomModelServingA10080GBGPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_a100_80gb_gpus",
    ),
    "NVIDIA_H100_80GB": (
        "CustomModelServingH100GPUsPerProjectPerRegion",
        "aiplatform.googleapis.com/custom_model_serving_nvidia_h100_gpus",
    ),
}

# A machine type that accepts one to a few of each GPU (Vertex AI serving machine types).
DEFAULT_MACHINE_TYPE: Mapping[str, str] = {
    "NVIDIA_TESLA_T4": "n1-standard-8",
    "NVIDIA_L4": "g2-standard-8",
    "NVIDIA_TESLA_V100": "n1-standard-8",
    "NVIDIA_TESLA_P100": "n1-standard-8",
    "NVIDIA_TESLA_P4": "n1-standard-8",
    "NVIDIA_TESLA_A100": "a2-highgpu-1g",
    "NVIDIA_A100_80GB": "a2-ultragpu-1g",
    "NVIDIA_H100_80GB": "a3-highgpu-1g",
}

# GCP label rules: keys start with a lowercase letter; keys and values use lowercase
# letters, digits, '_' and '-', at most 63 characters.
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]{1,2}$")  # us-central1, europe-west10
ENVIRONMENT_RE = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$|^[a-z]$")
MODEL_RE = re.compile(r"^projects/[^/]+/locations/[a-z0-9-]+/models/[A-Za-z0-9_-]+(@[\w-]+)?$")
GITHUB_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
KMS_RE = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
KFP_PACKAGE_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")
OBJECT_PATH_RE = re.compile(r"^[^\s#?\[\]*]+\.py$")
TEMPLATE_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")
TEMPLATE_VERSION_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
TORCH_INDEX_RE = re.compile(r"^(cpu|cu[0-9]{3}|rocm[0-9.]+)$")
# The Cloud Build triggers an environment may have (build_triggers.py, promotion.py).
TRIGGER_NAMES = ("merge", "model-upload", "pull-request", "builder", "promote")
DEFAULT_TRIGGERS = ("merge", "model-upload", "pull-request", "builder")


class SettingsError(ValueError):
    """The settings are invalid; the message lists every problem."""


@dataclass(frozen=True)
class InfraSettings:
    """Everything the platform stack is configured by."""

    project_id: str = "deploytest-demo"
    region: str = "us-central1"
    environment: str = "dev"
    # Cost labels: on every labelled resource here and on the endpoints runs create.
    team: str = "ml-platform"
    cost_center: str = "cc-0000"
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    # The GPU the load-tested endpoints are served on.
    serving_gpu_type: str = "NVIDIA_TESLA_T4"
    serving_gpu_count: int = 1
    serving_machine_type: str = ""  # empty: a default for the GPU type
    # Quota preference: how many serving GPUs of that type the project may hold at once.
    gpu_quota_limit: int = 4
    # Required: Cloud Quotas refuses an increase request without a contact email. The
    # default is a placeholder; set the team's address.
    quota_contact_email: str = "ml-platform-oncall@example.com"
    # The regression run Cloud Scheduler starts.
    regression_schedule: str = "0 3 * * 1"
    regression_time_zone: str = "Etc/UTC"
    regression_model: str = "projects/deploytest-demo/locations/us-central1/models/1234567890"
    regression_locustfile: str = "locustfiles/locustfile.py"  # object in the load-test bucket
    # The repository whose main branch triggers Cloud Build (Cloud Build GitHub app).
    github_owner: str = "example-org"
    github_repo: str = "deploytest"
    main_branch: str = "main"
    # The KFP package name in the KFP repository (the compiled pipeline's name).
    pipeline_package: str = "deploytest"
    # Run artifacts under gs://PIPELINE_ROOT_BUCKET/root expire after this many days.
    artifact_retention_days: int = 30
    # Optional CMEK for buckets, repositories and the topic; empty: Google-managed keys.
    kms_key_name: str = ""
    # Optional GCS bucket (created beforehand) for Terraform state; empty: local state.
    state_bucket: str = ""
    # The janitor (Cloud Run job `deploytest cleanup --expired`, see janitor.py): when it
    # runs, the age after which a managed endpoint without an expiry label is a leak, who
    # is mailed when it finds one (empty: the alert shows in Cloud Monitoring only), and
    # which existing Cloud Monitoring notification channels its leak alert notifies
    # (projects/P/notificationChannels/ID; none: the incident shows in the console only),
    # and its image (empty: components:latest in the stack's Docker repository).
    janitor_schedule: str = "*/30 * * * *"
    janitor_max_age: str = "24h"
    janitor_alert_channels: tuple[str, ...] = ()
    janitor_image: str = ""
    # USD per hour by machine or accelerator type for the runs' cost, over the table in
    # components/prices.json (e.g. a negotiated GPU price).
    prices: Mapping[str, float] = field(default_factory=dict)
    # ---- day one on Google Cloud (issue 13) -------------------------------------------
    # The project Terraform bills API calls and quota to (user_project_override); with
    # user credentials the Cloud Quotas API refuses calls without one. Empty: project_id.
    billing_project: str = ""
    # The template tag merge builds move (and only they); model-upload builds run it.
    template_tag: str = "main"
    # What the Scheduler runs: a version (sha256:…, pinned until you change it) or a tag
    # (resolved by Vertex AI; the Vertex AI service agent then gets read access on the
    # KFP repository). Empty: template_tag.
    scheduler_template: str = ""
    # Whether a merge build also submits (and waits for) a paid load-test run.
    merge_runs_load_test: bool = False
    # Only Model Registry uploads with this label (KEY=VALUE) start a model-upload build.
    model_opt_in_label: str = "deploytest=enabled"
    # The torch wheel index of the model-server image (download.pytorch.org/whl/INDEX):
    # cu128 covers T4, L4, A100, H100; older GPUs (P4, P100, V100) may need an older CUDA
    # index for torch 2.13: check PyTorch's release notes before choosing them.
    serving_torch_index: str = "cu128"
    # ---- environments (issue 22; environments.py reads a file of several) -------------
    # Whether this environment has the Scheduler's regression run (off: no job at all).
    scheduler_enabled: bool = True
    # Which Cloud Build triggers this environment has (TRIGGER_NAMES).
    triggers: tuple[str, ...] = DEFAULT_TRIGGERS
    # The environment whose merge builds upload the templates and images this one runs
    # (test and prod: dev). Empty: its own merges upload them. With a source, every run
    # here uses `template_version`, read from the source's KFP repository, so a promoted
    # environment runs byte for byte what was tested before. The source's project and
    # region: empty, taken from the source environment in the same settings file.
    template_source: str = ""
    template_source_project: str = ""
    template_source_region: str = ""
    # The sha256: version this environment's runs use (required with template_source).
    template_version: str = ""
    # Whether a run of the promote trigger waits for an approval in Cloud Build.
    promote_requires_approval: bool = False
    # This environment's gate (deploytest submit's defaults).
    slo_p95_ms: float = 1000.0
    max_failure_ratio: float = 0.01
    min_rps: float = 1.0
    # ---- the message when a run ends (issue 22; notifications.py) ---------------------
    # A Pub/Sub topic `<prefix>-run-ends` the runs publish to (any subscriber), and a Secret
    # Manager secret `<prefix>-notify-webhook` whose latest version is a webhook URL (Google
    # Chat / Slack) the scheduled runs post to: add the URL yourself
    # (`gcloud secrets versions add`); the stack creates the secret, never its value.
    notify_topic: bool = True
    notify_webhook_secret: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_labels", dict(self.extra_labels))
        object.__setattr__(self, "prices", dict(self.prices))
        object.__setattr__(self, "janitor_alert_channels", tuple(self.janitor_alert_channels))
        if isinstance(self.triggers, list | tuple):
            object.__setattr__(self, "triggers", tuple(self.triggers))
        problems = self._problems()
        if problems:
            raise SettingsError(
                "invalid infra settings:\n" + "\n".join(f"  - {p}" for p in problems)
            )

    # ---- loading -------------------------------------------------------------------

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> InfraSettings:
        if "environments" in values:
            raise SettingsError(
                "invalid infra settings:\n  - this file holds several environments: read it "
                "with deploytest_infra.environments.load_environments (main.py does)"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(
                f"invalid infra settings:\n  - unknown keys {unknown}; known keys: {sorted(known)}"
            )
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> InfraSettings:
        """Defaults, overridden by the JSON file at `path` or at $DEPLOYTEST_INFRA_SETTINGS."""
        path = path or os.environ.get(SETTINGS_ENV)
        if not path:
            return cls()
        return cls.from_mapping(read_settings_file(path))

    # ---- validation ----------------------------------------------------------------

    def _problems(self) -> list[str]:
        p: list[str] = []
        if not PROJECT_RE.match(self.project_id):
            p.append(f"project_id {self.project_id!r} is not a valid project ID")
        if not REGION_RE.match(self.region):
            p.append(f"region {self.region!r} is not a region like 'us-central1'")
        if not ENVIRONMENT_RE.match(self.environment):
            p.append(
                f"environment {self.environment!r}: lowercase letters, digits and '-', "
                "at most 16 characters, starting with a letter"
            )
        if self.serving_gpu_type not in SERVING_GPU_QUOTAS:
            p.append(
                f"serving_gpu_type {self.serving_gpu_type!r} is not one of "
                f"{sorted(SERVING_GPU_QUOTAS)}"
            )
        if self.serving_gpu_count not in (1, 2, 4, 8):
            p.append(f"serving_gpu_count {self.serving_gpu_count!r} must be 1, 2, 4 or 8")
        if not isinstance(self.gpu_quota_limit, int) or self.gpu_quota_limit < max(
            1, self.serving_gpu_count if isinstance(self.serving_gpu_count, int) else 1
        ):
            p.append(
                f"gpu_quota_limit {self.gpu_quota_limit!r} must be an integer of at least "
                "serving_gpu_count (one endpoint must fit)"
            )
        if not EMAIL_RE.match(self.quota_contact_email or ""):
            p.append(
                f"quota_contact_email {self.quota_contact_email!r} is not an email (required: "
                "Cloud Quotas refuses a quota increase request without a contact)"
            )
        if self.serving_machine_type and not re.match(
            r"^[a-z0-9]+-[a-z0-9-]+$", self.serving_machine_type
        ):
            p.append(f"serving_machine_type {self.serving_machine_type!r} is not a machine type")
        fields_ = self.regression_schedule.split()
        if len(fields_) != 5 or not all(CRON_FIELD_RE.match(f) for f in fields_):
            p.append(
                f"regression_schedule {self.regression_schedule!r} is not a 5-field cron expression"
            )
        if not re.match(r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$", self.regression_time_zone):
            p.append(f"regression_time_zone {self.regression_time_zone!r} is not a tz name")
        if not MODEL_RE.match(self.regression_model):
            p.append(
                f"regression_model {self.regression_model!r} is not "
                "projects/P/locations/L/models/ID"
            )
        elif f"/locations/{self.region}/" not in self.regression_model:
            p.append(f"regression_model {self.regression_model!r} is not in region {self.region}")
        if not OBJECT_PATH_RE.match(
            self.regression_locustfile
        ) or self.regression_locustfile.startswith(("/", "gs://")):
            p.append(
                f"regression_locustfile {self.regression_locustfile!r} must be an object path "
                "inside the load-test bucket ending in .py (e.g. locustfiles/locustfile.py)"
            )
        for name in ("github_owner", "github_repo"):
            if not GITHUB_NAME_RE.match(getattr(self, name)):
                p.append(f"{name} {getattr(self, name)!r} is not a GitHub owner/repository name")
        if not BRANCH_RE.match(self.main_branch):
            p.append(f"main_branch {self.main_branch!r} is not a branch name")
        if not KFP_PACKAGE_RE.match(self.pipeline_package):
            p.append(f"pipeline_package {self.pipeline_package!r} is not a KFP package name")
        if not isinstance(self.artifact_retention_days, int) or not (
            1 <= self.artifact_retention_days <= 3650
        ):
            p.append(f"artifact_retention_days {self.artifact_retention_days!r} must be 1..3650")
        if self.kms_key_name and not KMS_RE.match(self.kms_key_name):
            p.append(
                f"kms_key_name {self.kms_key_name!r} is not "
                "projects/P/locations/L/keyRings/R/cryptoKeys/K"
            )
        if self.state_bucket and not BUCKET_RE.match(self.state_bucket):
            p.append(f"state_bucket {self.state_bucket!r} is not a bucket name")
        p.extend(_janitor_problems(self))
        p.extend(self._day_one_problems())
        p.extend(_environment_problems(self))
        if not p:  # derived names only make sense once the parts are valid
            for bucket in (self.pipeline_root_bucket, self.loadtest_bucket):
                if not BUCKET_RE.match(bucket) or len(bucket) > 63:
                    p.append(f"bucket name {bucket!r} (from project and environment) is invalid")
        p.extend(_label_problems(self._all_labels_unchecked()))
        return p

    def _day_one_problems(self) -> list[str]:
        p: list[str] = []
        if self.billing_project and not PROJECT_RE.match(self.billing_project):
            p.append(f"billing_project {self.billing_project!r} is not a valid project ID")
        if not TEMPLATE_TAG_RE.match(self.template_tag) or self.template_tag.startswith("sha"):
            p.append(f"template_tag {self.template_tag!r} is not a KFP template tag")
        if self.scheduler_template and not (
            TEMPLATE_TAG_RE.match(self.scheduler_template)
            or TEMPLATE_VERSION_RE.match(self.scheduler_template)
        ):
            p.append(
                f"scheduler_template {self.scheduler_template!r} is neither a tag nor a "
                "version (sha256: and 64 hex digits)"
            )
        if not isinstance(self.merge_runs_load_test, bool):
            p.append(f"merge_runs_load_test {self.merge_runs_load_test!r} must be true or false")
        key, sep, value = str(self.model_opt_in_label).partition("=")
        if not sep or not LABEL_KEY_RE.match(key) or not value or not LABEL_VALUE_RE.match(value):
            p.append(
                f"model_opt_in_label {self.model_opt_in_label!r} must be KEY=VALUE with a "
                "GCP label key and a non-empty value"
            )
        if not TORCH_INDEX_RE.match(self.serving_torch_index):
            p.append(
                f"serving_torch_index {self.serving_torch_index!r} is not a torch wheel index "
                "such as cpu or cu128"
            )
        return p

    # ---- labels ----------------------------------------------------------------------

    def _all_labels_unchecked(self) -> dict[str, str]:
        labels = dict(self._cost_labels_unchecked())
        labels.update({"app": "deploytest", "managed-by": "cdktf"})
        labels.update(self.extra_labels)
        return labels

    def _cost_labels_unchecked(self) -> dict[str, str]:
        return {
            "team": self.team,
            "environment": self.environment,
            "cost-center": self.cost_center,
            "gpu-type": str(self.serving_gpu_type).lower().replace("_", "-"),
        }

    @property
    def cost_labels(self) -> dict[str, str]:
        """Team, environment, cost centre and GPU type: what a budget report groups by.

        The same labels go on the pipeline runs (and so on the endpoints they create).
        """
        return self._cost_labels_unchecked()

    @property
    def labels(self) -> dict[str, str]:
        """The cost labels plus app/managed-by and any extra labels: on every resource."""
        return self._all_labels_unchecked()

    # ---- derived names -------------------------------------------------------------

    @property
    def stack_name(self) -> str:
        return f"deploytest-{self.environment}"

    @property
    def prefix(self) -> str:
        return f"deploytest-{self.environment}"

    @property
    def notify_topic_name(self) -> str:
        """The run-end topic's resource name ('' when the stack creates none)."""
        topic = f"projects/{self.project_id}/topics/{self.prefix}-run-ends"
        return topic if self.notify_topic else ""

    @property
    def notify_secret_version(self) -> str:
        """The webhook secret's latest version ('' when the stack creates no secret)."""
        name = f"projects/{self.project_id}/secrets/{self.prefix}-notify-webhook/versions/latest"
        return name if self.notify_webhook_secret else ""

    @property
    def pipeline_root_bucket(self) -> str:
        return f"{self.project_id}-{self.environment}-pipeline-root"

    @property
    def loadtest_bucket(self) -> str:
        return f"{self.project_id}-{self.environment}-loadtests"

    @property
    def pipeline_root(self) -> str:
        return f"gs://{self.pipeline_root_bucket}/root"

    @property
    def regression_locustfile_uri(self) -> str:
        return f"gs://{self.loadtest_bucket}/{self.regression_locustfile}"

    @property
    def docker_repository(self) -> str:
        return f"{self.prefix}-images"

    @property
    def kfp_repository(self) -> str:
        return f"{self.prefix}-pipelines"

    @property
    def kfp_host(self) -> str:
        return f"https://{self.region}-kfp.pkg.dev/{self.project_id}/{self.kfp_repository}"

    @property
    def source_project(self) -> str:
        return self.template_source_project if self.template_source else self.project_id

    @property
    def source_region(self) -> str:
        return self.template_source_region if self.template_source else self.region

    @property
    def source_kfp_repository(self) -> str:
        return (
            f"deploytest-{self.template_source}-pipelines"
            if self.template_source
            else (self.kfp_repository)
        )

    @property
    def source_docker_repository(self) -> str:
        return (
            f"deploytest-{self.template_source}-images"
            if self.template_source
            else (self.docker_repository)
        )

    @property
    def source_kfp_host(self) -> str:
        """The KFP repository this environment's runs read templates from."""
        return (
            f"https://{self.source_region}-kfp.pkg.dev/{self.source_project}/"
            f"{self.source_kfp_repository}"
        )

    def template_uri(self, tag: str = "latest") -> str:
        return f"{self.source_kfp_host}/{self.pipeline_package}/{tag}"

    @property
    def run_template_ref(self) -> str:
        """What model-upload and promote runs use: the pinned version, else main's tag."""
        return self.template_version or self.template_tag

    @property
    def scheduler_template_ref(self) -> str:
        """The tag or sha256: version the Scheduler's runs start from."""
        return self.scheduler_template or self.run_template_ref

    @property
    def scheduler_uses_tag(self) -> bool:
        """Vertex AI resolves a tag itself, through its service agent (see registry.py)."""
        return self.scheduler_enabled and not TEMPLATE_VERSION_RE.match(self.scheduler_template_ref)

    @property
    def opt_in_label(self) -> tuple[str, str]:
        key, _, value = self.model_opt_in_label.partition("=")
        return key, value

    @property
    def billing_project_id(self) -> str:
        return self.billing_project or self.project_id

    @property
    def docker_host(self) -> str:
        return f"{self.region}-docker.pkg.dev/{self.project_id}/{self.docker_repository}"

    def image(self, name: str, tag: str) -> str:
        """An image in the stack's Docker repository (components, serving, builder)."""
        return f"{self.docker_host}/{name}:{tag}"

    def _account(self, role: str) -> str:
        # Service account IDs: 6-30 characters.
        return f"dt-{self.environment}-{role}"[:30]

    @property
    def runner_account_id(self) -> str:
        return self._account("runner")

    @property
    def build_account_id(self) -> str:
        return self._account("build")

    @property
    def invoker_account_id(self) -> str:
        return self._account("scheduler")

    def email(self, account_id: str) -> str:
        return f"{account_id}@{self.project_id}.iam.gserviceaccount.com"

    @property
    def runner_email(self) -> str:
        return self.email(self.runner_account_id)

    @property
    def serving_quota_id(self) -> str:
        return SERVING_GPU_QUOTAS[self.serving_gpu_type][0]

    @property
    def serving_quota_metric(self) -> str:
        return SERVING_GPU_QUOTAS[self.serving_gpu_type][1]

    @property
    def machine_type(self) -> str:
        return self.serving_machine_type or DEFAULT_MACHINE_TYPE[self.serving_gpu_type]

    @property
    def github_uri(self) -> str:
        return f"https://github.com/{self.github_owner}/{self.github_repo}"


def _label_problems(labels: Mapping[str, Any]) -> list[str]:
    p = []
    if len(labels) > 64:
        p.append(f"{len(labels)} labels; GCP allows at most 64")
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_KEY_RE.match(key):
            p.append(
                f"label key {key!r}: lowercase letters, digits, '_' or '-', starting with a "
                "letter, at most 63 characters"
            )
        if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
            p.append(
                f"label {key}={value!r}: values use lowercase letters, digits, '_' or '-', "
                "at most 63 characters"
            )
    return p


def _environment_problems(s: InfraSettings) -> list[str]:
    p = []
    for name in (
        "scheduler_enabled",
        "promote_requires_approval",
        "notify_topic",
        "notify_webhook_secret",
    ):
        if not isinstance(getattr(s, name), bool):
            p.append(f"{name} {getattr(s, name)!r} must be true or false")
    triggers = s.triggers if isinstance(s.triggers, tuple) else ()
    if not isinstance(s.triggers, tuple) or not all(isinstance(t, str) for t in triggers):
        p.append(f"triggers {s.triggers!r} must be a list of trigger names {list(TRIGGER_NAMES)}")
    else:
        unknown = [t for t in triggers if t not in TRIGGER_NAMES]
        if unknown:
            p.append(f"triggers: {unknown} are not trigger names; known: {list(TRIGGER_NAMES)}")
        if len(set(triggers)) != len(triggers):
            p.append(f"triggers {list(triggers)} names a trigger twice")
    if s.template_version and not TEMPLATE_VERSION_RE.match(s.template_version):
        p.append(
            f"template_version {s.template_version!r} is not a version: sha256: and 64 "
            "lowercase hex digits (what `deploytest upload-template` prints)"
        )
    if s.template_source:
        if not ENVIRONMENT_RE.match(s.template_source) or s.template_source == s.environment:
            p.append(
                f"template_source {s.template_source!r} must name another environment "
                "(the one whose merge builds upload the templates, e.g. dev)"
            )
        if not s.template_version:
            p.append(
                "template_version is required with template_source: the sha256: version "
                f"this environment runs (pinned from {s.template_source!r})"
            )
        if not PROJECT_RE.match(s.template_source_project):
            p.append(
                f"template_source_project {s.template_source_project!r} is not a project ID "
                f"(the project of environment {s.template_source!r})"
            )
        if not REGION_RE.match(s.template_source_region):
            p.append(
                f"template_source_region {s.template_source_region!r} is not a region "
                f"(the region of environment {s.template_source!r})"
            )
        if "merge" in triggers:
            p.append(
                "triggers: an environment with template_source has no merge trigger (only "
                f"{s.template_source!r} uploads templates); drop 'merge'"
            )
        if s.scheduler_template:
            p.append(
                "scheduler_template must be empty with template_source: the Scheduler runs "
                "template_version"
            )
    elif "promote" in triggers:
        p.append("triggers: 'promote' needs template_source (the environment it promotes from)")
    for name, low, high in (
        ("slo_p95_ms", 0.0, 3_600_000.0),
        ("max_failure_ratio", 0.0, 1.0),
        ("min_rps", 0.0, 1_000_000.0),
    ):
        value = getattr(s, name)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not (low < value <= high if name == "slo_p95_ms" else low <= value <= high):
            bound = f"({low:g}, {high:g}]" if name == "slo_p95_ms" else f"[{low:g}, {high:g}]"
            p.append(f"{name} {value!r} must be a number within {bound}")
    return p


def _janitor_problems(s: InfraSettings) -> list[str]:
    p = []
    fields_ = str(s.janitor_schedule).split()
    if len(fields_) != 5 or not all(CRON_FIELD_RE.match(f) for f in fields_):
        p.append(f"janitor_schedule {s.janitor_schedule!r} is not a 5-field cron expression")
    if not re.fullmatch(r"(\d+h)?(\d+m)?(\d+s)?", str(s.janitor_max_age)) or not any(
        c.isdigit() and c != "0" for c in str(s.janitor_max_age)
    ):
        p.append(f"janitor_max_age {s.janitor_max_age!r} is not a duration like 24h or 90m")
    for channel in s.janitor_alert_channels:
        if not re.fullmatch(r"projects/[^/]+/notificationChannels/[0-9]+", str(channel)):
            p.append(
                f"janitor_alert_channels: {channel!r} is not projects/P/notificationChannels/ID"
            )
    if s.janitor_image and not re.fullmatch(
        r"[a-z0-9.-]+(:\d+)?/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})?", s.janitor_image
    ):
        p.append(f"janitor_image {s.janitor_image!r} is not an image reference")
    for key, value in s.prices.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            p.append(f"prices[{key!r}] = {value!r} must be a number of USD per hour >= 0")
    return p


def read_settings_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object of an infra settings file; SettingsError if unreadable or not one."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsError(f"cannot read infra settings from {path}: {exc}") from exc
    if not isinstance(values, dict):
        raise SettingsError(f"infra settings in {path} must be a JSON object")
    return values
