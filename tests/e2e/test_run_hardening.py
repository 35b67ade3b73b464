"""`deploytest run` against careless input, kill -9 and concurrent runs (issue: hardening)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from components.vertex_clients import endpoint_client
from tests.e2e.test_run import LOCATION, PROJECT, kill_9_during, run, serving_processes
from tests.processes import processes_mentioning

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "args, message",
    [
        (("--output-dir", "/dev/null"), "is not a directory"),
        (("--output-dir", "{tmp}/a/b/c"), "does not exist"),
        (("--project", "../x"), "invalid project id"),
        (("--max-new-tokens", "0"), "max new tokens"),
        (("--deploy-timeout-s", "-1"), "deploy timeout"),
        (("--cleanup-timeout-s", "0"), "clean-up timeout"),
        (("--duration", "100000h"), "longer than the maximum"),
        (("--min-rps", "inf"), "minimum requests/s"),
        (("--slo-p95-ms", "nan"), "p95 latency SLO"),
        (("--spawn-rate", "1e9"), "spawn rate"),
        (("--users", "1000000"), "users"),
        (("--model", "projects/p/locations/us-central1/models/1"), "needs --api-endpoint"),
    ],
)
def test_bad_arguments_exit_2_before_anything_is_created(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    cmd = [sys.executable, "-m", "deploytest", "run", "--cache-dir", str(tmp_path / "cache")]
    if "--output-dir" not in args:
        cmd += ["--output-dir", str(tmp_path / "runs")]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # one clear line
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created


def test_a_model_that_does_not_exist_is_refused_before_anything_is_created(
    tmp_path, cache_dir, emulator
):
    missing = f"projects/{PROJECT}/locations/{LOCATION}/models/123"
    code, out, run_dir = run(
        tmp_path, cache_dir, "--api-endpoint", emulator.url, "--model", missing, run_id="nomodel"
    )
    assert code == 2, out
    assert f"--model {missing} does not exist" in out
    assert not run_dir.parent.exists()
    client = endpoint_client(LOCATION, emulator.url)
    assert list(client.list_endpoints(parent=f"projects/{PROJECT}/locations/{LOCATION}")) == []


def test_a_run_folder_that_exists_is_refused(tmp_path, cache_dir):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "keep.txt").write_text("mine")
    code, out, _ = run(tmp_path, cache_dir, run_id="taken")
    assert code == 2, out
    assert "exists already" in out
    assert [p.name for p in (tmp_path / "runs" / "taken").iterdir()] == ["keep.txt"]


def test_kill_9_during_the_load_test_leaves_nothing_within_10_s(tmp_path, cache_dir):
    run_id = "kill9"
    run_dir = tmp_path / "runs" / run_id
    seen = []

    def serving():  # checked while the load test runs, just before the kill
        seen.extend(serving_processes(str(cache_dir)))

    killed = kill_9_during(
        tmp_path, cache_dir, "locust-load-test", "--duration", "60s", run_id=run_id,
        before_kill=serving,
    )  # fmt: skip
    assert seen, "the model server should be running"
    while time.monotonic() - killed < 10:
        left = processes_mentioning(str(run_dir)) + serving_processes(str(cache_dir))
        if not left:
            break
        time.sleep(0.2)
    took = time.monotonic() - killed
    left = processes_mentioning(str(run_dir)) + serving_processes(str(cache_dir))
    assert left == [], [" ".join(p.cmdline()) for p in left]
    print(f"nothing left {took:.1f} s after kill -9")
    # The emulator undeployed before it exited: no deployed model stays recorded.
    with sqlite3.connect(run_dir / "emulator" / "state.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM deployed_models").fetchone()[0] == 0


def test_two_first_runs_sharing_an_empty_cache_both_pass(tmp_path, monkeypatch):
    cache = tmp_path / "shared-cache"
    results = {}
    temp = tmp_path / "tmp"  # what the runs (and everything under them) see as /tmp
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))

    def one(name):
        results[name] = run(tmp_path, cache, "--duration", "3s", run_id=name)

    threads = [threading.Thread(target=one, args=(n,)) for n in ("first", "second")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for code, out, _ in results.values():
        assert code == 0, out
        assert "Traceback" not in out
    built = [out for _, out, _ in results.values() if "building the tiny demo model" in out]
    assert len(built) == 1  # one built it, the other waited for it
    assert sorted(p.name for p in (cache / "models").iterdir() if not p.name.startswith(".")) == [
        "tiny-seed0"
    ]
    # No temporary folder outlives the runs. torch keeps one compile cache per user there
    # (`torchinductor_<user>`), made once and reused by every torch program: not a run's.
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
