"""The serving APIs through the embedded Vertex AI: --api auto from the deployed model's
containerSpec, `:rawPredict` and `:streamRawPredict` relayed untouched, v1beta1
`chat/completions`, and a container no rule knows refused before any load. The containers
are the scripted ones of tests/components/api_servers.py, run by the emulator as a model's
container command; each test checks that no model server is left."""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.components.test_cli_loadtest import loadtest


def _upload(emulator, api: str, route: str, image: str = "example/custom") -> str:
    """A model whose container is the scripted `api` server, through the Model Registry."""
    import httpx

    body = {
        "model": {
            "displayName": f"scripted-{api}",
            "containerSpec": {
                "imageUri": image,
                "command": [sys.executable, "-m", "tests.components.api_servers", api],
                "env": [{"name": "CHUNK_TOKENS", "value": "2"}],
                "predictRoute": route,
                "healthRoute": "/health",
            },
        }
    }
    parent = "projects/p/locations/us-central1"
    op = httpx.post(f"{emulator.url}/v1/{parent}/models:upload", json=body).json()
    for _ in range(100):
        op = httpx.get(f"{emulator.url}/v1/{op['name']}").json()
        if op.get("done"):
            return op["response"]["model"]
        time.sleep(0.1)
    raise AssertionError(f"upload never finished: {op}")


def _deploy(emulator, model: str) -> str:
    from google.cloud import aiplatform

    from emulator.client import init_sdk

    init_sdk(emulator.url, project="p", location="us-central1")
    endpoint = aiplatform.Endpoint.create(display_name="apis")
    endpoint.deploy(model=aiplatform.Model(model), machine_type="n1-standard-2")
    return endpoint


@pytest.mark.parametrize(
    ("api", "route", "stream", "method"),
    [
        ("openai-completions", "/v1/completions", True, ":streamRawPredict"),
        ("openai-completions", "/v1/completions", False, ":rawPredict"),
        ("openai-chat", "/v1/chat/completions", True, "/chat/completions"),
        ("tgi", "/vertex", False, ":predict"),
    ],
)
def test_through_the_emulator_with_api_auto(tmp_path, emulator, api, route, stream, method):
    # The model's containerSpec picks the API (auto); the emulator relays :rawPredict and
    # :streamRawPredict bodies untouched and serves v1beta1 chat/completions.
    image = (
        "us-docker.pkg.dev/deeplearning-platform-release/gcr.io/"
        "huggingface-text-generation-inference-cu124.2-4"
        if api == "tgi"
        else "example/custom"
    )
    endpoint = _deploy(emulator, _upload(emulator, api, route, image))
    try:
        done = loadtest(
            "--endpoint", endpoint.resource_name, "--api-endpoint", emulator.url,
            "-o", str(tmp_path / "out"), "--duration", "2s", "--users", "2",
            "--max-new-tokens", "6", *(("--stream",) if stream else ()),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"serving API: {api} (auto: " in done.stdout
        m = json.loads((tmp_path / "out" / "metrics.json").read_text())
        assert m["api"] == api and m["failures"] == 0 and m["path"].endswith(method)
        if api != "tgi":
            assert m["output_tokens_source"] == "answer"
            assert m["output_tokens"] == 6 * (m["requests"] - m["failures"])
    finally:
        endpoint.undeploy_all()
        endpoint.delete()
    assert emulator.processes() == []


def test_auto_refuses_a_container_no_rule_knows(tmp_path, emulator):
    endpoint = _deploy(emulator, _upload(emulator, "tgi", "/infer", "gcr.io/x/mystery"))
    try:
        done = loadtest(
            "--endpoint", endpoint.resource_name, "--api-endpoint", emulator.url,
            "-o", str(tmp_path / "out"),
        )  # fmt: skip
        assert done.returncode == 2 and "no rule knows the container" in done.stderr
        assert "--api deploytest|openai-completions" in done.stderr
        assert not (tmp_path / "out").exists()
    finally:
        endpoint.undeploy_all()
        endpoint.delete()
