"""End-to-end: `deploytest run`, the pipeline YAML that goes to Vertex AI submitted like
`deploytest submit` to the embedded Vertex AI Pipelines, with every fault and cancellation.

Each run asserts the exit code, the verdict and the tasks from summary.json (what a person
reads is the same facts), and that no endpoint and no model-server process is left. Runs
are short (4 s of load) so the module stays around three minutes.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from components.runtime.cleanup import list_run_endpoints
from components.vertex_clients import endpoint_client
from emulator.pubsub import read_messages
from tests.notify_receiver import receiver
from tests.processes import processes_mentioning

pytestmark = pytest.mark.slow

PROJECT, LOCATION = "deploytest-local", "us-central1"
FAST = ["--duration", "4s", "--users", "4", "--spawn-rate", "4"]


def serving_processes(marker: str) -> list[psutil.Process]:
    """Model servers (`python -m serving`) whose command line names `marker`."""
    return [p for p in processes_mentioning(marker) if "-m serving" in " ".join(p.cmdline())]


def start_run(tmp_path, cache_dir, *args, run_id) -> subprocess.Popen:
    """`deploytest run` with the module's short load, its output on a text pipe."""
    cmd = [
        sys.executable, "-m", "deploytest", "run", "--run-id", run_id,
        "--output-dir", str(tmp_path / "runs"), "--cache-dir", str(cache_dir), *FAST, *args,
    ]  # fmt: skip
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def run(tmp_path, cache_dir, *args, run_id, stop_at=None, signum=signal.SIGINT):
    """Run `deploytest run`; with `stop_at`, send `signum` once that task starts."""
    proc = start_run(tmp_path, cache_dir, *args, run_id=run_id)
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if stop_at and f"▶ {stop_at}" in line:
            time.sleep(1.5)
            proc.send_signal(signum)
            stop_at = None
        assert time.monotonic() < deadline, "".join(lines)
    proc.wait(timeout=60)
    return proc.returncode, "".join(lines), tmp_path / "runs" / run_id


def kill_9_during(tmp_path, cache_dir, task: str, *args, run_id: str, before_kill=None) -> float:
    """Start `deploytest run`, SIGKILL it 2 s after `task` started (calling `before_kill()`
    just before); returns when it died (time.monotonic()). Its output keeps being drained
    so nothing blocks on the pipe."""
    import threading

    proc = start_run(tmp_path, cache_dir, *args, run_id=run_id)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if f"▶ {task}" in line:
            time.sleep(2)
            break
    else:
        pytest.fail("".join(lines))
    if before_kill is not None:
        before_kill()
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait(10)
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # drain, never block
    return killed


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def assert_nothing_left(run_id, run_dir, output, emulator=None):
    assert summary(run_dir)["left"] == {"endpoints": [], "processes": []}, output
    if emulator is not None:
        client = endpoint_client(LOCATION, emulator.url)
        assert list_run_endpoints(client, PROJECT, LOCATION, run_id) == []
        assert emulator.processes() == []
    left = processes_mentioning(run_id)
    assert left == [], f"left running: {[' '.join(p.cmdline()) for p in left]}"


def task_log_times(run_dir: Path) -> dict[str, datetime]:
    """When each task started and ended, from kfp.local's log."""
    times = {}
    for line in (run_dir / "pipeline.log").read_text().splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        m = re.match(r"(\d\d:\d\d:\d\d\.\d+) - \w+ - (Executing task|Task) '([^']+)'", line)
        if m:
            key = ("start" if m.group(2) == "Executing task" else "end", m.group(3))
            times[key] = datetime.strptime(m.group(1), "%H:%M:%S.%f")
    return times


def assert_one_message(hook, outcome: str, s: dict, run_id: str) -> dict:
    """The receiver got one run-end message with the run's outcome, cost and job."""
    assert len(hook.bodies) == 1, hook.bodies
    (message,) = hook.bodies
    facts = message["deploytest"]
    assert facts["outcome"] == outcome and f": {outcome}" in message["text"], message
    assert facts["cost"]["usd"] == s["cost"]["usd"] and "cost: $" in message["text"]
    assert facts["left"] == [] and facts["pipeline_job"].endswith(f"/pipelineJobs/{run_id}")
    return facts


