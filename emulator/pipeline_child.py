"""Run one pipeline job's compiled IR with kfp's own local runtime (a child of the emulator).

    python -m emulator.pipeline_child JOB_DIR [OWNER_FD]

JOB_DIR holds `job.json` (written by `emulator.pipeline_jobs`): the PipelineSpec, the
parameter values, the local pipeline root and the job's identity. This process runs the
DAG with kfp.local's orchestrator (importers, parameters and artifacts between tasks, the
exit handler, control flow), and writes one JSON line per state change of a row of
`jobDetail.taskDetails` (a task, or a group of the DAG: the root, `exit-handler-1`, a
sub-pipeline, a ParallelFor loop or iteration; with its id, parent, error, inputs and
outputs) to `JOB_DIR/events.jsonl` and its exit status to `JOB_DIR/result.json`. Every DAG
runs with kfp.local's enhanced orchestrator: a failed task does not stop the others
(Vertex AI's default failure policy, FAIL_SLOW).

Three thin shims adapt kfp.local to Vertex AI's behaviour, each in one place below:
- container components (GCPC's launchers, our components' commands) run as local processes:
  kfp.local's SubprocessRunner only allows lightweight Python components, the command
  itself is run unchanged (with this interpreter for `python3`);
- Vertex AI's placeholders resolve to this job's identity (`pipeline_job_resource_name`,
  `pipeline_job_name` (the display name), `pipeline_job_uuid`, the create time); kfp.local
  knows only some, and fills none inside dict or list parameters: the shim does;
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
    row: int = 0  # its row in jobDetail.taskDetails (`_open_row`)
    arguments: dict | None = None  # what kfp.local passed it (make_task_arguments)


# The task whose code runs in this thread (kfp.local runs a task's process in the thread
# that runs the task), and whether that thread runs inside an exit handler's subtree.
_current: contextvars.ContextVar[_Task | None] = contextvars.ContextVar("task", default=None)
_in_exit: contextvars.ContextVar[bool] = contextvars.ContextVar("in_exit", default=False)
# ParallelFor iterations run in a thread pool, where the calling thread's context is not
# seen: id(iteration spec) -> (the loop's row, whether the loop is in an exit subtree).
_iterations: dict[int, tuple[int, bool]] = {}
# The row of the DAG whose tasks run in this thread: their parentTaskId.
_scope: contextvars.ContextVar[int] = contextvars.ContextVar("scope", default=0)
_rows_lock = threading.Lock()
_rows: dict[int, dict] = {}  # row id -> {"name", "parent", "state"}
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


# One row of `jobDetail.taskDetails` per task that runs: a container or importer task, a
# DAG (the root, `exit-handler-1`, a sub-pipeline), a ParallelFor loop and each iteration.
# The first event of a row has its id, kind and parent; `emulator.pipeline_jobs.render`
# makes the PipelineTaskDetail of the events.
LEAVES = ("container", "importer")  # the row kinds of tasks that run an executor
MAX_VALUE_CHARS = 64_000  # a parameter or metadata value larger than this is left out


def _open_row(job_dir: Path, name: str, kind: str, parent: int | None = None) -> int:
    """A new row (RUNNING) under `parent` (default: this thread's DAG); its id."""
    parent = _scope.get() if parent is None else parent
    with _rows_lock:
        row = len(_rows) + 1
        _rows[row] = {"name": name, "parent": parent, "state": "RUNNING"}
    _event(job_dir, name, "RUNNING", id=row, parent=parent, kind=kind)
    return row


def _close_row(job_dir: Path, row: int, state: str, error: dict | None = None,
               inputs: dict | None = None, outputs: dict | None = None) -> None:  # fmt: skip
    """The row's final state, its error (google.rpc.Status) and its inputs and outputs."""
    with _rows_lock:
        _rows[row]["state"] = state
        name = _rows[row]["name"]
    extra = {"id": row}
    if error:
        extra["error"] = error
    for key, values in (("inputs", inputs), ("outputs", outputs)):
        parameters, artifacts = _split_io(values)
        if parameters or artifacts:
            extra[key] = {"parameters": parameters, "artifacts": artifacts}
    _event(job_dir, name, state, **extra)


def _children_failed(row: int) -> list[str]:
    with _rows_lock:
        return sorted(
            r["name"] for r in _rows.values() if r["parent"] == row and r["state"] == "FAILED"
        )


def _dag_error(row: int, state: str) -> dict | None:
    """The error of a DAG row that did not succeed. The wording is the emulator's (the
    job error Vertex AI writes names the failed tasks this way; a task's is undocumented)."""
    if state == "CANCELLED":
        return {"code": 1, "message": "Cancelled."}
    if state != "FAILED":
        return None
    failed = ", ".join(_children_failed(row))
    return {"code": 9, "message": f"The DAG failed because some tasks failed. The failed "
                                  f"tasks are: [{failed}]."}  # fmt: skip


CANCELLED_ERROR = {"code": 1, "message": "Cancelled."}


def _group_state(ok: bool) -> str:
    """A DAG's or loop's final state: CANCELLED when a cancel stopped it (not one in an exit
    handler's subtree), else FAILED or SUCCEEDED."""
    if ok:
        return "SUCCEEDED"
    if _cancelled.is_set() and not _aborted.is_set() and not _in_exit.get():
        return "CANCELLED"
    return "FAILED"


def _executor_kind(kwargs: dict) -> str:
    """ "container" or "importer": the executor of the task kfp.local is about to run."""
    spec = kwargs["task_spec"]
    label = kwargs["components"][spec.component_ref.name].executor_label
    return kwargs["executors"][label].WhichOneof("spec") or "container"


def _jsonable(value):
    text = json.dumps(value, default=str)
    return None if len(text) > MAX_VALUE_CHARS else json.loads(text)


def _artifact(artifact, key: str) -> dict:
    out = {
        "displayName": artifact.name or key,
        "uri": artifact.uri or "",
        "schemaTitle": artifact.schema_title,
        "schemaVersion": artifact.schema_version,
    }
    metadata = _jsonable(dict(artifact.metadata or {}))
    if metadata:
        out["metadata"] = metadata
    return out


def _fill(value, placeholders: dict[str, str]):
    """`value` with Vertex AI's placeholders filled in its strings, at any depth."""
    if isinstance(value, str):
        for placeholder, text in placeholders.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, list):
        return [_fill(v, placeholders) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, placeholders) for k, v in value.items()}
    return value


