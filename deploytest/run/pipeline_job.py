"""The pipeline job of `deploytest run`, in the embedded Vertex AI.

The very YAML that Cloud Build and the Scheduler submit goes, with the code of `deploytest
submit` (pipelines/submit.py), to the emulator's Vertex AI Pipelines, which runs GCPC's
launchers and our components with the emulator's client environment. This module stages the
locustfile in Cloud Storage, follows the job's task states, cancels it, and fetches its
outputs from the pipeline root for the summary.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from deploytest.job_wait import TERMINAL_STATES
from emulator.client import EmulatorAdmin

# Buckets in the emulator's Cloud Storage (on Google Cloud, infra/ creates their twins).
PIPELINE_BUCKET = "deploytest-local-pipeline-root"
LOADTEST_BUCKET = "deploytest-local-loadtests"
RUNNER_ACCOUNT = "deploytest-runner@{project}.iam.gserviceaccount.com"
_JOB_ID = re.compile(r"^[a-z][a-z0-9-]{0,127}$")
# Task states as kfp.local's log names them: the summary reads this vocabulary.
_TASK_STATUS = {"SUCCEEDED": "SUCCESS", "FAILED": "FAILURE", "CANCELLED": "CANCELLED"}


def check_job_id(run_id: str) -> str:
    """The run id is the pipeline job id (so the run label is both): Vertex's id syntax."""
    if not _JOB_ID.match(run_id):
        raise ValueError(
            f"--run-id {run_id!r} cannot be a pipeline job id: [a-z][a-z0-9-]{{0,127}}"
        )
    return run_id


@contextlib.contextmanager
def client_environment(env: dict[str, str]) -> Iterator[None]:
    """Google's clients in this process reach the emulator by their default hosts while
    inside (emulator/envfile.py); the previous environment comes back after."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def stage_locustfile(project: str, run_id: str, locustfile: str) -> tuple[str, str]:
    """Create the buckets if needed, upload the locustfile; return (pipeline root, its URI).
    Call inside `client_environment`."""
    from google.cloud import storage

    client = storage.Client(project=project)
    for bucket in (PIPELINE_BUCKET, LOADTEST_BUCKET):
        if client.lookup_bucket(bucket) is None:
            client.create_bucket(bucket)
    name = f"runs/{run_id}/locustfile.py"
    client.bucket(LOADTEST_BUCKET).blob(name).upload_from_filename(locustfile)
    return f"gs://{PIPELINE_BUCKET}/runs", f"gs://{LOADTEST_BUCKET}/{name}"


def fetch_outputs(job_name: str, dest: Path) -> int:
    """Download the job's outputs from the pipeline root to `dest/<job id>/<task>/<output>`
    (kfp.local's layout, which `collect_results` reads). Inside `client_environment`."""
    from google.cloud import storage

    job_id = job_name.rsplit("/", 1)[-1]
    prefix = f"runs/{job_id}/"
    count = 0
    for blob in storage.Client().list_blobs(PIPELINE_BUCKET, prefix=prefix):
        target = dest / job_id / blob.name[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        blob.download_to_filename(str(target))
        count += 1
    return count


def _time(rfc3339: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(rfc3339) if rfc3339 else None


# Rows of `jobDetail.taskDetails` that are the DAG's own groups (the root, exit-handler-1,
# sub-pipelines, ParallelFor loops), not tasks that run: by their execution's schema.
GROUP_SCHEMAS = ("system.Run", "system.DagExecution")


def task_states(job: dict) -> dict[str, str]:
    """{task name: SUCCESS | FAILURE | CANCELLED | RUNNING ...} from `jobDetail`: the tasks
    that run a container or an importer, not the DAG's groups."""
    details = (job.get("jobDetail") or {}).get("taskDetails") or []
    return {
        t["taskName"]: _TASK_STATUS.get(t["state"], t["state"])
        for t in details
        if (t.get("execution") or {}).get("schemaTitle") not in GROUP_SCHEMAS
    }


class JobFollower:
    """Polls the job through the emulator's plain-HTTP URL and reports task changes."""

    def __init__(
        self,
        api_endpoint: str,
        job_name: str,
        say: Callable[[str], None],
        task_output: Callable[[str], None] | None = None,
    ):
        self.url = f"{api_endpoint.rstrip('/')}/v1/{job_name}"
        self.say = say
        self.seen: dict[str, str] = {}
        self.job: dict = {}
        # The emulator's task log (kfp.local's), whose new lines go to `task_output`:
        # Locust's progress, the clean-up's steps. Vertex AI has Cloud Logging instead.
        self.task_output = task_output
        self._admin = EmulatorAdmin(api_endpoint)
        self._job_id = job_name.rsplit("/", 1)[-1]
        self._log_seen = 0  # bytes of the log already shown

    def _tail_log(self) -> None:
        if self.task_output is None:
            return
        new = self._admin.pipeline_log(self._job_id, self._log_seen)
        end = new.rfind(b"\n") + 1  # whole lines only: the rest comes with the next poll
        for line in new[:end].decode("utf-8", "replace").splitlines():
            self.task_output(line)
        self._log_seen += end

    def poll(self) -> dict:
        """GET the job once; say each task that started, then the log's new lines, then
        each task that ended, since the last poll."""
        self.job = httpx.get(self.url, timeout=30).json()
        ended = []
        for task, state in task_states(self.job).items():
            if self.seen.get(task) == state:
                continue
            if task not in self.seen:
                self.say(f"▶ {task}")
            if state != "RUNNING":
                ended.append((task, state))
            self.seen[task] = state
        self._tail_log()
        for task, state in ended:
            self.say(f"{'✔' if state == 'SUCCESS' else '✘'} {task}: {state}")
        return self.job

    def deploy_overrun(self, timeout_s: float) -> float:
        """Seconds the deploy task has run, if more than `timeout_s` (else 0), by the task's
        start time in the job (deploytest.job_wait.deploy_overrun)."""
        from deploytest.job_wait import deploy_overrun

        details = (self.job.get("jobDetail") or {}).get("taskDetails") or []
        tasks = ((t["taskName"], t.get("state", ""), _time(t.get("startTime"))) for t in details)
        return deploy_overrun(tasks, timeout_s)

    def cancel(self) -> None:
        """Ask Vertex AI Pipelines to cancel (the exit handler still runs)."""
        resp = httpx.post(f"{self.url}:cancel", json={}, timeout=30)
        if resp.status_code not in (200, 400):  # 400: it has ended meanwhile
            resp.raise_for_status()

    def wait(self, timeout_s: float, poll_s: float = 0.5, on_poll=None) -> dict:
        """Poll until the job ends or `timeout_s` passes; return the last job."""
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.poll()
            if job.get("state") in TERMINAL_STATES or time.monotonic() > deadline:
                return job
            if on_poll is not None:
                on_poll(self)
            time.sleep(poll_s)
