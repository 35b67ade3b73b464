"""A pipeline job's states as the SDK reads them, for tests that submit jobs: the job's
state and each task's, and a bounded wait for a condition on them."""

from __future__ import annotations

import time

TERMINAL = {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED", "PIPELINE_STATE_CANCELLED"}


GROUPS = ("system.Run", "system.DagExecution")  # rows of the DAG's own groups


def job_states(aiplatform, name) -> tuple[str, dict]:
    """(the job's state, {task name: task state}) through `aiplatform.PipelineJob.get`: the
    tasks that run, not the rows of the DAG's groups (root, exit-handler-1, sub-pipelines)."""
    job = aiplatform.PipelineJob.get(name)
    details = job.gca_resource.job_detail.task_details
    return job.state.name, {
        t.task_name: t.state.name for t in details if t.execution.schema_title not in GROUPS
    }


def wait_for_job(
    aiplatform,
    name,
    until=lambda state, tasks: state in TERMINAL,
    timeout: float = 240,
    poll_s: float = 0.5,
    fail_if_ended: bool = False,
) -> tuple[str, dict]:
    """Poll `job_states` until `until(state, tasks)` holds; AssertionError after `timeout`
    or, with `fail_if_ended`, as soon as the job ended without it holding."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, tasks = job_states(aiplatform, name)
        if until(state, tasks):
            return state, tasks
        if fail_if_ended:
            assert state not in TERMINAL, f"{name}: ended {state} {tasks}"
        time.sleep(poll_s)
    raise AssertionError(f"{name}: still {state} {tasks}")