def test_success_writes_report_and_cleans_up(tmp_path, cache_dir):
    # its own emulator, started and stopped by the run; the run-end message to a webhook
    # and to a Pub/Sub topic (the emulator's)
    topic = "projects/deploytest-local/topics/runs"
    with receiver("ok") as hook:
        code, out, run_dir = run(
            tmp_path, cache_dir, "--notify", hook.url, "--notify-topic", topic,
            "--input-tokens", "64", "--output-tokens", "16", run_id="e2e-success",
        )  # fmt: skip
    assert code == 0, out
    facts = assert_one_message(hook, "PASS", summary(run_dir), "e2e-success")
    assert facts["reasons"] == [] and facts["regression"] == "NOT ENOUGH HISTORY"
    (published,) = read_messages(run_dir / "emulator")
    assert published["topic"] == topic and json.loads(published["data"]) == hook.bodies[0]
    s = summary(run_dir)
    assert s["outcome"]["verdict"] == "PASS" and s["outcome"]["reasons"] == [], out
    assert s["pipeline_job"].endswith("/pipelineJobs/e2e-success")
    assert set(s["tasks"].values()) == {"SUCCESS"}, s["tasks"]
    # GCPC's own create and deploy tasks ran, then ours
    assert {"endpoint-create", "model-deploy", "locust-load-test", "cleanup-endpoints"} <= set(
        s["tasks"]
    )
    assert all(check["passed"] for check in s["outcome"]["checks"])
    # the label is the job id, from the job's resource name (run_id is empty on this path)
    assert json.loads((run_dir / "arguments.json").read_text())["run_id"] == ""
    assert (run_dir / "report.html").read_text().lower().count("locust") > 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == s["metrics"]
    assert metrics["schema_version"] == 6 and metrics["requests"] > 0
    # the workload: every prompt 64 tokens by the model's tokenizer, every answer 16 (our
    # server's ignore_eos); the mean equal to the max means every request
    exact = {"p50": 64, "p90": 64, "max": 64, "mean": 64.0}
    assert metrics["achieved"]["input_tokens"] == exact
    assert metrics["achieved"]["output_tokens"] == {k: v / 4 for k, v in exact.items()}
    assert metrics["workload"]["input_tokens"] == 64 and metrics["workload_warning"] == ""
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["series"]["workload"] == metrics["workload_id"] != ""
    assert metrics["total_tokens_per_s"] == pytest.approx(
        metrics["input_tokens_per_s"] + metrics["output_tokens_per_s"]
    )
    assert "achieved     input tokens p50 64 p90 64 max 64; output tokens p50 16" in out
    # the demo model's container picks our own API, before anything is deployed
    assert s["serving_api"] == {
        "api": "deploytest",
        "why": "auto: our model server (python -m serving)",
    }
    assert metrics["api"] == "deploytest" and metrics["output_tokens_source"] == "answer"
    assert "serving-api" in s["tasks"]
    # streamed by default: TTFT, TPOT and goodput are measured
    assert metrics["ttft_p50_ms"] > 0 and metrics["tpot_p50_ms"] is not None
    assert metrics["goodput_rps"] > 0
    assert metrics["failure_ratio"] == 0
    # the correctness phase, before the load: the endpoint answers as its artifact does
    assert metrics["parity_ratio"] == 1.0 and metrics["expect_pass_ratio"] is None
    assert metrics["correctness"]["parity_prompts"] == 8
    assert len(metrics["correctness"]["answers"]) == 8
    assert "parity       100%: 8 of 8 prompts match" in out
    assert "parity_ratio" in [c["name"] for c in s["outcome"]["checks"]]
    record = json.loads((run_dir / "cleanup.json").read_text())
    assert record == s["cleanup"]
    assert record["ok"] and record["left"] == [] and record["run_label"] == "e2e-success"
    assert [len(e["undeployed_models"]) for e in record["endpoints"]] == [1]
    assert all(e["deleted"] for e in record["endpoints"])
    # the run's cost, from the operations' timestamps
    cost = s["cost"]
    assert cost["status"] == "known" and cost["usd"] > 0 and cost["billed_replica_seconds"] > 0
    assert cost["usd_per_1k_output_tokens"] > 0 and record["cost"]["usd"] == cost["usd"]
    assert (run_dir / "pipeline.yaml").is_file()
    assert_nothing_left("e2e-success", run_dir, out)
    # the model server's command line names the cached demo model, not the run
    assert serving_processes(str(cache_dir)) == []
    # what a person reads: the task states as progress, and the verdict
    assert "✔ model-deploy: SUCCESS" in out and "verdict      PASS" in out


