"""End-to-end: `deploytest run` with a user's own Vertex-style locustfile, and a rate sweep
that finds the knee on the tiny demo model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import processes_mentioning

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VERTEX_STYLE = ROOT / "tests" / "fixtures" / "vertex_style_locustfile.py"


def run(tmp_path, cache_dir, run_id, *args, env=None):
    cmd = [
        sys.executable, "-m", "deploytest", "run", "--run-id", run_id,
        "--output-dir", str(tmp_path / "runs"), "--cache-dir", str(cache_dir), *args,
    ]  # fmt: skip
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert processes_mentioning(run_id) == []
    return done.returncode, done.stdout + done.stderr, tmp_path / "runs" / run_id


def test_a_usual_vertex_style_locustfile_passes_unmodified(tmp_path, cache_dir):
    """On the production path the load test reaches the endpoint at Vertex AI's host with a
    token from `google.auth.default()`: the emulator's environment gives the user's file
    both (a token the front did not issue would fail every request with 401)."""
    fast = ["--duration", "4s", "--users", "2", "--spawn-rate", "2"]
    code, out, run_dir = run(
        tmp_path, cache_dir, "byo-locustfile", "--locustfile", str(VERTEX_STYLE), *fast
    )
    assert code == 0, out
    assert "verdict      PASS" in out
    assert "not measured ttft" in out and "locustfile of your own" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["requests"] > 0 and metrics["failures"] == 0
    assert metrics["ttft_p50_ms"] is None and "goodput" in metrics["llm_unavailable"]
    log = (run_dir / "pipeline.log").read_text()
    assert "https://us-central1-aiplatform.googleapis.com" in log  # Vertex AI's own host


def test_a_sweep_reports_the_knee_on_the_tiny_model(tmp_path, cache_dir):
    code, out, run_dir = run(
        tmp_path, cache_dir, "sweep-knee", "--load-shape", "sweep",
        "--sweep-rates", "2,8,4000", "--stage-s", "3", "--max-concurrency", "16",
    )  # fmt: skip
    # 4000 requests/s is far past what one CPU model server and 16 users can carry.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["load_shape"] == "sweep" and metrics["knee_rps"] == 8, out
    assert "knee         8 requests/s" in out
    assert code == 0, out
    assert (run_dir / "stats" / "sweep.svg").is_file()
