"""The SDK's default transport, gRPC, against the emulator by the env file only: the same
calls, answers and exception classes as over REST (emulator/grpc_bridge.py)."""

# No `from __future__ import annotations`: kfp reads the component's annotations.
import json
import time

import psutil
import pytest
from kfp import compiler, dsl

from emulator.launcher import EmulatorProcess
from tests.emulator.conftest import FAKE_SERVER, port_is_free
from tests.emulator.test_google_clients import run_with_env

SCRIPT = __file__.replace("test_grpc_transport.py", "grpc_transport_script.py")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def nap(seconds: float) -> str:
    import time

    time.sleep(seconds)
    return "done"


@dsl.pipeline(name="grpc-pipeline")
def napping(seconds: float = 0.0):
    nap(seconds=seconds)


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpc")
    env_file = tmp / "emulator.env"
    template = tmp / "pipeline.yaml"
    compiler.Compiler().compile(napping, str(template))
    emu = EmulatorProcess(
        tmp / "emu",
        extra_args=["--env-file", str(env_file), "--operation-hold-s", "2",
                    "--deploy-timeout-s", "20"],
    )  # fmt: skip
    emu.start()
    try:
        yield emu, env_file, template
    finally:
        url = emu.url
        emu.stop()
    assert port_is_free(url)


def test_the_sdk_over_grpc_by_the_env_file_only(front):
    emu, env_file, template = front
    proc = run_with_env(env_file, [SCRIPT, FAKE_SERVER, str(template)], timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-6000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["transport"] == "ModelServiceGrpcTransport"
    assert out["versions"] == ["1", "2", ["candidate"]]
    assert out["listed"] == ["grpc-model"] and out["get"] == "2"
    assert out["predict"] == ["echo: hi", out["deployed_id"]]
    assert out["raw"] == ["application/json", "echo: raw"]
    count, spread, content_type = out["stream"]
    assert count >= 2 and content_type.startswith("text/event-stream")
    assert spread > 0.2, "the stream came at once, not as the container wrote it"
    assert out["not_found"] == ["NotFound", []]
    assert out["unknown_field"][0] == "InvalidArgument"
    assert out["bad_label"][0] == "InvalidArgument"
    assert out["delete_deployed"][0] == "FailedPrecondition"
    assert out["not_emulated"][0] == "MethodNotImplemented"
    assert out["ops"][0] >= 2 and out["ops"][1] and out["get_op"] and out["wait_op"]
    assert out["deleted_op"] == "NotFound"
    assert out["cancelled_deploy"] == [True, "Cancelled"]
    assert out["updated"] == ["new_name", "d", {"my_label": "updated"}]
    assert out["traffic"] == [2, True]
    assert out["left"] == [0, 0]
    assert out["pipelines"] == {
        "run": "PIPELINE_STATE_SUCCEEDED",
        "cancel": "PIPELINE_STATE_CANCELLED",
    }
    assert out["listed_jobs"] == 2
    assert out["bad_token"] == "Unauthenticated"
    assert emu.processes() == []
    # no model server left, and the pipeline runners exit once their jobs have ended
    deadline = time.monotonic() + 15
    while (children := psutil.Process(emu.pid).children(recursive=True)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert children == []


def test_rest_error_details_become_grpc_status_details():
    """A REST error's `details` travel as `grpc-status-details-bin` (a google.rpc.Status),
    which google.api_core reads into `exc.details`."""
    import grpc
    from google.rpc import error_details_pb2

    from emulator.grpc_bridge import rest_error

    violation = {"field": "endpoint.not_a_field", "description": "Cannot find field."}
    body = {
        "error": {
            "code": 400,
            "message": 'Invalid JSON payload received. Unknown name "notAField"',
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [violation],
                }
            ],
        }
    }
    code, message, status = rest_error(400, json.dumps(body).encode())
    assert code is grpc.StatusCode.INVALID_ARGUMENT and message.startswith("Invalid JSON")
    assert status.code == 3 and status.message == message
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad) and bad.field_violations[0].field == violation["field"]
    precondition = {"error": {"code": 400, "message": "m", "status": "FAILED_PRECONDITION"}}
    code, _, status = rest_error(400, json.dumps(precondition).encode())
    assert code is grpc.StatusCode.FAILED_PRECONDITION and status is None
    # a body that is no Status (a container's own error on rawPredict): by the HTTP code
    code, message, status = rest_error(503, b"model server busy")
    assert (code, message, status) == (grpc.StatusCode.UNAVAILABLE, "model server busy", None)


@pytest.mark.parametrize(
    "host, offered, selected",
    [
        ("us-central1-aiplatform.googleapis.com", ["h2"], "h2"),  # gRPC: to the bridge
        ("us-central1-aiplatform.googleapis.com", ["h2", "http/1.1"], "http/1.1"),
        ("us-central1-aiplatform.googleapis.com", None, None),  # no ALPN: the front
        ("storage.googleapis.com", ["h2"], None),  # no other host is offered h2
    ],
)
def test_the_proxy_offers_h2_only_to_vertex_and_prefers_http11(front, host, offered, selected):
    import socket
    import ssl

    from emulator.envfile import read_env_file

    env = read_env_file(front[1])
    proxy = env["HTTPS_PROXY"].rsplit("//", 1)[1].split(":")
    with socket.create_connection((proxy[0], int(proxy[1])), timeout=10) as sock:
        sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        context = ssl.create_default_context(cafile=env["REQUESTS_CA_BUNDLE"])
        if offered:
            context.set_alpn_protocols(offered)
        with context.wrap_socket(sock, server_hostname=host) as tls:
            assert tls.selected_alpn_protocol() == selected
