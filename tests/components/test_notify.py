"""The run-end message: its builder, and its sender against real loopback receivers (200,
500, one that never answers, a refused connection), always bounded by its timeout."""

from __future__ import annotations

import socket
import time

import pytest

from components.runtime.notify import build_message, outcome, send_all, webhook_rule
from tests.notify_receiver import receiver

JOB = "projects/p-demo/locations/us-central1/pipelineJobs/run-1"
CLEAN = {"left": [], "cost": {"status": "known", "usd": 0.0123}, "seconds": 1.5}


def status(state: str, message: str | None = None) -> dict:
    return {
        "state": state,
        "pipeline_job_resource_name": JOB,
        "pipeline_task_name": "exit-handler-1",
        "error_code": None if state == "SUCCEEDED" else 9,
        "error_message": message,
    }


def test_outcome_from_the_final_status_and_the_clean_up():
    assert outcome(status("SUCCEEDED"), CLEAN) == ("PASS", [])
    assert outcome(status("FAILED", "slo-gate: RuntimeError: p95 too slow"), CLEAN) == (
        "FAIL",
        ["slo-gate: RuntimeError: p95 too slow"],
    )
    assert outcome(status("CANCELLED", "cancelled"), CLEAN)[0] == "CANCELLED"
    verdict, reasons = outcome(status("SUCCEEDED"), {**CLEAN, "left": ["projects/p/e/1"]})
    assert verdict == "FAIL" and "clean-up left 1 endpoint(s)" in reasons[0]


def test_message_has_outcome_link_regression_cost_and_what_was_left(monkeypatch):
    monkeypatch.delenv("DEPLOYTEST_EMULATOR_URL", raising=False)
    m = build_message(status("FAILED", "slo-gate failed: p95_ms"), CLEAN, "REGRESSION")
    facts = m["deploytest"]
    assert facts["outcome"] == "FAIL" and facts["reasons"] == ["slo-gate failed: p95_ms"]
    # the console URL the aiplatform SDK logs for a job
    assert facts["link"] == (
        "https://console.cloud.google.com/vertex-ai/locations/us-central1/pipelines/runs/"
        "run-1?project=p-demo"
    )
    assert facts["regression"] == "REGRESSION" and facts["cost"]["usd"] == 0.0123
    assert facts["left"] == []
    for part in ("FAIL", "slo-gate failed", "REGRESSION", "$0.0123", "0 endpoint(s)", "run-1"):
        assert part in m["text"]
    # offline the link is the job's resource name (its id is the run folder's name)
    monkeypatch.setenv("DEPLOYTEST_EMULATOR_URL", "http://127.0.0.1:1")
    assert build_message(status("SUCCEEDED"), CLEAN)["deploytest"]["link"] == JOB


@pytest.mark.parametrize(
    "url, rule",
    [
        ("https://chat.googleapis.com/v1/spaces/X/messages?key=k", ""),
        ("http://127.0.0.1:8080/hook", ""),
        ("http://[::1]:8080/hook", ""),
        ("http://example.com/hook", "must be https"),
        ("ftp://127.0.0.1/x", "http(s)://HOST/PATH"),
        ("https://user:pw@example.com/x", "credentials"),
    ],
)
def test_webhook_rules(url, rule):
    assert (rule in webhook_rule(url)) if rule else webhook_rule(url) == ""


def test_a_good_receiver_gets_one_message():
    message = build_message(status("SUCCEEDED"), CLEAN)
    with receiver("ok") as r:
        results = send_all(message, webhook=r.url, timeout_s=5, log=lambda _: None)
    assert results == {"webhook": "ok: HTTP 200"}
    assert r.bodies == [message]


def test_a_receiver_answering_500_is_reported_not_raised():
    with receiver("500") as r:
        results = send_all(build_message(status("SUCCEEDED"), CLEAN), webhook=r.url, log=print)
    assert results["webhook"].startswith("error: HTTPError: HTTP Error 500")
    assert len(r.bodies) == 1


def test_a_receiver_that_never_answers_costs_at_most_the_timeout():
    with receiver("hang") as r:
        start = time.monotonic()
        results = send_all(build_message(status("SUCCEEDED"), CLEAN), webhook=r.url, timeout_s=1)
        took = time.monotonic() - start
    assert results["webhook"] in ("timed out after 1 s",) or "timed out" in results["webhook"]
    assert 0.9 <= took < 1.5, took
    assert len(r.bodies) == 1


def test_a_refused_connection_is_reported_quickly():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    results = send_all(
        build_message(status("SUCCEEDED"), CLEAN), webhook=f"http://127.0.0.1:{port}/x",
        timeout_s=5,
    )  # fmt: skip
    assert results["webhook"].startswith("error: URLError") and "refused" in results["webhook"]
    assert time.monotonic() - start < 2
