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


def test_a_sharegpt_workload_drives_the_load_and_its_lengths_are_recorded(tmp_path, demo_model_dir):
    from loadtests.workload import build_requests, load_workload

    out = tmp_path / "out"
    with StreamServer("ok", ttft_s=0.01, itl_s=0.002, tokens=4) as server:
        done = loadtest(
            "--url", server.url, "--predict-path", "/predict", "--stream", "-o", str(out),
            "--duration", "2s", "--users", "2", "--workload", "sharegpt-mini",
            "--tokenizer", str(demo_model_dir),
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    built = build_requests(load_workload("sharegpt-mini"), str(demo_model_dir))
    lengths = {r.input_tokens for r in built.requests}
    achieved = metrics["achieved"]["input_tokens"]
    assert min(lengths) <= achieved["p50"] <= achieved["max"] <= max(lengths)
    assert {achieved["p50"], achieved["max"]} <= lengths  # the prompts' own lengths
    assert metrics["workload"]["dataset"]["format"] == "sharegpt"
    assert metrics["workload_requests"] == len(built.requests)
    # the scripted server answers 4 tokens whatever is asked: the run says so
    assert metrics["achieved"]["output_tokens"]["max"] == 4
    assert "below" in metrics["workload_warning"] and "WARNING" in done.stdout
    assert "tokens/s" in done.stdout and metrics["input_tokens_per_s"] > 0


def test_a_workload_without_a_tokenizer_or_with_a_bad_dataset_exits_2(tmp_path, demo_model_dir):
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"prompt": "a"}\n{"prompt": 3}\n')
    spec = tmp_path / "w.json"
    spec.write_text(json.dumps({"dataset": {"path": str(dataset), "format": "jsonl"}}))
    base = ("--url", "http://127.0.0.1:9", "--predict-path", "/p", "-o", str(tmp_path / "o"))
    done = loadtest(*base, "--input-tokens", "8")
    assert done.returncode == 2 and "give --tokenizer" in done.stderr
    done = loadtest(*base, "--workload", str(spec), "--tokenizer", str(demo_model_dir))
    assert done.returncode == 2 and 'd.jsonl line 2: needs a "prompt" string' in done.stderr
    assert not (tmp_path / "o").exists()
