"""`deploytest submit` and `upload-template`: inputs are checked before anything is sent,
and the dry-run body is a valid aiplatform_v1.PipelineJob."""

import json
import subprocess
import sys

import pytest

from pipelines.submit import to_pipeline_job

BASE = [
    "--project", "my-proj-123",
    "--location", "europe-west4",
    "--pipeline-root", "gs://my-bucket/pipeline-root",
    "--service-account", "pipeline-runner@my-proj-123.iam.gserviceaccount.com",
    "--model", "projects/my-proj-123/locations/europe-west4/models/42",
    "--locustfile", "gs://my-loadtests/locustfile.py",
]  # fmt: skip


def deploytest(*args):
    return subprocess.run(
        [sys.executable, "-m", "deploytest", *args], capture_output=True, text=True, timeout=120
    )


def test_dry_run_prints_a_pipeline_job_from_a_template():
    uri = "https://europe-west4-kfp.pkg.dev/my-proj-123/pipelines/deploytest/latest"
    r = deploytest(
        "submit", *BASE, "--template-uri", uri, "--accelerator-type", "NVIDIA_L4",
        "--accelerator-count", "1", "--machine-type", "g2-standard-8", "--duration", "2m",
        "--cost-label", "team=ml-platform", "--label", "trigger=schedule", "--dry-run", "--json",
        "--notify-secret", "projects/my-proj-123/secrets/deploytest-webhook/versions/latest",
        "--notify-topic", "projects/my-proj-123/topics/deploytest-runs",
        "--notify-timeout-s", "5",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    job = to_pipeline_job(body)
    assert job.template_uri == uri
    assert job.service_account.startswith("pipeline-runner@")
    assert job.runtime_config.gcs_output_directory == "gs://my-bucket/pipeline-root"
    values = body["runtimeConfig"]["parameterValues"]
    assert values["model"] == "projects/my-proj-123/locations/europe-west4/models/42"
    assert values["model_uri"] == (
        "https://europe-west4-aiplatform.googleapis.com/v1/"
        "projects/my-proj-123/locations/europe-west4/models/42"
    )
    assert values["accelerator_type"] == "NVIDIA_L4" and values["accelerator_count"] == 1
    assert values["cost_labels"] == {"team": "ml-platform"}
    assert values["api_endpoint"] == "" and values["run_id"] == ""
    # the run-end message's destinations pass through as pipeline parameters
    assert values["notify_webhook_secret"].endswith("/secrets/deploytest-webhook/versions/latest")
    assert values["notify_topic"] == "projects/my-proj-123/topics/deploytest-runs"
    assert values["notify_timeout_s"] == 5 and values["notify_webhook"] == ""
    assert body["labels"] == {"trigger": "schedule", "deploytest-managed": "true"}


def test_dry_run_in_a_region_with_a_two_digit_number():
    args = [a.replace("europe-west4", "europe-west10") for a in BASE]
    r = deploytest("submit", *args, "--template-uri",
                   "https://europe-west10-kfp.pkg.dev/my-proj-123/pipelines/deploytest/main",
                   "--kms-key-name", "projects/k/locations/europe-west10/keyRings/r/cryptoKeys/c",
                   "--dry-run", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["runtimeConfig"]["parameterValues"]["location"] == "europe-west10"
    assert body["encryptionSpec"]["kmsKeyName"].endswith("/cryptoKeys/c")
    # ... and the endpoint the run creates gets the same key.
    values = body["runtimeConfig"]["parameterValues"]
    assert values["encryption_spec_key_name"] == body["encryptionSpec"]["kmsKeyName"]


def test_pipeline_file_must_be_a_compiled_pipeline_and_excludes_a_template(tmp_path):
    bad = tmp_path / "x.yaml"
    bad.write_text("hello: world\n")
    r = deploytest("submit", *BASE, "--pipeline-file", str(bad), "--dry-run")
    assert r.returncode == 2 and "not a compiled KFP pipeline" in r.stderr
    uri = "https://europe-west4-kfp.pkg.dev/my-proj-123/p/deploytest/main"
    r = deploytest("submit", *BASE, "--pipeline-file", str(bad), "--template-uri", uri, "--dry-run")
    assert r.returncode == 2 and "not both" in r.stderr


def test_dry_run_without_template_embeds_the_compiled_spec():
    r = deploytest("submit", *BASE, "--notify-email", "ops@example.com", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["pipelineSpec"]["pipelineInfo"]["name"] == "deploytest"
    # GCPC's email op compiled in, for Vertex AI
    assert "vertex-pipelines-notification-email" in body["pipelineSpec"]["root"]["dag"]["tasks"]
    to_pipeline_job(body)


@pytest.mark.parametrize(
    "change, message",
    [
        (("--model", "models/42"), "invalid model"),
        (("--locustfile", "/tmp/locustfile.py"), "invalid locustfile"),
        (("--pipeline-root", "s3://x/y"), "invalid pipeline root"),
        (("--service-account", "me@example.com"), "invalid service account"),
        (("--duration", "20 seconds"), "duration"),
        (("--accelerator-type", "NVIDIA_L4"), "together"),
        (("--min-replicas", "2", "--max-replicas", "1"), "max replicas"),
        (("--max-failure-ratio", "2"), "failure ratio"),
        (("--cost-label", "Team=x"), "invalid GCP labels"),
        (("--notify", "http://chat.example.com/hook"), "must be https"),
        (("--notify-topic", "topics/t"), "expected projects/PROJECT/topics/TOPIC"),
        (
            (
                "--template-uri",
                "https://europe-west4-kfp.pkg.dev/my-proj-123/p/deploytest/v1",
                "--notify-email",
                "ops@example.com",
            ),
            "not with --template-uri",
        ),  # fmt: skip
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(change, message):
    args = list(BASE)
    for flag, value in zip(change[::2], change[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    r = deploytest("submit", *args, "--dry-run")
    assert r.returncode == 2
    assert message in r.stderr
    assert r.stdout == ""


def test_upload_template_dry_run_and_bad_host(tmp_path):
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text("pipelineInfo: {name: deploytest}\n")
    host = "https://us-central1-kfp.pkg.dev/my-proj-123/pipelines"
    r = deploytest("upload-template", "--file", str(pipeline), "--host", host, "--tag", "v1",
                   "--dry-run")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "would upload" in r.stdout and "['v1']" in r.stdout
    r = deploytest("upload-template", "--file", str(tmp_path / "missing.yaml"),
                   "--host", "https://example.com/x", "--dry-run")  # fmt: skip
    assert r.returncode == 2
    assert "no such file" in r.stderr and "invalid host" in r.stderr
