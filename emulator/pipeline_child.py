"""Run one pipeline job's compiled IR with kfp's own local runtime (a child of the emulator).

    python -m emulator.pipeline_child JOB_DIR [OWNER_FD]

JOB_DIR holds `job.json` (written by `emulator.pipeline_jobs`): the PipelineSpec, the
parameter values, the local pipeline root and the job's identity. This process runs the
DAG with kfp.local's orchestrator (importers, parameters and artifacts between tasks, the
exit handler, control flow), and writes one JSON line per task state change to
`JOB_DIR/events.jsonl` and its exit status to `JOB_DIR/result.json`.

Three thin shims adapt kfp.local to Vertex AI's behaviour, each in one place below:
- container components (GCPC's launchers, our components' commands) run as local processes:
  kfp.local's SubprocessRunner only allows lightweight Python components, the command
  itself is run unchanged (with this interpreter for `python3`);
- Vertex AI's placeholders resolve to this job's identity (`pipeline_job_resource_name`,
  `pipeline_job_name` (the display name), `pipeline_job_uuid`); kfp.local knows only some;
- SIGTERM (the emulator's cancel) is passed on to the running tasks, as Vertex AI does so
  that GCPC's launchers cancel their operations; no further task of the body starts, and
  the exit handler still runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from emulator.resources import now

_cancelled = threading.Event()
_events_lock = threading.Lock()


def _event(job_dir: Path, task: str, state: str, **extra) -> None:
    line = json.dumps({"task": task, "state": state, "time": now(), **extra})
    with _events_lock, open(job_dir / "events.jsonl", "a") as fh:
        fh.write(line + "\n")


def _stop_tasks(grace_s: float = 10.0) -> None:
    """SIGTERM every process of the running tasks (a task's command may be `sh -ec` around
    Python, so its children too), and SIGKILL those still alive after `grace_s`, as
    Kubernetes does to a pod. Only the processes running now: the exit handler that starts
    afterwards is not touched."""
    import psutil

    from procgroup import stop_processes

    running = psutil.Process().children(recursive=True)
    # in a thread: the caller is a signal handler, and the exit handler must not wait
    threading.Thread(target=stop_processes, args=(running, grace_s), daemon=True).start()


def _install_shims(job: dict, job_dir: Path) -> None:
    from kfp.local import executor_input_utils, placeholder_utils, subprocess_task_handler
    from kfp.local.orchestrator import task_executor
    from kfp.pipeline_spec import pipeline_spec_pb2

    # 1. Container components run their command here, unchanged.
    handler = subprocess_task_handler.SubprocessTaskHandler
    handler.validate_not_container_component = lambda self, full_command: None
    handler.validate_not_containerized_python_component = lambda self, full_command: None
    handler.validate_image = lambda self, image: None

    # 2. Vertex AI's placeholders.
    vertex = {
        "{{$.pipeline_job_resource_name}}": job["name"],
        # What Vertex AI substitutes here is not documented; KFP documents the run's display
        # name, which need not be unique, so the emulator gives that (the worst case).
        "{{$.pipeline_job_name}}": job["displayName"],
        "{{$.pipeline_job_uuid}}": job["uuid"],
    }
    original_resolve = placeholder_utils.resolve_individual_placeholder

    def resolve(element, *args, **kwargs):
        for placeholder, value in vertex.items():
            element = element.replace(placeholder, value)
        return original_resolve(element, *args, **kwargs)

    placeholder_utils.resolve_individual_placeholder = resolve
    executor_input_utils.get_local_pipeline_resource_name = lambda name: job["jobId"]

    # 3. Task states for jobDetail, and cancellation.
    original_execute = task_executor.execute_single_task
    strategies = pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.TriggerStrategy
    exit_strategy = strategies.ALL_UPSTREAM_TASKS_COMPLETED

    def execute(*args, **kwargs):
        from kfp.local import status

        task_name = kwargs["task_name"]
        task_spec = kwargs["task_spec"]
        is_exit = task_spec.trigger_policy.strategy == exit_strategy
        if _cancelled.is_set() and not is_exit:
            _event(job_dir, task_name, "CANCELLED")
            return {}, status.Status.FAILURE
        _event(job_dir, task_name, "RUNNING")
        outputs, result = original_execute(*args, **kwargs)
        if _cancelled.is_set() and not is_exit:
            # A task that was running at the cancel is CANCELLED whatever its exit code
            # (a process killed early in its shell wrapper may even exit 0).
            _event(job_dir, task_name, "CANCELLED")
            return {}, status.Status.FAILURE
        _event(job_dir, task_name, "SUCCEEDED" if result == status.Status.SUCCESS else "FAILED")
        return outputs, result

    task_executor.execute_single_task = execute


def main(argv: list[str]) -> int:
    job_dir = Path(argv[0])
    job = json.loads((job_dir / "job.json").read_text())

    def on_term(signum, frame):
        if not _cancelled.is_set():
            _cancelled.set()
            _stop_tasks()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if len(argv) > 1:  # the emulator's pipe: EOF means it is gone (even by SIGKILL)
        from emulator.server import watch_owner

        def owner_gone():
            print("the emulator is gone: stopping the tasks", flush=True)
            _cancelled.set()
            _stop_tasks(grace_s=5.0)
            time.sleep(5.5)
            os._exit(1)  # no exit handler: nothing is left to clean up through

        watch_owner(int(argv[1]), owner_gone)

    from google.protobuf import json_format
    from kfp import local
    from kfp.local import pipeline_orchestrator
    from kfp.pipeline_spec import pipeline_spec_pb2

    _install_shims(job, job_dir)
    spec = json_format.ParseDict(job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=job["localPipelineRoot"],
        raise_on_error=False,
    )
    ok = False
    error = ""
    try:
        pipeline_orchestrator.run_local_pipeline(
            pipeline_spec=spec, arguments=job["parameterValues"]
        )
        # kfp.local answers {} for a failed DAG (raise_on_error=False); a pipeline without
        # outputs succeeds with {} too, so the events decide.
        failed = [e["task"] for e in _read_events(job_dir) if e["state"] in ("FAILED", "CANCELLED")]
        ok = not failed
        if failed:
            error = f"The DAG failed because some tasks failed: {', '.join(sorted(set(failed)))}."
    except Exception as exc:  # a spec kfp.local cannot run: the job fails with the reason
        error = f"{type(exc).__name__}: {exc}"
    result = {"ok": ok, "cancelled": _cancelled.is_set(), "error": error}
    (job_dir / "result.json").write_text(json.dumps(result))
    sys.stdout.flush()
    os._exit(0 if ok else 1)


def _read_events(job_dir: Path) -> list[dict]:
    path = job_dir / "events.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
