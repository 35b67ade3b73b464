"""The main lifecycle with the real model server (`python -m serving`) and the demo GPT-2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc

from emulator.client import error_status, init_sdk
from emulator.launcher import EmulatorProcess
from tests.emulator.conftest import LABELS, port_is_free

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not (ROOT / "serving" / "__main__.py").exists(),
    reason="serving/__main__.py (the real model server) does not exist yet",
)


def assert_streams(url: str, endpoint: str) -> None:
    """`:streamRawPredict` relays the model's server-sent events: one per token, then DONE."""
    import httpx

    body = {"instances": [{"text": "hello"}], "parameters": {"max_new_tokens": 5}, "stream": True}
    with httpx.stream(
        "POST", f"{url}/v1/{endpoint}:streamRawPredict", json=body, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-vertex-ai-deployed-model-id"]
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert sum('"finish_reason"' in e and '"choices":[]' not in e for e in events) == 5
    missing = httpx.post(f"{url}/v1/{endpoint}0:streamRawPredict", json=body, timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_sdk_lifecycle_with_real_model_server(tmp_path):
    from google.cloud import aiplatform

    from serving.demo_model import build_demo_model

    gcs = tmp_path / "gcs"
    build_demo_model(gcs / "demo" / "models" / "tiny", size="tiny", seed=0)
    emu = EmulatorProcess(tmp_path / "emu", extra_args=["--gcs-dir", str(gcs)])
    with emu:
        init_sdk(emu.url, project="p", location="us-central1")
        model = aiplatform.Model.upload(
            display_name="tiny-gpt2",
            artifact_uri="gs://demo/models/tiny",
            serving_container_image_uri="local",
            serving_container_command=[sys.executable, "-m", "serving"],
            serving_container_health_route="/health",
            serving_container_predict_route="/predict",
        )
        endpoint = aiplatform.Endpoint.create(display_name="ep-real", labels=LABELS)
        (found,) = aiplatform.Endpoint.list(filter='labels.deploytest-run="r1"')
        assert found.resource_name == endpoint.resource_name

        model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
        assert len(emu.processes()) == 1
        prediction = endpoint.predict(
            instances=[{"text": "hello"}], parameters={"max_new_tokens": 8}
        )
        (first,) = prediction.predictions
        assert isinstance(first["generated_text"], str) and first["generated_text"]
        assert 1 <= first["output_tokens"] <= 8
        assert prediction.deployed_model_id == endpoint.list_models()[0].id
        assert_streams(emu.url, endpoint.resource_name)

        with pytest.raises(gexc.BadRequest) as err:  # FAILED_PRECONDITION, as on Vertex AI
            endpoint.delete()
        assert error_status(err.value) == "FAILED_PRECONDITION"
        endpoint.undeploy_all()
        assert emu.processes() == []
        endpoint.delete()
        with pytest.raises(gexc.NotFound):
            _ = aiplatform.Endpoint(endpoint.resource_name).display_name
        model.delete()
        url = emu.url
    assert port_is_free(url)
