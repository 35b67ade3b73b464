"""The Cloud Scheduler job that `make synth` writes, POSTed as it is (its URI, headers and
body, with a token from the credentials it would use), runs to SUCCEEDED against the
embedded Vertex AI: its template from the emulated Artifact Registry, its model and
locustfile where the settings name them, its history in Cloud Storage."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from emulator.launcher import EmulatorProcess
from tests.infra.test_stack import regression_job

pytestmark = pytest.mark.slow
LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"


def _register_model(emu, name: str, model_dir) -> None:
    """The regression model under the name the settings give it: an id Vertex AI assigned
    (digits, which `models:upload` may not ask for: the emulator's admin seed) and the
    settings' alias (`@production`) on its version."""
    import sys

    import httpx

    base, _, alias = name.partition("@")
    project_location, model_id = base.rsplit("/models/", 1)
    body = {
        "parent": project_location,
        "modelId": model_id,
        "model": {
            "displayName": "regression-model",
            "versionAliases": [alias] if alias and not alias.isdigit() else [],
            "containerSpec": {
                "imageUri": "local/deploytest-serving",
                "command": [sys.executable, "-m", "serving"],
                "args": ["--model-dir", str(model_dir), "--host", "127.0.0.1"],
                "healthRoute": "/health",
                "predictRoute": "/predict",
            },
        },
    }
    resp = httpx.post(f"{emu.url}/deploytest/v1/models:seed", json=body)
    assert resp.status_code == 200, resp.text
    got = httpx.get(f"{emu.url}/v1/{name}")
    assert got.status_code == 200 and got.json()["name"].startswith(base), got.text


def test_the_scheduler_body_runs_to_succeeded(synth, tmp_path, monkeypatch):
    from google.auth.transport.requests import AuthorizedSession
    from google.cloud import storage
    from kfp.registry import RegistryClient

    from deploytest.run.demo_model import ensure_demo_model
    from pipelines.compile import compile_pipeline

    settings = synth.settings
    job = regression_job(synth)
    target = job["http_target"]
    body = json.loads(base64.b64decode(target["body"]))
    values = body["runtimeConfig"]["parameterValues"]
    model_dir = ensure_demo_model(tmp_path / "cache", "tiny", lambda _: None)
    with EmulatorProcess(tmp_path / "emu", extra_args=["--project", settings.project_id]) as emu:
        for key, value in emu.client_env().items():
            monkeypatch.setenv(key, value)
        # What infra/ creates and Cloud Build uploads, in the emulated services:
        client = storage.Client(project=settings.project_id)
        for uri in (body["runtimeConfig"]["gcsOutputDirectory"], values["locustfile"]):
            bucket = uri[len("gs://") :].split("/", 1)[0]
            if client.lookup_bucket(bucket) is None:
                client.create_bucket(bucket)
        bucket, _, name = values["locustfile"][len("gs://") :].partition("/")
        client.bucket(bucket).blob(name).upload_from_filename(str(LOCUSTFILE))
        template = compile_pipeline(tmp_path / "vertex.yaml")
        host, _, ref = body["templateUri"].rpartition("/deploytest/")
        RegistryClient(host=host).upload_pipeline(file_name=str(template), tags=[ref])
        _register_model(emu, values["model"], model_dir)

        # The Scheduler's request: its method, URI and headers, an OAuth token.
        import google.auth

        credentials, _ = google.auth.default(scopes=[target["oauth_token"]["scope"]])
        session = AuthorizedSession(credentials)
        # The Scheduler's body as synthesised, but a 3 s load instead of the regression's own
        # length: this test is about the body's shape and where it runs, not the load.
        body["runtimeConfig"]["parameterValues"]["duration"] = "3s"
        resp = session.request(
            target["http_method"], target["uri"], data=json.dumps(body).encode(),
            headers=target["headers"],
        )  # fmt: skip
        assert resp.status_code == 200, resp.text
        name = resp.json()["name"]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            state = session.get(f"https://{settings.region}-aiplatform.googleapis.com/v1/{name}")
            got = state.json()
            if got["state"] in ("PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED"):
                break
            time.sleep(1)
        tasks = {t["taskName"]: t["state"] for t in got["jobDetail"]["taskDetails"]}
        assert got["state"] == "PIPELINE_STATE_SUCCEEDED", (got.get("error"), tasks)
        # the run went into the history in Cloud Storage, and nothing is left
        history = values["history"][len("gs://") :].split("/", 1)
        recorded = list(client.list_blobs(history[0], prefix=history[1] + "/"))
        assert any(b.name.endswith("run.json") for b in recorded)
        assert emu.processes() == []
        endpoints = session.get(target["uri"].replace("/pipelineJobs", "/endpoints")).json()
        assert endpoints.get("endpoints", []) == []
