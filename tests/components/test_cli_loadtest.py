"""`deploytest loadtest`: the load-test component against a running endpoint, no pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.components.conftest import REPO
from tests.components.stream_server import StreamServer
from tests.fixtures.google_offline import TOKEN, OfflineGoogleAuth

pytestmark = pytest.mark.usefixtures("no_process_left_behind")


def loadtest(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deploytest", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def test_streaming_load_test_of_a_url_writes_report_and_metrics(tmp_path):
    out = tmp_path / "out"
    with StreamServer("ok", ttft_s=0.05, itl_s=0.01, tokens=4) as server:
        done = loadtest(
            "--url", server.url, "--predict-path", "/predict", "--stream", "-o", str(out),
            "--duration", "3s", "--users", "2", "--slo-ttft-ms", "500", "--slo-tpot-ms", "100",
            "--slo", "goodput_ratio>=0.9", "--slo", "ttft_p50_ms<=1",
        )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # ttft_p50_ms <= 1 ms is missed
    assert "TTFT" in done.stdout and "goodput" in done.stdout and "SLO verdict: FAIL" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ttft_p50_ms"] == pytest.approx(50, rel=0.2)
    assert metrics["goodput_ratio"] == 1.0
    assert (out / "report.html").is_file()


def test_a_vertex_endpoint_with_a_users_own_locustfile(tmp_path):
    """--endpoint through an API host: the Vertex-style file gets host and :predict path."""
    locustfile = REPO / "tests" / "fixtures" / "vertex_style_locustfile.py"
    with OfflineGoogleAuth(tmp_path) as google, StreamServer("ok", tokens=2) as server:
        done = loadtest(
            "--endpoint", "projects/p/locations/us-central1/endpoints/42",
            "--api-endpoint", server.url, "--locustfile", str(locustfile),
            "-o", str(tmp_path / "out"), "--duration", "2s", "--users", "1",
            env=google.env,
        )  # fmt: skip
        assert server.paths == {"/v1/projects/p/locations/us-central1/endpoints/42:predict"}
        assert server.auth_headers == {f"Bearer {TOKEN}"}
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not measured ttft" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rate", "0", "--load-shape", "rate"], "--rate must be > 0"),
        (["--rate", "-1"], "--rate must be > 0"),
        (["--load-shape", "sweep"], "needs an SLO"),
        (["--slo", "p95<1"], "bad SLO check"),
        (["--duration", "0s"], "longer than 0"),
    ],
)
def test_bad_input_exits_2_and_creates_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    done = loadtest("--url", "http://127.0.0.1:9", "--predict-path", "/p", "-o", str(out), *args)
    assert done.returncode == 2 and message in done.stderr
    assert not out.exists()
