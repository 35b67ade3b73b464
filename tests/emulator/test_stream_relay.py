""":streamRawPredict relays the container's stream as it comes: never buffered to the end."""

from __future__ import annotations

import time

import httpx

from tests.emulator.conftest import LABELS, upload_fake


def test_stream_raw_predict_passes_each_event_on_when_it_comes(emulator, aiplatform):
    model = upload_fake(aiplatform, env={"FAKE_STREAM_GAP_S": "0.6"})
    endpoint = aiplatform.Endpoint.create(display_name="stream", labels=LABELS)
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
    url = f"{emulator.url}/v1/{endpoint.resource_name}:streamRawPredict"
    arrivals = []
    with httpx.stream("POST", url, json={"instances": [], "stream": True}, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                arrivals.append((line, time.monotonic()))
    assert [line for line, _ in arrivals] == ["data: first", "data: second", "data: [DONE]"]
    # The model server waits 0.6 s between its events: a buffering relay would hand both
    # over at once at the end. (A lower bound only: a slow machine cannot make it pass.)
    assert arrivals[1][1] - arrivals[0][1] >= 0.4
