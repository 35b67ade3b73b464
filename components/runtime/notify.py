"""The message when a run ends: built by the clean-up exit task after its work, and sent to
a webhook (Google Chat / Slack style JSON), a Pub/Sub topic, or both.

The outcome comes from the exit task's `dsl.PipelineTaskFinalStatus` (the exit handler's
final state, which Vertex AI Pipelines fills, and the embedded one too:
emulator/pipeline_child.py) and from the clean-up record:

- PASS: the exit handler's body SUCCEEDED and clean-up left nothing;
- FAIL with reasons: the body FAILED (the final status's error message names the failed
  tasks and, where the runner gives it, their errors) or clean-up left something;
- CANCELLED: the body was CANCELLED.

Sending never raises and never takes longer than `timeout_s` in all: every destination is
sent in a thread of its own, joined until one deadline; one that has not answered by then
is recorded as timed out and left behind (a daemon thread, gone with the task's process).
So a receiver that answers 500, refuses the connection or never answers changes neither
the clean-up nor the run's outcome.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

MESSAGE_SCHEMA_VERSION = 1
TOPIC = re.compile(r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][\w.~+%-]{2,254}$")
SECRET_VERSION = re.compile(r"^projects/[^/]+/secrets/[A-Za-z0-9_-]{1,255}/versions/[^/]+$")
PUBSUB_URL = "https://pubsub.googleapis.com/v1/{topic}:publish"
SECRET_URL = "https://secretmanager.googleapis.com/v1/{name}:access"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
MAX_TIMEOUT_S = 300.0
# A receiver's answer is read only this far (enough for an error's first lines).
MAX_ANSWER_BYTES = 4096


def outcome(final_status: dict[str, Any], cleanup: dict[str, Any]) -> tuple[str, list[str]]:
    """(PASS | FAIL | CANCELLED, reasons) from the final status and the clean-up record."""
    state = str(final_status.get("state") or "")
    reasons = []
    if state == "CANCELLED":
        verdict = "CANCELLED"
    elif state == "SUCCEEDED":
        verdict = "PASS"
    else:
        verdict = "FAIL"
        reasons.append(final_status.get("error_message") or f"the run ended {state or 'unknown'}")
    left = cleanup.get("left") or []
    if left:
        reasons.append(f"clean-up left {len(left)} endpoint(s): {', '.join(left)}")
        if verdict == "PASS":
            verdict = "FAIL"
    return verdict, reasons


def run_link(job_resource_name: str) -> str:
    """The run's page: Vertex AI's console URL (the form the aiplatform SDK logs, see
    `PipelineJob._dashboard_uri`); offline (the embedded Vertex AI sets
    DEPLOYTEST_EMULATOR_URL for its tasks) the job's resource name, whose last segment is
    the `deploytest run` run folder's name."""
    m = re.match(r"^projects/([^/]+)/locations/([^/]+)/pipelineJobs/([^/]+)$", job_resource_name)
    if not m or os.environ.get("DEPLOYTEST_EMULATOR_URL"):
        return job_resource_name
    project, location, job = m.groups()
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{location}/pipelines/runs/"
        f"{job}?project={project}"
    )


def build_message(
    final_status: dict[str, Any],
    cleanup: dict[str, Any],
    regression: str = "",
) -> dict[str, Any]:
    """The structured message (`text` for a chat webhook, the facts beside it)."""
    verdict, reasons = outcome(final_status, cleanup)
    job = str(final_status.get("pipeline_job_resource_name") or "")
    link = run_link(job)
    cost = cleanup.get("cost") or {}
    left = list(cleanup.get("left") or [])
    usd = cost.get("usd")
    cost_text = f"${usd:.4f}" if isinstance(usd, int | float) else "unknown"
    lines = [f"deploytest run {job.rsplit('/', 1)[-1] or '?'}: {verdict}"]
    lines += [f"  reason: {r}" for r in reasons]
    if regression:
        lines.append(f"  regression: {regression}")
    lines.append(f"  cost: {cost_text}")
    lines.append(f"  left behind: {len(left)} endpoint(s)")
    lines.append(f"  {link}")
    return {
        "text": "\n".join(lines),
        "deploytest": {
            "schema_version": MESSAGE_SCHEMA_VERSION,
            "outcome": verdict,
            "reasons": reasons,
            "pipeline_job": job,
            "link": link,
            "final_status": {
                "state": final_status.get("state"),
                "error_code": final_status.get("error_code"),
                "error_message": final_status.get("error_message"),
            },
            "regression": regression,
            "cost": cost,
            "left": left,
            "cleanup_seconds": cleanup.get("seconds"),
        },
    }


# -- destinations --------------------------------------------------------------------------
def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_rule(url: str) -> str:
    """The rule a webhook URL breaks, or '' (https, or http to a loopback host only)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s)://HOST/PATH URL"
    if parts.scheme == "http" and not is_loopback_url(url):
        return "must be https (plain http only to a loopback host: 127.0.0.1, ::1, localhost)"
    if parts.username or parts.password:
        return "must not carry credentials in the URL (keep a secret URL in Secret Manager)"
    return ""


def _no_proxy_opener(url: str):
    """urllib's opener; a loopback URL never goes through a proxy (the emulator's tasks
    have HTTP(S)_PROXY set, and NO_PROXY covers loopback, but be explicit)."""
    if is_loopback_url(url):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def post_webhook(url: str, message: dict[str, Any], timeout_s: float) -> str:
    """POST the message as JSON; the receiver's status line, or raise."""
    body = json.dumps(message).encode()
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    with _no_proxy_opener(url).open(request, timeout=timeout_s) as answer:
        answer.read(MAX_ANSWER_BYTES)
        return f"HTTP {answer.status}"


