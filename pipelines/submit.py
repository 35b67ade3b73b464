"""Submit the pipeline to Vertex AI Pipelines as a `PipelineJob`.

The request body is built here once, as the REST `PipelineJob` JSON; `--dry-run` prints it,
a real submit parses the same body into `aiplatform_v1.PipelineJob` and sends it, and the
Cloud Scheduler job in `infra/` posts the very same body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.runtime.make_labels import MANAGED_LABEL_KEY, validate_labels
from components.vertex_clients import resource_uri
from pipelines import validation as check


@dataclass
class SubmitRequest:
    """Everything one Vertex AI pipeline run needs; `validate()` before sending."""

    project: str
    location: str
    pipeline_root: str
    service_account: str
    model: str
    locustfile: str
    template_uri: str = ""
    display_name: str = "deploytest"
    kms_key_name: str = ""  # CMEK for the PipelineJob (and, via parameters, its endpoint)
    labels: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    # GCPC's VertexNotificationEmailOp recipients, compiled in (not with a template URI)
    notify_emails: list[str] = field(default_factory=list)
    # right-sizing branches at once (compiled in; candidates in `parameters`)
    parallelism: int = 2

    def validate(self) -> None:
        check.project(self.project)
        check.location(self.location)
        check.gcs_uri(self.pipeline_root, "pipeline root")
        check.service_account(self.service_account)
        check.model_resource(self.model)
        check.gcs_uri(self.locustfile, "locustfile")
        if self.template_uri:
            from pipelines.templates import parse

            parse(self.template_uri)
        check.kms_key(self.kms_key_name)
        check.pipeline_parameters(self.parameters)
        check.notify_emails(self.notify_emails)
        check.check(
            not (self.notify_emails and self.template_uri),
            "--notify-email is compiled into the pipeline: not with --template-uri (compile "
            "the template with `deploytest compile --notify-email`)",
        )
        check.check(
            not (self.parameters.get("candidates") and self.template_uri),
            "--candidate needs the right-sizing graph, compiled in: not with --template-uri "
            "(give --pipeline-file compiled with `deploytest compile --rightsize`, or neither)",
        )
        try:
            validate_labels(self.labels)
        except ValueError as exc:
            raise check.InputError(str(exc)) from None

    def parameter_values(self) -> dict[str, Any]:
        values = dict(self.parameters)
        values.update(
            project=self.project,
            location=self.location,
            model=self.model,
            model_uri=resource_uri(self.model, self.location),
            locustfile=self.locustfile,
            api_endpoint="",  # the real Vertex AI
            run_id="",  # the label is the pipeline job id
        )
        if self.kms_key_name:
            values["encryption_spec_key_name"] = self.kms_key_name
        return values


def build_job_body(request: SubmitRequest, pipeline_spec: dict | None = None) -> dict:
    """The REST `PipelineJob` body (camelCase), from a template URI or a compiled spec."""
    request.validate()
    body: dict[str, Any] = {
        "displayName": request.display_name,
        "runtimeConfig": {
            "gcsOutputDirectory": request.pipeline_root,
            "parameterValues": request.parameter_values(),
        },
        "serviceAccount": request.service_account,
        "labels": {**request.labels, MANAGED_LABEL_KEY: "true"},
    }
    if request.kms_key_name:
        body["encryptionSpec"] = {"kmsKeyName": request.kms_key_name}
    if request.template_uri:
        body["templateUri"] = request.template_uri
    else:
        from pipelines.compile import is_rightsize_spec

        rightsize = bool(request.parameters.get("candidates"))
        if pipeline_spec is None:
            pipeline_spec = compiled_vertex_spec(
                tuple(request.notify_emails), rightsize, request.parallelism
            )
        check.check(
            is_rightsize_spec(pipeline_spec) == rightsize,
            "--candidate needs a pipeline compiled with `deploytest compile --rightsize`"
            if rightsize
            else "the pipeline file is the right-sizing graph: give --candidate (two or more)",
        )
        body["pipelineSpec"] = pipeline_spec
    return body


def compiled_vertex_spec(
    notify_emails: tuple[str, ...] = (), rightsize: bool = False, parallelism: int = 2
) -> dict:
    """Compile the pipeline (with GCPC's email op for `notify_emails`; the right-sizing
    graph with `rightsize`) and return its spec as a dict."""
    import tempfile

    import yaml

    from pipelines.compile import compile_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        path = compile_pipeline(
            Path(tmp) / "pipeline.yaml",
            notify_emails=notify_emails,
            rightsize=rightsize,
            parallelism=parallelism,
        )
        return yaml.safe_load(path.read_text())


def to_pipeline_job(body: dict):
    """Parse the REST body into `aiplatform_v1.PipelineJob` (raises on any unknown field)."""
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    job = aiplatform_v1.PipelineJob()
    json_format.ParseDict(body, aiplatform_v1.PipelineJob.pb(job))
    return job


def new_job_id(display_name: str) -> str:
    """A unique `pipelineJobId`: the display name's slug, the UTC time and 24 random bits.
    The run label is this id (components/runtime/make_labels.py), so it must not repeat;
    Vertex AI's own default and the SDK's (`{pipeline}-{YYYYmmddHHMMSS}`) can, within one second."""
    import re
    import secrets
    import time

    slug = re.sub(r"[^a-z0-9-]+", "-", display_name.lower()).strip("-")[:40].strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"run-{slug}".rstrip("-")
    return f"{slug}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def submit(
    body: dict, project: str, location: str, api_endpoint: str = "", job_id: str = ""
) -> str:
    """Create the pipeline job on Vertex AI (or `api_endpoint`), with `job_id` or a new
    unique one, and return its name."""
    from google.cloud import aiplatform_v1

    from components.vertex_clients import client_kwargs

    client = aiplatform_v1.PipelineServiceClient(**client_kwargs(location, api_endpoint))
    job = client.create_pipeline_job(
        parent=f"projects/{project}/locations/{location}",
        pipeline_job=to_pipeline_job(body),
        pipeline_job_id=job_id or new_job_id(body.get("displayName", "")),
    )
    return job.name


def check_locustfile_exists(uri: str, project: str) -> None:
    """InputError unless the gs:// locustfile exists and the caller may read it.

    Checked before the job is created: a missing file would otherwise fail the run's
    import step only after the paid GPU endpoint was deployed. Honours
    STORAGE_EMULATOR_HOST like every google-cloud-storage client.
    """
    from google.api_core import exceptions
    from google.cloud import storage

    bucket, _, name = uri.removeprefix("gs://").partition("/")
    check.check(bool(name), f"invalid locustfile {uri!r}: expected gs://BUCKET/OBJECT")
    try:
        found = storage.Client(project=project).bucket(bucket).blob(name).exists()
    except exceptions.Forbidden as exc:
        raise check.InputError(
            f"cannot read the locustfile {uri}: {exc.message} (the caller needs "
            "storage.objects.get on the bucket)"
        ) from None
    check.check(
        found,
        f"the locustfile {uri} does not exist: upload it first (cloudbuild.yaml's "
        f"upload-locustfile step, or `gcloud storage cp loadtests/locustfile.py {uri}`)",
    )


def dumps(body: dict) -> str:
    return json.dumps(body, indent=2, sort_keys=True)
