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
- cancellation: SIGTERM (the emulator's cancel) is passed on to the running tasks of the
  body, as Vertex AI does so that GCPC's launchers cancel their operations; no further task
  of the body starts, and the exit handler's whole subtree (an exit task, or an exit
  sub-pipeline with everything in it) runs and is never signalled, a second cancel
  included. SIGUSR1 (the emulator stops) and the emulator's death stop every task.
  A task whose processes the runner signalled is CANCELLED (cancel) or FAILED (stop),
  never SUCCEEDED, whatever its exit code: GCPC's launchers exit 0 on SIGTERM.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from emulator.resources import now

_cancelled = threading.Event()
_aborted = threading.Event()  # the emulator stops or is gone: every task is stopped
_events_lock = threading.Lock()
CANCEL_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this, as Kubernetes does to a pod
ABORT_GRACE_S = 5.0


@dataclass
class _Task:
    name: str
    spared: bool  # in the exit handler's subtree: a cancel does not stop it
    killed: str = ""  # "cancel" or "abort" once the runner signalled its processes
    error: str = ""  # the last exception line the task's process printed


# The task whose code runs in this thread (kfp.local runs a task's process in the thread
# that runs the task), and whether that thread runs inside an exit handler's subtree.
_current: contextvars.ContextVar[_Task | None] = contextvars.ContextVar("task", default=None)
_in_exit: contextvars.ContextVar[bool] = contextvars.ContextVar("in_exit", default=False)
_exit_iterations: set[int] = set()  # ids of ParallelFor iteration specs inside an exit subtree
_running_lock = threading.Lock()
_running: dict[int, tuple[subprocess.Popen, _Task]] = {}  # pid -> the task's top process
_stoppers: list[threading.Thread] = []
_in_flight = threading.Condition()  # counts the tasks whose final state is not written yet
_in_flight_count = 0
# Final state and error of each task that ended (for the exit task's final status).
_ended: dict[str, tuple[str, str]] = {}
# The last line of a Python traceback: `ExceptionName: message` (dotted names too).
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Incomplete|Exit): .*"
)
MAX_ERROR_CHARS = 2000


def _event(job_dir: Path, task: str, state: str, **extra) -> None:
    line = json.dumps({"task": task, "state": state, "time": now(), **extra})
    with _events_lock, open(job_dir / "events.jsonl", "a") as fh:
        fh.write(line + "\n")


def _must_stop(task: _Task) -> str:
    """Why `task` may not run now ("" if it may): the run is aborted, or cancelled and the
    task is not in an exit handler's subtree."""
    if _aborted.is_set():
        return "abort"
    if _cancelled.is_set() and not task.spared:
        return "cancel"
    return ""


def _stop_tasks(why: str, grace_s: float) -> tuple[int, threading.Thread]:
    """SIGTERM every process of the running tasks that `why` stops (a task's command may be
    `sh -ec` around Python, so its children too), and SIGKILL those still alive after
    `grace_s`, in a thread (the exit handler must not wait for the body's grace period).
    Each such task is marked killed first, so its outcome is not read from an exit code.
    Returns how many tasks are stopped, and the thread."""
    import psutil

    from procgroup import stop_processes

    with _running_lock:
        victims = [(popen, task) for popen, task in _running.values() if _must_stop(task) == why]
        for _, task in victims:
            task.killed = why
    procs = []
    for popen, _ in victims:
        try:
            top = psutil.Process(popen.pid)
            procs += [top, *top.children(recursive=True)]
        except psutil.Error:
            pass  # it ended on its own meanwhile
    stopper = threading.Thread(target=stop_processes, args=(procs, grace_s), daemon=True)
    stopper.start()
    _stoppers.append(stopper)  # joined before the runner exits: no task outlives it
    return len(victims), stopper


def _run_local_subprocess(full_command: list[str], env_vars: dict | None = None) -> int:
    """kfp.local's `subprocess_task_handler.run_local_subprocess` (the same Popen and log
    relay), with the process registered as its task's, so that a cancel knows which
    processes belong to the body and which to the exit handler."""
    task = _current.get() or _Task("?", _in_exit.get())
    if _must_stop(task):  # e.g. a retry after the cancel: it does not start
        task.killed = task.killed or _must_stop(task)
        return -signal.SIGTERM
    env = {**os.environ, **env_vars} if env_vars else None
    with subprocess.Popen(
        full_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        env=env,
    ) as process:  # fmt: skip
        with _running_lock:
            _running[process.pid] = (process, task)
            late = _must_stop(task)  # a cancel between the check above and the start
        if late:
            task.killed = late
            process.terminate()
        try:
            if process.stdout:
                for line in iter(process.stdout.readline, ""):
                    print(line, end="")
                    if _EXCEPTION_LINE.match(line):
                        task.error = line.strip()[:MAX_ERROR_CHARS]
                print("\n")
            return process.wait()
        finally:
            with _running_lock:
                _running.pop(process.pid, None)


