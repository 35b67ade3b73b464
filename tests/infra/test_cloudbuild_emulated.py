"""The merge build's deploytest steps (compile, upload-template, submit --wait), run as
Cloud Build runs them but against the embedded Vertex AI instead of --dry-run: the
template goes to the emulated Artifact Registry, the job runs the uploaded version to
SUCCEEDED, and nothing is left."""

from __future__ import annotations

import subprocess

import pytest
from deploytest_infra.settings import InfraSettings

from emulator.launcher import EmulatorProcess

from .cloudbuild_checks import DEPLOYTEST, command, substitute
from .conftest import REPO
from .test_cloudbuild import builds, trigger_values  # noqa: F401 (a fixture)
from .test_scheduler_body_runs import LOCUSTFILE, _register_model

pytestmark = pytest.mark.slow


def test_compile_upload_and_submit_run_against_the_emulator(builds, tmp_path, monkeypatch):  # noqa: F811
    from google.cloud import storage

    from deploytest.run.demo_model import ensure_demo_model

    settings = InfraSettings()
    values = {**trigger_values(settings, "merge"), "_LOAD_TEST": "true"}
    images = substitute("${_REGION}-docker.pkg.dev/${PROJECT_ID}/${_DOCKER_REPO}", values)
    model_dir = ensure_demo_model(tmp_path / "cache", "tiny", lambda _: None)
    args = ["--project", settings.project_id, "--local-image", f"{images}/components"]
    with EmulatorProcess(tmp_path / "emu", extra_args=args) as emu:
        for key, value in emu.client_env().items():
            monkeypatch.setenv(key, value)  # what the steps' processes inherit
        # What infra/ creates, the upload-locustfile step (gcloud) uploads, and the model.
        client = storage.Client(project=settings.project_id)
        for uri in (values["_PIPELINE_ROOT"], values["_LOCUSTFILE"]):
            client.create_bucket(uri[len("gs://") :].split("/", 1)[0])
        bucket, _, name = values["_LOCUSTFILE"][len("gs://") :].partition("/")
        client.bucket(bucket).blob(name).upload_from_filename(str(LOCUSTFILE))
        _register_model(emu, values["_MODEL_RESOURCE_NAME"], model_dir)

        workspace = tmp_path / "workspace"  # /workspace in Cloud Build
        workspace.mkdir()
        outputs = {}
        for step in builds["merge"]["steps"]:
            cmd = [substitute(part, values) for part in command(step)]
            if cmd[0] != DEPLOYTEST:
                continue
            cmd[0] = str(REPO / DEPLOYTEST)
            if cmd[1] == "submit":
                cmd += ["--poll-s", "1"]  # the build polls every 30 s; the same code
                cmd += ["--duration", "3s"]  # the build's own load length; not what is tested
            proc = subprocess.run(cmd, cwd=workspace, capture_output=True, text=True, timeout=400)
            assert proc.returncode == 0, f"{step['id']}: {proc.stdout[-2000:]}{proc.stderr[-3000:]}"
            outputs[step["id"]] = proc.stdout + proc.stderr
        assert {"compile", "upload-template", "submit"} <= set(outputs)
        assert "SUCCEEDED" in outputs["submit"], outputs["submit"]
        assert emu.processes() == []