def _session():
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=SCOPES)
    return AuthorizedSession(credentials)


def publish(topic: str, message: dict[str, Any], timeout_s: float) -> str:
    """Publish the message to a Pub/Sub topic through the REST API (`topics.publish`:
    `{"messages": [{"data": base64, "attributes": {...}}]}`), with the environment's
    credentials (google.auth.default). The message id, or raise."""
    payload = {
        "messages": [
            {
                "data": base64.b64encode(json.dumps(message).encode()).decode(),
                "attributes": {"outcome": message["deploytest"]["outcome"]},
            }
        ]
    }
    answer = _session().post(PUBSUB_URL.format(topic=topic), json=payload, timeout=timeout_s)
    answer.raise_for_status()
    return "message " + ",".join(answer.json().get("messageIds", []))


def read_secret(name: str, timeout_s: float) -> str:
    """The payload of a Secret Manager secret version (`versions.access`, REST)."""
    answer = _session().get(SECRET_URL.format(name=name), timeout=timeout_s)
    answer.raise_for_status()
    return base64.b64decode(answer.json()["payload"]["data"]).decode().strip()


def send_all(
    message: dict[str, Any],
    *,
    webhook: str = "",
    webhook_secret: str = "",
    topic: str = "",
    timeout_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Send `message` to every destination given, in parallel, within `timeout_s` in all.
    Returns destination -> result ("ok: ...", "error: ...", "timed out after N s");
    never raises."""
    timeout_s = min(max(float(timeout_s), 0.1), MAX_TIMEOUT_S)
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    def webhook_from_secret() -> str:
        url = read_secret(webhook_secret, left())
        rule = webhook_rule(url)
        if rule:
            raise ValueError(f"the webhook URL in {webhook_secret} {rule}")
        return post_webhook(url, message, left())

    jobs: dict[str, Callable[[], str]] = {}
    if webhook:
        jobs["webhook"] = lambda: post_webhook(webhook, message, left())
    if webhook_secret:
        jobs["webhook (secret)"] = webhook_from_secret
    if topic:
        jobs[f"pubsub {topic}"] = lambda: publish(topic, message, left())
    results: dict[str, str] = {}

    def run(name: str, job: Callable[[], str]) -> None:
        try:
            results[name] = f"ok: {job()}"
        except Exception as exc:  # a failing destination is reported, never raised
            results[name] = f"error: {type(exc).__name__}: {str(exc)[:300]}"

    threads = {
        name: threading.Thread(target=run, args=(name, job), daemon=True, name=f"notify {name}")
        for name, job in jobs.items()
    }
    for thread in threads.values():
        thread.start()
    final: dict[str, str] = {}
    for name, thread in threads.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        # a thread that answers after the deadline is too late: its result is not taken
        final[name] = results.get(name, "") if not thread.is_alive() else ""
        final[name] = final[name] or f"timed out after {timeout_s:g} s"
        log(f"notify {name}: {final[name]}")
    return final


def regression_verdict(history: str, run_label: str, log: Callable[[str], None] = print) -> str:
    """The run's regression verdict against the earlier runs of its series, judged again
    from the history (the exit task may not take the record task's output: an exit task
    depends on no task). '' when there is no history or the run was not recorded (a run
    cancelled or failed before its load test ended records nothing)."""
    if not history:
        return ""
    try:
        from history.store import open_store
        from history.verdict import judge

        listing = open_store(history).list()
        mine = [e for e in listing.entries if e.record.run_id == run_label]
        if not mine:
            return ""
        others = [e for e in listing.entries if e.record.run_id != run_label]
        return judge(mine[-1], others, listing.problems).overall
    except Exception as exc:  # the message goes out without it
        log(f"notify: no regression verdict: {type(exc).__name__}: {exc}")
        return ""


def notify_run_end(
    *,
    final_status,
    cleanup: dict[str, Any],
    history: str,
    run_label: str,
    webhook: str = "",
    webhook_secret: str = "",
    topic: str = "",
    timeout_s: float = 10.0,
    log: Callable[[str], None] = lambda line: print(line, flush=True),
) -> dict[str, str]:
    """Build the message from a `dsl.PipelineTaskFinalStatus` (or its dict) and the clean-up
    record, and send it (`send_all`). Never raises: the clean-up's result stands."""
    try:
        status = final_status if isinstance(final_status, dict) else vars(final_status)
        message = build_message(status, cleanup, regression_verdict(history, run_label, log))
        log(f"notify: {message['deploytest']['outcome']} {message['deploytest']['reasons']}")
    except Exception as exc:
        log(f"notify: no message: {type(exc).__name__}: {exc}")
        return {"message": f"error: {type(exc).__name__}: {exc}"}
    return send_all(
        message, webhook=webhook, webhook_secret=webhook_secret, topic=topic,
        timeout_s=timeout_s, log=log,
    )  # fmt: skip