def _count_in_flight(delta: int) -> None:
    global _in_flight_count
    with _in_flight:
        _in_flight_count += delta
        _in_flight.notify_all()


def _install_shims(job: dict, job_dir: Path) -> None:
    from kfp.local import executor_input_utils, placeholder_utils, subprocess_task_handler
    from kfp.local.orchestrator import enhanced_dag_orchestrator as enhanced
    from kfp.local.orchestrator import task_executor
    from kfp.pipeline_spec import pipeline_spec_pb2

    # 1. Container components run their command here, unchanged.
    handler = subprocess_task_handler.SubprocessTaskHandler
    handler.validate_not_container_component = lambda self, full_command: None
    handler.validate_not_containerized_python_component = lambda self, full_command: None
    handler.validate_image = lambda self, image: None
    subprocess_task_handler.run_local_subprocess = _run_local_subprocess

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

    # 3. The exit handler's subtree. An exit task carries the ALL_UPSTREAM_TASKS_COMPLETED
    # trigger; an exit sub-pipeline (KFP supports one since kubeflow/pipelines#8220, and
    # GCPC's undeploy and delete ops can only be an exit task that way, kfp #10187) carries
    # it on its DAG task alone, so whatever runs under such a task is in the subtree.
    # (`ignore_upstream_failure()` compiles to the same trigger: the IR does not tell the
    # two apart, so such a task is spared too.)
    strategies = pipeline_spec_pb2.PipelineTaskSpec.TriggerPolicy.TriggerStrategy
    exit_strategy = strategies.ALL_UPSTREAM_TASKS_COMPLETED
    original_execute_task = enhanced.execute_task

    def execute_task(*args, **kwargs):
        spec = kwargs["task_spec"]
        if spec.trigger_policy.strategy != exit_strategy and id(spec) not in _exit_iterations:
            return original_execute_task(*args, **kwargs)
        token = _in_exit.set(True)
        try:
            return original_execute_task(*args, **kwargs)
        finally:
            _in_exit.reset(token)

    enhanced.execute_task = execute_task
    # ParallelFor runs its iterations in a thread pool, where this thread's context is not
    # seen: iterations inside an exit subtree are recognised by their specs instead.
    original_parallel = enhanced.ParallelExecutor.execute_parallel_tasks

    def execute_parallel_tasks(self, *args, **kwargs):
        tasks = kwargs["tasks"] if "tasks" in kwargs else args[0]
        ids = {id(spec) for _, spec in tasks} if _in_exit.get() else set()
        _exit_iterations.update(ids)
        try:
            return original_parallel(self, *args, **kwargs)
        finally:
            _exit_iterations.difference_update(ids)

    enhanced.ParallelExecutor.execute_parallel_tasks = execute_parallel_tasks

    # 4. Task states for jobDetail, and cancellation.
    original_execute = task_executor.execute_single_task

    def execute(*args, **kwargs):
        from kfp.local import status

        task = _Task(kwargs["task_name"], _in_exit.get())
        why = _must_stop(task)
        if why:
            if why == "cancel":  # not started (an aborted run has nobody to read it)
                _event(job_dir, task.name, "CANCELLED")
            return {}, status.Status.FAILURE
        _count_in_flight(+1)
        try:
            _event(job_dir, task.name, "RUNNING")
            return _run(task, *args, **kwargs)
        finally:
            _count_in_flight(-1)

    def _run(task, *args, **kwargs):
        from kfp.local import status

        token = _current.set(task)
        try:
            outputs, result = original_execute(*args, **kwargs)
        finally:
            _current.reset(token)
        # A task the runner signalled is not judged by its exit code: GCPC's launchers exit
        # 0 on SIGTERM, and a process killed early in its shell wrapper may too.
        if task.killed == "cancel":
            _ended[task.name] = ("CANCELLED", "")
            _event(job_dir, task.name, "CANCELLED")
            return {}, status.Status.FAILURE
        if task.killed:
            _ended[task.name] = ("FAILED", "Stopped: the emulator stopped or is gone.")
            _event(job_dir, task.name, "FAILED", error=_ended[task.name][1])
            return {}, status.Status.FAILURE
        state = "SUCCEEDED" if result == status.Status.SUCCESS else "FAILED"
        _ended[task.name] = (state, task.error if state == "FAILED" else "")
        _event(job_dir, task.name, state, **({"error": task.error} if task.error else {}))
        return outputs, result

    task_executor.execute_single_task = execute
    # kfp.local's orchestrators import the module, not the name: patching it is enough.

    # 5. The exit task's PipelineTaskFinalStatus, as Vertex AI fills it.
    from kfp.local.orchestrator.orchestrator_utils import OrchestratorUtils

    original_arguments = OrchestratorUtils.make_task_arguments.__func__

    def make_task_arguments(cls, task_inputs_spec, io_store):
        arguments = original_arguments(cls, task_inputs_spec, io_store)
        for name, spec in task_inputs_spec.parameters.items():
            if spec.HasField("task_final_status"):
                producer = spec.task_final_status.producer_task
                arguments[name] = final_status(job, producer, io_store)
        return arguments

    OrchestratorUtils.make_task_arguments = classmethod(make_task_arguments)