def _split_io(values: dict | None) -> tuple[dict, dict]:
    """kfp.local's inputs or outputs of a task: parameters (for the execution's metadata)
    and artifacts (a list each: one, or a ParallelFor's collected ones)."""
    from kfp import dsl

    parameters, artifacts = {}, {}
    for key, value in (values or {}).items():
        items = value if isinstance(value, list) else [value]
        if items and all(isinstance(v, dsl.Artifact) for v in items):
            artifacts[key] = [_artifact(v, key) for v in items]
        elif (jsonable := _jsonable(value)) is not None or value is None:
            parameters[key] = jsonable
    return parameters, artifacts


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
    from kfp.local import executor_input_utils, placeholder_utils, status, subprocess_task_handler
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
        # kfp.local leaves these two as they are. A run that no schedule started has no
        # schedule time; Vertex AI's value for it is not documented: the create time.
        "{{$.pipeline_job_create_time_utc}}": job.get("createTime", ""),
        "{{$.pipeline_job_schedule_time_utc}}": job.get("createTime", ""),
    }
    original_resolve = placeholder_utils.resolve_individual_placeholder

    def resolve(element, *args, **kwargs):
        for placeholder, value in vertex.items():
            element = element.replace(placeholder, value)
        return original_resolve(element, *args, **kwargs)

    placeholder_utils.resolve_individual_placeholder = resolve
    # kfp.local fills placeholders only in parameters that are strings; the KFP compiler
    # also leaves them inside dict and list constants (`config={"job":
    # dsl.PIPELINE_JOB_NAME_PLACEHOLDER}`) for the backend to fill, as Vertex AI does.
    original_self_references = placeholder_utils.resolve_self_references_in_executor_input

    def resolve_self_references(executor_input_dict, **kwargs):
        resolved = original_self_references(executor_input_dict=executor_input_dict, **kwargs)
        values = resolved.get("inputs", {}).get("parameterValues", {})
        for key, value in values.items():
            if isinstance(value, (dict, list)):
                values[key] = placeholder_utils.recursively_resolve_json_dict_placeholders(
                    value, executor_input_dict=resolved, **kwargs
                )
        return resolved

    placeholder_utils.resolve_self_references_in_executor_input = resolve_self_references
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
        loop_row, loop_in_exit = _iterations.get(id(spec), (None, False))
        in_exit = _in_exit.get() or loop_in_exit or spec.trigger_policy.strategy == exit_strategy
        tokens = [(_in_exit, _in_exit.set(in_exit))]
        if loop_row is not None:  # an iteration, in a thread of the pool
            tokens.append((_scope, _scope.set(loop_row)))
        try:
            component = kwargs["components"][spec.component_ref.name]
            if component.WhichOneof("implementation") != "dag":
                return original_execute_task(*args, **kwargs)
            kind = "iteration" if loop_row is not None else "dag"
            return _run_dag_row(kind, kwargs["task_name"], original_execute_task, args, kwargs)
        finally:
            for var, token in reversed(tokens):
                var.reset(token)

    def _run_dag_row(kind, name, run, args, kwargs):
        row = _open_row(job_dir, name, kind)
        token = _scope.set(row)
        state = "FAILED"
        outputs = {}
        try:
            outputs, result = run(*args, **kwargs)
            state = _group_state(result == status.Status.SUCCESS)
            return outputs, result
        finally:
            _scope.reset(token)
            _close_row(job_dir, row, state, _dag_error(row, state),
                       outputs=outputs if state == "SUCCEEDED" else None)  # fmt: skip

    enhanced.execute_task = execute_task
    # Every DAG runs with the enhanced orchestrator, so that each passes `execute_task` and
    # a failed task does not stop the others (Vertex AI's default, FAIL_SLOW); kfp.local's
    # plain one (for DAGs without control flow) stops at the first failure.
    from kfp.local.orchestrator import dag_orchestrator

    dag_orchestrator.run_dag = enhanced.run_enhanced_dag

    original_loop = enhanced._run_parallel_for_task

    def run_parallel_for_task(*args, **kwargs):
        row = _open_row(job_dir, kwargs["task_name"], "loop")
        token = _scope.set(row)
        state = "FAILED"
        try:
            failed = original_loop(*args, **kwargs)
            state = _group_state(not failed)
            return failed
        finally:
            _scope.reset(token)
            _close_row(job_dir, row, state, _dag_error(row, state))

    enhanced._run_parallel_for_task = run_parallel_for_task
    # ParallelFor runs its iterations in a thread pool, where this thread's context is not
    # seen: each iteration's loop row and exit subtree are recognised by its spec instead.
    original_parallel = enhanced.ParallelExecutor.execute_parallel_tasks

    def execute_parallel_tasks(self, *args, **kwargs):
        tasks = kwargs["tasks"] if "tasks" in kwargs else args[0]
        ids = {id(spec) for _, spec in tasks}
        for spec_id in ids:
            _iterations[spec_id] = (_scope.get(), _in_exit.get())
        try:
            return original_parallel(self, *args, **kwargs)
        finally:
            for spec_id in ids:
                _iterations.pop(spec_id, None)

    enhanced.ParallelExecutor.execute_parallel_tasks = execute_parallel_tasks

    # 4. Task states for jobDetail, and cancellation.
    original_execute = task_executor.execute_single_task

    def execute(*args, **kwargs):
        from kfp.local import status

        task = _Task(kwargs["task_name"], _in_exit.get())
        why = _must_stop(task)
        if why:
            if why == "cancel":  # not started (an aborted run has nobody to read it)
                row = _open_row(job_dir, task.name, _executor_kind(kwargs))
                _close_row(job_dir, row, "CANCELLED", CANCELLED_ERROR)
            return {}, status.Status.FAILURE
        _count_in_flight(+1)
        try:
            task.row = _open_row(job_dir, task.name, _executor_kind(kwargs))
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
        inputs = task.arguments
        if task.killed == "cancel":
            _ended[task.name] = ("CANCELLED", "")
            _close_row(job_dir, task.row, "CANCELLED", CANCELLED_ERROR, inputs)
            return {}, status.Status.FAILURE
        if task.killed:
            _ended[task.name] = ("FAILED", "Stopped: the emulator stopped or is gone.")
            error = {"code": 14, "message": _ended[task.name][1]}
            _close_row(job_dir, task.row, "FAILED", error, inputs)
            return {}, status.Status.FAILURE
        state = "SUCCEEDED" if result == status.Status.SUCCESS else "FAILED"
        _ended[task.name] = (state, task.error if state == "FAILED" else "")
        # The error of a failed task: code 9 and the last exception line it printed (the
        # emulator's choice: what Vertex AI writes there is not documented).
        error = {"code": 9, "message": task.error or f"The task {task.name} failed."}
        _close_row(job_dir, task.row, state, error if state == "FAILED" else None, inputs,
                   outputs if state == "SUCCEEDED" else None)  # fmt: skip
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
        task = _current.get()
        if task is not None:  # the inputs of its row, as the task gets them
            task.arguments = _fill(arguments, vertex)
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
    outputs = {}
    # The root's row: named after the job's id, as the SDK looks it up (its model evaluation
    # reads the task whose `task_name` is `PipelineJob.name`); the pipeline's own tasks
    # are its children (parentTaskId).
    root = _open_row(job_dir, job["jobId"], "root", parent=0)
    token = _scope.set(root)
    try:
        outputs = pipeline_orchestrator.run_local_pipeline(
            pipeline_spec=spec, arguments=job["parameterValues"]
        )
        # kfp.local answers {} for a failed DAG (raise_on_error=False); a pipeline without
        # outputs succeeds with {} too, so the events decide.
        failed = sorted({
            e["task"] for e in _read_events(job_dir)
            if e["state"] in ("FAILED", "CANCELLED") and e.get("kind", "container") in LEAVES
        })  # fmt: skip
        ok = not failed
        if failed:
            error = f"The DAG failed because some tasks failed: {', '.join(failed)}."
    except Exception as exc:  # a spec kfp.local cannot run: the job fails with the reason
        error = f"{type(exc).__name__}: {exc}"
    finally:
        _scope.reset(token)
    state = "SUCCEEDED" if ok else "CANCELLED" if _cancelled.is_set() else "FAILED"
    root_error = CANCELLED_ERROR if state == "CANCELLED" else {"code": 9, "message": error}
    _close_row(job_dir, root, state, None if ok else root_error, job["parameterValues"],
               outputs if ok else None)  # fmt: skip
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
