"""The emulator against hostile and careless callers (issue: hardening).

A web page must not be able to reach a command (cross-site requests are refused), stored
data is validated as Vertex AI validates it, bodies are bounded, deploys are capped, and
one state folder has one emulator.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time

import httpx
import pytest
from google.api_core import exceptions as gexc

from emulator.launcher import EmulatorProcess
from tests.emulator.conftest import upload_fake
from tests.raw_http import upload_then_read

PARENT = "v1/projects/p/locations/us-central1"
JSON = {"content-type": "application/json"}

# What a page would send to run `touch PWNED` through upload -> create -> deploy.
EVIL_MODEL = {
    "model": {
        "displayName": "evil",
        "containerSpec": {"imageUri": "x", "command": ["/bin/sh", "-c", "touch PWNED"]},
    }
}


def _browser_attempts(url: str) -> list[tuple[str, dict, bytes]]:
    """Requests a browser can send from a foreign page without a CORS preflight."""
    body = json.dumps(EVIL_MODEL).encode()
    upload = f"{url}/{PARENT}/models:upload?modelId=evil"
    return [
        # <form enctype="text/plain"> or fetch(..., {mode: "no-cors"}) with a string body
        (upload, {"content-type": "text/plain", "origin": "https://evil.example"}, body),
        # the same from a browser that is not sending Origin (old or privacy-stripped)
        (upload, {"content-type": "text/plain;charset=UTF-8"}, body),
        # a Blob body without a type: no Content-Type at all
        (upload, {}, body),
        # a form post
        (upload, {"content-type": "application/x-www-form-urlencoded"}, body),
        # JSON declared, but sent by a browser on another site's behalf
        (upload, {**JSON, "sec-fetch-site": "cross-site"}, body),
        (upload, {**JSON, "origin": "http://localhost:3000"}, body),
        # DNS rebinding: same-origin for the browser, but the Host is the page's domain
        (upload, {**JSON, "host": "rebind.evil.example:1234"}, body),
    ]


def test_cross_site_chain_creates_nothing(emulator, tmp_path):
    url = emulator.url
    for target, headers, body in _browser_attempts(url):
        resp = httpx.post(target, content=body, headers=headers)
        assert resp.status_code in (403, 415), (headers, resp.status_code, resp.text)
        error = resp.json()["error"]
        assert error["status"] in ("PERMISSION_DENIED", "INVALID_ARGUMENT"), error
    # The rest of the chain, as a page would send it, is refused the same way.
    endpoint = httpx.post(
        f"{url}/{PARENT}/endpoints?endpointId=evil",
        content=b'{"displayName": "evil"}',
        headers={"content-type": "text/plain", "origin": "https://evil.example"},
    )
    assert endpoint.status_code == 403
    deploy = httpx.post(
        f"{url}/{PARENT}/endpoints/evil:deployModel",
        content=json.dumps({"deployedModel": {"model": f"{PARENT[3:]}/models/evil"}}).encode(),
        headers={"content-type": "text/plain"},
    )
    assert deploy.status_code == 415
    listed = httpx.get(f"{url}/{PARENT}/models").json()
    assert listed.get("models", []) == []
    assert httpx.get(f"{url}/{PARENT}/endpoints").json().get("endpoints", []) == []
    assert emulator.processes() == []


def test_programs_and_same_origin_pages_still_get_in(emulator, aiplatform):
    url = emulator.url
    own_origin = {"origin": url, "sec-fetch-site": "same-origin", **JSON}
    for headers in (JSON, own_origin):
        resp = httpx.post(
            f"{url}/{PARENT}/endpoints", content=b'{"displayName": "ok"}', headers=headers
        )
        assert resp.status_code == 200, resp.text
    # A bodiless POST from a program (no Origin, no Content-Type) is not a browser form.
    resp = httpx.get(f"{url}/{PARENT}/endpoints")
    assert len(resp.json()["endpoints"]) == 2


BAD_LABELS = [
    {"Upper": "x"},
    {"": "x"},
    {"k": 5},
    {"k": "Value"},
    {"k": "x" * 64},
    {"1key": "x"},
    {"k" * 64: "x"},
    {"k.dot": "x"},
    {f"k{i}": "v" for i in range(65)},
]


@pytest.mark.parametrize("labels", [*BAD_LABELS, ["a", "b"]], ids=range(len(BAD_LABELS) + 1))
def test_bad_labels_are_invalid_argument_and_nothing_is_stored(emulator, aiplatform, labels):
    url = emulator.url
    for path, body in (
        ("endpoints", {"displayName": "e", "labels": labels}),
        ("models:upload", {"model": {"displayName": "m", "labels": labels}}),
    ):
        resp = httpx.post(f"{url}/{PARENT}/{path}", json=body)
        assert resp.status_code == 400, resp.text
        error = resp.json()["error"]
        assert error["status"] == "INVALID_ARGUMENT"
        # a label that is not a string (or labels that are not a map) is refused by the
        # proto3 JSON parse of the body (emulator/strict.py), the rest by the label rules
        assert "no more than 64 labels" in error["message"] or error["message"].startswith(
            "Invalid value at"
        ), error["message"]
    assert httpx.get(f"{url}/{PARENT}/endpoints").json().get("endpoints", []) == []
    assert httpx.get(f"{url}/{PARENT}/models").json().get("models", []) == []


def test_good_international_labels_are_kept(emulator, aiplatform):
    labels = {"équipe": "données", "k_1-x": "", "deploytest-run": "r1"}
    endpoint = aiplatform.Endpoint.create(display_name="intl", labels=labels)
    assert dict(endpoint.gca_resource.labels) == labels


def test_sdk_raises_the_real_exception_for_a_bad_label(emulator, aiplatform):
    with pytest.raises(gexc.BadRequest, match="no more than 64 labels"):
        aiplatform.Endpoint.create(display_name="bad", labels={"Team": "x"})


def test_container_spec_and_display_name_are_checked_at_upload(emulator, aiplatform):
    url = emulator.url
    cases = [
        {"displayName": "m", "containerSpec": {"imageUri": "x", "command": "python -m serving"}},
        {"displayName": "m", "containerSpec": {"imageUri": "x", "args": ["--a", 1]}},
        {"displayName": "m", "containerSpec": {"imageUri": "x", "env": [{"value": "x"}]}},
        {"displayName": "m" * 129},
        {"displayName": ""},
    ]
    for model in cases:
        resp = httpx.post(f"{url}/{PARENT}/models:upload", json={"model": model})
        assert resp.status_code == 400, (model, resp.text)
        assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert httpx.get(f"{url}/{PARENT}/models").json().get("models", []) == []


def test_request_bodies_are_bounded(emulator, aiplatform):
    url = emulator.url
    big = b'{"displayName": "' + b"x" * 11_000_000 + b'"}'
    resp = httpx.post(f"{url}/{PARENT}/endpoints", content=big, headers=JSON)
    assert resp.status_code == 400
    assert "payload size exceeds the limit: 10485760" in resp.json()["error"]["message"]

    def chunks():  # no Content-Length: the limit holds for a streamed body too
        for _ in range(12):
            yield b"x" * 1_000_000

    resp = httpx.post(f"{url}/{PARENT}/endpoints", content=chunks(), headers=JSON)
    assert resp.status_code == 400
    predict = f"{url}/{PARENT}/endpoints/1:predict"
    resp = httpx.post(predict, content=b"[" + b" " * 1_600_000 + b"]", headers=JSON)
    assert resp.status_code == 400 and "1500000" in resp.json()["error"]["message"]
    assert httpx.get(f"{url}/{PARENT}/endpoints").json().get("endpoints", []) == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_client_still_uploading_an_oversized_body_reads_the_400(emulator, chunked):
    # The client sends all 11 MB before it reads: the emulator must not close (and so
    # reset) the connection under it, or the 400 is lost (issue 17).
    status, answer = upload_then_read(f"{emulator.url}/{PARENT}/endpoints", 11_000_000, chunked)
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert "Request payload size exceeds the limit: 10485760 bytes." in answer["error"]["message"]
    assert httpx.get(f"{emulator.url}/{PARENT}/endpoints").json().get("endpoints", []) == []


def test_a_stalled_oversized_upload_is_answered_within_the_drain_bound(emulator):
    # A client that declares an oversized body and stops sending cannot hold the
    # connection: the emulator answers once the drain deadline passes.
    from urllib.parse import urlsplit

    from httpbounds import DRAIN_MAX_SECONDS

    parts = urlsplit(emulator.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        sock.sendall(
            f"POST /{PARENT}/endpoints HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: 11000000\r\n\r\n".encode()
            + b"x" * 1000
        )
        started = time.monotonic()
        answer = b""
        while data := sock.recv(65536):
            answer += data
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"payload size exceeds the limit" in answer
    # closed by the emulator after its bound, not held open (60 s would be the socket's)
    assert DRAIN_MAX_SECONDS - 1 <= waited < DRAIN_MAX_SECONDS + 20


def test_deploys_are_capped_per_endpoint(emulator, aiplatform):
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="cap")
    emulator.set_faults({"deploy": "hang"})
    body = {
        "deployedModel": {
            "model": model.resource_name,
            "dedicatedResources": {
                "machineSpec": {"machineType": "n1-standard-2"},
                "minReplicaCount": 1,
            },
        }
    }
    url = f"{emulator.url}/v1/{endpoint.resource_name}:deployModel"
    first = httpx.post(url, json=body)
    assert first.status_code == 200, first.text
    burst = [httpx.post(url, json=body) for _ in range(5)]
    assert {r.status_code for r in burst} == {400}
    assert {r.json()["error"]["status"] for r in burst} == {"FAILED_PRECONDITION"}
    assert len(emulator.processes()) <= 1


def test_deploys_are_capped_per_emulator(tmp_path):
    from google.cloud import aiplatform

    from emulator.client import init_sdk

    with EmulatorProcess(tmp_path / "emu", extra_args=["--max-model-servers", "1"]) as emu:
        init_sdk(emu.url, project="p", location="us-central1")
        model = upload_fake(aiplatform)
        first = aiplatform.Endpoint.create(display_name="one")
        first.deploy(model=model, machine_type="n1-standard-2")
        second = aiplatform.Endpoint.create(display_name="two")
        with pytest.raises(gexc.TooManyRequests, match="at most 1 deployed models"):
            second.deploy(model=model, machine_type="n1-standard-2")
        assert len(emu.processes()) == 1
        first.undeploy_all()
        second.deploy(model=model, machine_type="n1-standard-2")  # room again
        second.undeploy_all()
        assert emu.processes() == []


def test_second_emulator_on_one_state_folder_exits_2(emulator):
    proc = subprocess.run(
        [sys.executable, "-m", "emulator", "--state-dir", str(emulator.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "in use by another emulator" in proc.stderr
    assert f"pid {emulator.pid}" in proc.stderr
    assert emulator.admin.health()["status"] == "ok"  # the first one is untouched


def test_old_state_with_bad_labels_is_listable_deletable_and_cleanable(tmp_path):
    """State written before validation: filters never answer 500, and the janitor works."""
    from google.cloud import aiplatform

    from emulator.client import init_sdk

    state = tmp_path / "emu"
    with EmulatorProcess(state) as emu:
        init_sdk(emu.url, project="p", location="us-central1")
        ours = aiplatform.Endpoint.create(
            display_name="ours", labels={"deploytest-run": "r9", "deploytest-managed": "true"}
        )
        broken = aiplatform.Endpoint.create(display_name="broken")
    # An older emulator stored whatever it was sent: write such labels behind its back.
    with sqlite3.connect(state / "state.sqlite3") as db:
        (data,) = db.execute(
            "SELECT data FROM resources WHERE name=?", (broken.resource_name,)
        ).fetchone()
        doc = json.loads(data)
        doc["labels"] = ["not", "a", "map"]
        db.execute(
            "UPDATE resources SET data=? WHERE name=?", (json.dumps(doc), broken.resource_name)
        )
        other = dict(doc, name=doc["name"] + "1", labels={"Bad Key": 5, "deploytest-run": 7})
        db.execute(
            "INSERT INTO resources(name, kind, parent, seq, data) VALUES (?,?,?,?,?)",
            (other["name"], "endpoints", "projects/p/locations/us-central1", 99, json.dumps(other)),
        )
    with EmulatorProcess(state) as emu:
        init_sdk(emu.url, project="p", location="us-central1")
        assert "breaks a rule" in emu.log_text()
        resp = httpx.get(
            f"{emu.url}/{PARENT}/endpoints", params={"filter": 'labels.deploytest-run="r9"'}
        )
        assert resp.status_code == 200
        assert [e["name"] for e in resp.json()["endpoints"]] == [ours.resource_name]
        assert len(httpx.get(f"{emu.url}/{PARENT}/endpoints").json()["endpoints"]) == 3
        janitor = subprocess.run(
            [
                sys.executable,
                "-m",
                "deploytest",
                "cleanup",
                "--project",
                "p",
                "--location",
                "us-central1",
                "--run",
                "r9",
                "--api-endpoint",
                emu.url,
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert janitor.returncode == 0, janitor.stdout + janitor.stderr
        names = {e.resource_name for e in aiplatform.Endpoint.list()}
        assert ours.resource_name not in names and broken.resource_name in names
        for name in names:
            aiplatform.Endpoint(name).delete()
        assert aiplatform.Endpoint.list() == []