@pytest.mark.parametrize(
    "fault, failed_task, failed_check",
    [
        ("deploy-fail", "model-deploy", None),
        ("deploy-hang", "model-deploy", None),
        ("predict-errors", "slo-gate", "failure_ratio"),
        ("slo-breach", "slo-gate", "p95_ms"),
        # other weights behind the endpoint than the artifact holds: the correctness gate
        ("wrong-answers", "slo-gate", "parity_ratio"),
    ],
)
def test_faults_fail_the_run_and_clean_up(
    tmp_path, cache_dir, emulator, fault, failed_task, failed_check
):
    run_id = f"e2e-{fault}"
    # the slo-breach run posts its run-end message to a receiver that answers 500
    notify = fault == "slo-breach"
    with receiver("500") as hook:
        args = ("--notify", hook.url) if notify else ()
        if fault != "wrong-answers":  # the correctness phase is that fault's; spare the others
            args += ("--reference-model", "none")
        if fault == "slo-breach":  # every predict is slowed to 1.5 x the p95 SLO + 100 ms
            args += ("--slo-p95-ms", "300")
        code, out, run_dir = run(
            tmp_path, cache_dir, "--api-endpoint", emulator.url, "--fault", fault, *args,
            run_id=run_id,
        )  # fmt: skip
    assert code == 1, out
    s = summary(run_dir)
    if notify:  # the 500 changed nothing; the message says why the run failed
        facts = assert_one_message(hook, "FAIL", s, run_id)
        assert "[slo-gate]" in facts["reasons"][0] and "p95_ms" in facts["reasons"][0], facts
        assert (
            "notify webhook: error: HTTPError: HTTP Error 500"
            in (run_dir / "pipeline.log").read_text()
        )
    assert s["outcome"]["verdict"] == "FAIL"
    missed = f" (missed: {failed_check}" if failed_check else ""
    assert [r[: len(f"{failed_task} failed{missed}")] for r in s["outcome"]["reasons"]] == [
        f"{failed_task} failed{missed}"
    ], s["outcome"]
    # a hung deploy is cancelled by the run at its deploy timeout (GCPC's has none)
    ended = "CANCELLED" if fault == "deploy-hang" else "FAILURE"
    assert s["tasks"][failed_task] == ended
    assert s["tasks"]["cleanup-endpoints"] == "SUCCESS"
    if failed_check is None:  # the load test never ran
        assert "locust-load-test" not in s["tasks"] and "metrics" not in s
    else:
        failed = [c["name"] for c in s["outcome"]["checks"] if not c["passed"]]
        assert failed == [failed_check], s["outcome"]["checks"]
    record = json.loads((run_dir / "cleanup.json").read_text())
    assert record["ok"] and len(record["endpoints"]) == 1 and record["endpoints"][0]["deleted"]
    if fault.startswith("deploy-"):  # never deployed: the endpoint's lifetime only, unbilled
        cost = s["cost"]
        assert cost["usd"] == 0 and cost["billed_replica_seconds"] == 0
        assert cost["endpoint_seconds"] > 0
    # the exit task starts within 5 s of the failing task's end
    times = task_log_times(run_dir)
    gap = (times[("start", "cleanup-endpoints")] - times[("end", failed_task)]).total_seconds()
    assert 0 <= gap < 5, gap
    assert_nothing_left(run_id, run_dir, out, emulator)
    # the run put the emulator back as it found it
    assert emulator.get_faults()["deploy"] is None
    # a failing gate still records the run in the history; a failed deploy has nothing to record
    recorded = [p.name for p in (tmp_path / "runs" / "history").glob("*")]
    assert len(recorded) == (1 if failed_task == "slo-gate" else 0), recorded


def test_a_wrong_serving_api_fails_every_request_and_the_exit_handler_cleans_up(
    tmp_path, cache_dir, emulator
):
    # The demo model is our server; --api openai-completions sends it vLLM's body, which it
    # refuses: every request fails with the server's reason, the gate fails, clean-up runs.
    run_id = "e2e-wrong-api"
    code, out, run_dir = run(
        tmp_path, cache_dir, "--api-endpoint", emulator.url, "--api", "openai-completions",
        run_id=run_id,
    )  # fmt: skip
    assert code == 1, out
    s = summary(run_dir)
    assert s["serving_api"] == {"api": "openai-completions", "why": "given"}
    assert s["outcome"]["reasons"][0].startswith("slo-gate failed (missed: failure_ratio 1 ")
    m = s["metrics"]
    assert m["requests"] > 0 and m["failures"] == m["requests"] and m["api"] == "openai-completions"
    failures = (run_dir / "stats" / "locust_failures.csv").read_text().splitlines()
    assert len(failures) == 2 and "HTTP 400" in failures[1], failures  # one row, with why
    assert s["tasks"]["cleanup-endpoints"] == "SUCCESS"
    assert_nothing_left(run_id, run_dir, out, emulator)


