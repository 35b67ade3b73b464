"""Follow a Vertex AI `PipelineJob` until it ends: what `deploytest submit --wait` does, so
a Cloud Build step goes red when the gate or the clean-up fails."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable

SUCCEEDED = "PIPELINE_STATE_SUCCEEDED"
FAILED_STATES = frozenset({"PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"})
TERMINAL_STATES = FAILED_STATES | {SUCCEEDED}


class WaitTimeout(TimeoutError):
    """The job had not ended when the wait's bound ran out (it keeps running)."""


def wait_for_job(
    get_state: Callable[[], tuple[str, str]],
    *,
    poll_s: float,
    timeout_s: float,
    progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll `get_state() -> (state name, error message)` until a terminal state; return it.

    Prints each state change (and a heartbeat every ten polls). Transient errors of
    `get_state` propagate: the caller decides (the job runs on regardless).
    """
    start = clock()
    last, polls = "", 0
    while True:
        state, error = get_state()
        polls += 1
        elapsed = clock() - start
        if state != last or polls % 10 == 0:
            suffix = f": {error}" if error and state in FAILED_STATES else ""
            progress(f"[{elapsed:7.0f}s] {state.removeprefix('PIPELINE_STATE_')}{suffix}")
            last = state
        if state in TERMINAL_STATES:
            return state
        if elapsed + poll_s > timeout_s:
            raise WaitTimeout(f"still {state} after {elapsed:.0f}s")
        sleep(poll_s)


def wait_for_model(
    exists: Callable[[], bool],
    *,
    timeout_s: float,
    poll_s: float = 15.0,
    progress: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Poll `exists()` until True or `timeout_s` has passed; return the last answer.

    A model-upload build may start from the audit entry written when the upload was
    accepted, before the model is readable.
    """
    start = clock()
    while not exists():
        if clock() - start + poll_s > timeout_s:
            return False
        progress(f"[{clock() - start:7.0f}s] model not found yet; waiting")
        sleep(poll_s)
    return True


def model_exists_getter(name: str, location: str, api_endpoint: str = "") -> Callable[[], bool]:
    """`exists` for `wait_for_model`: GET the model (NAME or NAME@VERSION)."""
    from google.api_core import exceptions

    from components.vertex_clients import model_client

    client = model_client(location, api_endpoint)

    def exists() -> bool:
        try:
            client.get_model(name=name)
        except exceptions.NotFound:
            return False
        return True

    return exists


def deploy_overrun(tasks: Iterable[tuple[str, str, dt.datetime | None]], timeout_s: float) -> float:
    """Seconds the deploy task has been RUNNING, if more than `timeout_s`; else 0.

    `tasks`: (task name, state name, start time) from the job's `jobDetail.taskDetails`.
    The one rule behind `deploytest run`'s and `deploytest submit --wait`'s deploy timeout:
    GCPC's deploy launcher waits for its operation without a bound.
    """
    from pipelines.pipeline import DEPLOY_TASK

    for task, state, started in tasks:
        if task == DEPLOY_TASK and state == "RUNNING" and started:
            ran = (dt.datetime.now(dt.UTC) - started).total_seconds()
            if ran > timeout_s:
                return ran
    return 0.0


def deploy_cancel_message(ran: float, timeout_s: float) -> str:
    from pipelines.pipeline import DEPLOY_TASK

    return (
        f"{DEPLOY_TASK} still running after {ran:.0f}s (deploy timeout {timeout_s:g}s): "
        "cancelling the job; its exit handler cleans up"
    )


def job_state_getter(
    name: str,
    location: str,
    api_endpoint: str = "",
    deploy_timeout_s: float | None = None,
    progress: Callable[[str], None] = print,
) -> Callable[[], tuple]:
    """`get_state` for `wait_for_job`: GET the job with the Vertex AI SDK's client.

    With `deploy_timeout_s`, the job is cancelled (once) when its deploy task has run longer:
    GCPC's deploy launcher waits for its operation without a bound, so a deploy that never
    becomes ready (a GPU stockout) would hold the run; the cancel reaches the launcher as
    SIGTERM, it cancels the operation, and the exit handler cleans up.
    """
    from google.api_core import retry
    from google.cloud import aiplatform_v1

    from components.vertex_clients import client_kwargs

    client = aiplatform_v1.PipelineServiceClient(**client_kwargs(location, api_endpoint))
    # A long wait outlives a blip: retry transient errors (429, 500, 503) for a while.
    transient = retry.Retry(predicate=retry.if_transient_error, timeout=300)
    cancelled = False

    def get_state() -> tuple[str, str]:
        nonlocal cancelled
        job = client.get_pipeline_job(name=name, retry=transient)
        tasks = ((t.task_name, t.state.name, t.start_time) for t in job.job_detail.task_details)
        if deploy_timeout_s and not cancelled and (ran := deploy_overrun(tasks, deploy_timeout_s)):
            progress(deploy_cancel_message(ran, deploy_timeout_s))
            client.cancel_pipeline_job(name=name, retry=transient)
            cancelled = True
        return job.state.name, job.error.message

    return get_state