def final_status(job: dict, producer: str, io_store) -> dict:
    """The `PipelineTaskFinalStatus` an exit task gets for the exit handler `producer`.

    Its fields are the IR's (kfp's pipeline_spec.proto `PipelineTaskFinalStatus`: `state`,
    the string of a `PipelineTaskState`; `error`, a google.rpc.Status;
    `pipeline_job_resource_name`; `pipeline_task_name`, "the pipeline task that produces this
    status"), in the snake_case names kfp's executor reads first (kfp/dsl/executor.py calls
    the camelCase ones deprecated). kfp.local gives `local-pipeline-<task>` as the job and
    FAILED for a cancel; Vertex AI gives the job's resource name, and CANCELLED is one of the
    states kfp documents (kfp/dsl/task_final_status.py). Not documented by Vertex AI, so
    the emulator's choice: the error's code (1 CANCELLED on a cancel, as pipelineJobs.cancel
    documents for the job; 9 FAILED_PRECONDITION for a failure, as this emulator's job error)
    and its message, which names the failed tasks, each with the last exception line it
    printed (Vertex AI's own message text is not documented)."""
    try:
        state = io_store.get_task_status(producer)
    except ValueError:
        state = "SUCCEEDED"
    if state != "SUCCEEDED" and _cancelled.is_set():
        state = "CANCELLED"
    error = {}
    if state != "SUCCEEDED":
        failed = {t: e for t, (s, e) in _ended.items() if s == "FAILED"}
        cancelled = sorted(t for t, (s, _) in _ended.items() if s == "CANCELLED")
        parts = []
        if failed:
            parts.append(f"The DAG failed because some tasks failed. The failed tasks are: "
                         f"[{', '.join(sorted(failed))}].")  # fmt: skip
            parts += [f"{t}: {e}" for t, e in sorted(failed.items()) if e]
        if state == "CANCELLED":
            names = ", ".join(cancelled)
            parts.insert(0, f"The pipeline job was cancelled; cancelled tasks: [{names}].")
        error = {
            "code": 1 if state == "CANCELLED" else 9,
            "message": " ".join(parts) or f"Task {producer} {state.lower()}.",
        }
    return {
        "state": state,
        "pipeline_job_resource_name": job["name"],
        "pipeline_task_name": producer,
        "error": error,
    }


_cancel_lock = threading.Lock()


def _on_cancel() -> None:
    """The first cancel stops the body; a later one changes nothing. Vertex AI documents no
    answer to a cancel of a job that is already CANCELLING (its console offers Stop only
    while the run is RUNNING), so the emulator lets the exit handler finish: a killed
    clean-up leaves a paid endpoint behind (unverified against Vertex AI)."""
    with _cancel_lock:
        again = _cancelled.is_set()
        _cancelled.set()
    if again:
        print("cancel again: ignored, the exit handler runs to its end", flush=True)
        return
    stopped, _ = _stop_tasks("cancel", CANCEL_GRACE_S)
    print(f"cancel: stopping {stopped} running task(s); the exit handler runs", flush=True)


def _abort(reason: str) -> None:
    """Stop every task, the exit handler's too, and end (the emulator stops or is gone)."""
    _aborted.set()
    print(f"{reason}: stopping every task", flush=True)
    _stop_tasks("abort", ABORT_GRACE_S)[1].join()
    with _in_flight:  # the task threads record the stopped tasks as FAILED
        _in_flight.wait_for(lambda: _in_flight_count == 0, timeout=5)
    sys.stdout.flush()
    os._exit(1)


def main(argv: list[str]) -> int:
    job_dir = Path(argv[0])
    job = json.loads((job_dir / "job.json").read_text())

    # A signal handler runs between two bytecodes of the main thread, which may hold the
    # locks the work needs: it only hands the work to a thread.
    def on_signal(work, *args):
        return lambda signum, frame: threading.Thread(target=work, args=args).start()

    signal.signal(signal.SIGTERM, on_signal(_on_cancel))
    signal.signal(signal.SIGINT, on_signal(_on_cancel))
    signal.signal(signal.SIGUSR1, on_signal(_abort, "the emulator stops"))
    if len(argv) > 1:  # the emulator's pipe: EOF means it is gone (even by SIGKILL)
        from emulator.server import watch_owner

        # no exit handler: nothing is left to clean up through
        watch_owner(int(argv[1]), lambda: _abort("the emulator is gone"))

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
    for stopper in list(_stoppers):  # a body task's child that ignores SIGTERM gets SIGKILL
        stopper.join()
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