@pytest.mark.parametrize(
    "stop_at, signum, code",
    [
        ("locust-load-test", signal.SIGINT, 130),
        ("model-deploy", signal.SIGTERM, 143),
    ],
)
def test_cancellation_cancels_the_job_and_its_exit_handler_cleans_up(
    tmp_path, cache_dir, emulator, stop_at, signum, code
):
    run_id = f"e2e-cancel-{stop_at}"
    # the SIGINT run posts its run-end message to a receiver that never answers
    notify = signum == signal.SIGINT
    with receiver("hang") as hook:
        args = ("--notify", hook.url, "--notify-timeout-s", "2") if notify else ()
        rc, out, run_dir = run(
            tmp_path, cache_dir, "--api-endpoint", emulator.url, "--duration", "60s", *args,
            run_id=run_id, stop_at=stop_at, signum=signum,
        )  # fmt: skip
    assert rc == code, out
    s = summary(run_dir)
    if notify:  # sent after the clean-up; the receiver's silence cost at most its timeout
        assert_one_message(hook, "CANCELLED", s, run_id)
        log = (run_dir / "pipeline.log").read_text()
        assert "notify webhook: timed out after 2 s" in log
        times = task_log_times(run_dir)
        task_s = times[("end", "cleanup-endpoints")] - times[("start", "cleanup-endpoints")]
        extra = task_s.total_seconds() - s["cleanup"]["seconds"]
        print(f"clean-up task {task_s.total_seconds():.1f} s, clean-up {s['cleanup']['seconds']}s")
        assert extra < 2 + 5, extra  # the timeout, plus the task's own start (imports)
    assert s["outcome"]["verdict"] == "CANCELLED"
    assert s["outcome"]["reasons"] == [f"{signal.Signals(signum).name} arrived"]
    # the job was cancelled and its exit handler did the clean-up, not our fallback
    assert s["tasks"][stop_at] == "CANCELLED" and s["tasks"]["cleanup-endpoints"] == "SUCCESS"
    assert "fallback_cleanup" not in s, s
    record = json.loads((run_dir / "cleanup.json").read_text())
    assert record == s["cleanup"]
    assert record["ok"] and record["endpoints"] and all(e["deleted"] for e in record["endpoints"])
    assert_nothing_left(run_id, run_dir, out, emulator)
    # cancelled before the load test ended: nothing goes into the history
    assert not list((tmp_path / "runs" / "history").glob("*"))


@pytest.mark.parametrize(
    "args, message",
    [
        (("--duration", "20 seconds"), "duration"),
        (("--cost-label", "Team=ML"), "invalid GCP labels"),
        (("--price", "NVIDIA_TESLA_T4=cheap"), "invalid prices"),
        (("--price", "NVIDIA_TESLA_T4"), "invalid price"),
        (("--min-replicas", "2", "--max-replicas", "1"), "max replicas"),
        (("--model", "models/7"), "invalid model"),
    ],
)
def test_bad_input_is_refused_before_anything_is_created(tmp_path, cache_dir, args, message):
    code, out, run_dir = run(tmp_path, cache_dir, *args, run_id="e2e-bad")
    assert code == 2
    assert message in out
    assert not run_dir.parent.exists()


def test_a_bad_expectations_line_is_refused_before_anything_is_created(tmp_path, cache_dir):
    expect = tmp_path / "expect.jsonl"
    expect.write_text('{"prompt": "Hi", "contains": "a"}\n{"prompt": "Hi", "regex": "("}\n')
    code, out, run_dir = run(tmp_path, cache_dir, "--expect", str(expect), run_id="e2e-bad")
    assert code == 2, out
    assert f"{expect} line 2: bad regex" in out, out
    assert not run_dir.parent.exists()


def test_an_unreachable_emulator_is_refused_before_anything_is_created(tmp_path, cache_dir):
    code, out, run_dir = run(
        tmp_path, cache_dir, "--api-endpoint", "http://127.0.0.1:9", "--fault", "deploy-fail",
        run_id="e2e-unreachable",
    )  # fmt: skip
    assert code == 2
    assert "no emulator answers at http://127.0.0.1:9" in out
    assert not run_dir.parent.exists()
