"""`deploytest run`: the whole pipeline, offline, on this machine.

Starts the embedded Vertex AI emulator (or reuses one), registers the demo model, compiles
the local op set, runs it with kfp.local in a child process group, streams progress, and
ends with a summary. On SIGINT/SIGTERM it stops the run, cleans up by the run's label
itself, and exits 130/143 with nothing left.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FAULTS: dict[str, dict[str, Any]] = {
    "deploy-fail": {"deploy": "fail"},
    "deploy-hang": {"deploy": "hang"},
    "predict-errors": {"predict_error_rate": 0.5},
    # latency is set from the p95 SLO at run time
    "slo-breach": {},
}
# A hung deploy would otherwise hold the run for the whole deploy timeout.
DEPLOY_HANG_TIMEOUT_S = 10

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_START = re.compile(r"Executing task '([^']+)'")
_TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
_PIPELINE_END = re.compile(r"Pipeline '([^']+)' finished with status (\w+)")
_LOCUST_INFO = re.compile(r"^\[locust\] \[[\d-]+ [\d:,]+\] [^/]+/INFO/")
# kfp prints each output artifact's repr after a task; the summary says it better.
_ARTIFACT_REPR = re.compile(r"^\w+: \w+\( name=|^uri='|^metadata=|^Output: ")


class RunError(Exception):
    """A problem found before the run created anything (exit code 2)."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class RunOptions:
    project: str
    location: str
    api_endpoint: str
    model: str
    locustfile: str
    output_dir: Path
    cache_dir: Path
    demo_size: str
    fault: str
    parameters: dict[str, Any]
    run_id: str = field(default_factory=lambda: new_run_id())
    # "local": the local op set with kfp.local; "vertex": the vertex YAML through the
    # emulator's Vertex AI Pipelines (pipelines/vertex_run.py)
    pipeline: str = "local"


def new_run_id() -> str:
    return time.strftime("local-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


def default_locustfile() -> Path:
    import loadtests

    return Path(loadtests.__file__).with_name("locustfile.py")


class ProgressFilter:
    """Turns kfp.local's verbose log into the lines a person wants to watch."""

    def __init__(self, started: float):
        self.started = started
        self.in_json = False
        self.in_traceback = False
        self.task_status: dict[str, str] = {}
        self.pipeline_status = ""

    def feed(self, raw: str) -> str | None:
        line = _ANSI.sub("", raw.rstrip("\n"))
        stamp = f"[{time.monotonic() - self.started:5.1f}s]"
        if m := _TASK_START.search(line):
            return f"{stamp} ▶ {m.group(1)}"
        if m := _TASK_END.search(line):
            self.task_status[m.group(1)] = m.group(2)
            mark = "✔" if m.group(2) == "SUCCESS" else "✘"
            return f"{stamp} {mark} {m.group(1)}: {m.group(2)}"
        if m := _PIPELINE_END.search(line):
            self.pipeline_status = m.group(2)
            return f"{stamp} pipeline finished: {m.group(2)}"
        if not line.startswith("    "):
            return None
        body = line.strip()
        # kfp's executor dumps its whole input and output as JSON; keep that in the log only.
        if body.startswith("Traceback"):
            self.in_traceback = True
            return None
        if body.startswith("[KFP Executor"):
            self.in_json = body.endswith("Got executor_input:")
            return None
        if self.in_json:
            if line.startswith("    }"):
                self.in_json = False
            return None
        if self.in_traceback:
            # show only the exception line that ends a traceback
            if re.match(r"^[A-Za-z_.]+(Error|Exception|Incomplete|Interrupt)\b", body):
                self.in_traceback = False
                return f"{stamp}     {body}"
            return None
        if not body or _ARTIFACT_REPR.search(body):
            return None
        return f"{stamp}     {body}"


class LocalRun:
    """One `deploytest run`: everything it started is stopped when `execute` returns."""

    def __init__(self, options: RunOptions, out=print):
        self.o = options
        self.out = out
        self.run_dir = options.output_dir / options.run_id
        self.started = time.monotonic()
        self.emulator = None
        self.api_endpoint = options.api_endpoint
        self.child: subprocess.Popen | None = None
        self._owner_fd: int | None = None
        self.tmp_dir = self.run_dir / "tmp"
        self.descendants: list = []
        self._descendants_seen_at = 0.0
        self.faults_injected = False
        self.job = None  # the pipeline job's follower (--pipeline vertex)
        self._deploy_timed_out = False

    # -- the steps -------------------------------------------------------------------

    def execute(self) -> int:
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def on_signal(signum, _frame):
            raise Interrupted(signum)

        for s in previous:
            signal.signal(s, on_signal)
        try:
            try:
                return self._run()
            except Interrupted as stop:
                return self._interrupted(stop.signum)
            except RunError as exc:
                self.out(f"deploytest run: {exc}", file=sys.stderr)
                return 2
        finally:
            # Clean-up of our own processes must not be cut short by a second Ctrl-C.
            for s in previous:
                signal.signal(s, signal.SIG_IGN)
            self._stop_child()
            if self._owner_fd is not None:
                os.close(self._owner_fd)
            self._stop_emulator()
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _run(self) -> int:
        if self.api_endpoint:
            self._connect_emulator()  # before the run folder: a bad URL creates nothing
            if self.o.model:
                self._check_model()
        self.o.output_dir.mkdir(exist_ok=True)  # only the last folder: its parent was checked
        try:
            # Exclusive: two runs with one --run-id never share a folder or an emulator state.
            self.run_dir.mkdir()
        except FileExistsError:
            raise RunError(
                f"run folder {self.run_dir} exists already: give another --run-id"
            ) from None
        self.say(f"run {self.o.run_id}: output in {self.run_dir}")
        self._start_emulator()
        model = self.o.model or self._register_demo_model()
        if self.o.pipeline == "vertex":
            self._run_vertex(model)
            return self._finish()
        params = self._pipeline_arguments(model)
        (self.run_dir / "arguments.json").write_text(json.dumps(params, indent=2))
        from pipelines.compile import compile_pipeline

        pipeline_yaml = compile_pipeline("local", self.run_dir / "pipeline.yaml")
        self.say(f"compiled the local pipeline to {pipeline_yaml}")
        self._run_child(pipeline_yaml)
        return self._finish()

    def _run_vertex(self, model: str) -> None:
        """Submit the vertex YAML to the emulator's Vertex AI Pipelines, as `deploytest
        submit` does, follow it, and fetch its outputs (pipelines/vertex_run.py)."""
        import yaml

        from pipelines import vertex_run
        from pipelines.compile import compile_pipeline
        from pipelines.submit import SubmitRequest, build_job_body, submit

        env = self.admin.client_env()
        with vertex_run.client_environment(env):
            root, locustfile = vertex_run.stage_locustfile(
                self.o.project, self.o.run_id, self.o.locustfile
            )
        self.say(f"staged the locustfile as {locustfile}")
        spec_path = compile_pipeline("vertex", self.run_dir / "pipeline.yaml")
        self.say(f"compiled the vertex pipeline to {spec_path}")
        params = dict(self.o.parameters)
        if self.o.fault == "deploy-hang":
            params["deploy_timeout_s"] = min(params["deploy_timeout_s"], DEPLOY_HANG_TIMEOUT_S)
        if not params.get("template"):
            from history.records import git_commit

            params["template"] = git_commit(Path(__file__).parent)
        request = SubmitRequest(
            project=self.o.project,
            location=self.o.location,
            pipeline_root=root,
            service_account=vertex_run.RUNNER_ACCOUNT.format(project=self.o.project),
            model=model,
            locustfile=locustfile,
            display_name="deploytest-run",
            parameters=params,
        )
        body = build_job_body(request, yaml.safe_load(spec_path.read_text()))
        values = body["runtimeConfig"]["parameterValues"]
        (self.run_dir / "arguments.json").write_text(json.dumps(values, indent=2))
        name = submit(
            body, self.o.project, self.o.location, self.api_endpoint, job_id=self.o.run_id
        )
        self.say(f"submitted the pipeline job {name}")
        progress = ProgressFilter(self.started)
        in_resources = False

        def task_output(line: str) -> None:
            # Task starts and ends come from the job's task states; the log adds the
            # tasks' own lines (Locust's summary, the verdict, the clean-up's steps), not
            # GCPC's gcp_resources JSON nor Locust's timestamped INFO lines.
            nonlocal in_resources
            plain = _ANSI.sub("", line)
            body = plain.strip()
            if _TASK_START.search(plain) or _TASK_END.search(plain):
                return
            if _PIPELINE_END.search(plain) or _LOCUST_INFO.match(body):
                return
            if body.startswith("gcp_resources:"):
                in_resources = True
                return
            if in_resources:
                in_resources = body != "}"
                return
            shown = progress.feed(line)
            if shown:
                self.out(shown, flush=True)

        self.job = vertex_run.JobFollower(self.api_endpoint, name, self.say, task_output)
        deploy_timeout = params["deploy_timeout_s"]

        def deploy_watchdog(follower) -> None:
            # GCPC's deploy launcher waits for its operation without a bound; the run's
            # deploy timeout is kept here, by cancelling the job (its exit handler runs).
            if not self._deploy_timed_out and follower.running_for("model-deploy") > deploy_timeout:
                self._deploy_timed_out = True
                self.say(f"model-deploy still running after {deploy_timeout}s: cancelling")
                follower.cancel()

        job = self.job.wait(timeout_s=7 * 24 * 3600, on_poll=deploy_watchdog)
        self.say(f"pipeline job {job.get('state', '?').removeprefix('PIPELINE_STATE_')}")
        self._fetch_vertex_outputs(env)

    def _fetch_vertex_outputs(self, env: dict[str, str]) -> None:
        from pipelines import vertex_run

        with vertex_run.client_environment(env):
            vertex_run.fetch_outputs(self.job.job["name"], self.run_dir / "kfp")
        from emulator.client import EmulatorAdmin

        log = EmulatorAdmin(self.api_endpoint).pipeline_log(self.o.run_id)  # kfp.local's
        if log:
            (self.run_dir / "pipeline.log").write_text(log)

    def _start_emulator(self) -> None:
        fault = FAULTS.get(self.o.fault, {}) if self.o.fault else {}
        if self.o.fault == "slo-breach":
            fault = {"predict_latency_ms": int(self.o.parameters["slo_p95_ms"] * 1.5) + 100}
        if self.api_endpoint:
            self.say(f"using the emulator at {self.api_endpoint}")
        else:
            from emulator.launcher import EmulatorProcess

            self.say("starting the Vertex AI emulator ...")
            self.emulator = EmulatorProcess(self.run_dir / "emulator")
            self.emulator.start()
            self.api_endpoint = self.emulator.url
            self.admin = self.emulator
            self.say(f"emulator listening on {self.api_endpoint}")
        if fault:
            self.say(f"fault injected: {self.o.fault} {fault}")
            self.admin.set_faults(fault)
            self.faults_injected = True

    def _connect_emulator(self) -> None:
        from emulator.client import EmulatorAdmin

        self.admin = EmulatorAdmin(self.api_endpoint)
        try:
            self.admin.health()
        except OSError as exc:
            raise RunError(f"no emulator answers at {self.api_endpoint}: {exc}") from None

    def _check_model(self) -> None:
        """--model must exist in the emulator and be deployable there (has a command)."""
        from google.api_core import exceptions

        from components.vertex_clients import model_client

        client = model_client(self.o.location, self.api_endpoint)
        try:
            model = client.get_model(name=self.o.model, timeout=30)
        except exceptions.NotFound:
            raise RunError(
                f"--model {self.o.model} does not exist at {self.api_endpoint}"
            ) from None
        except exceptions.GoogleAPICallError as exc:
            raise RunError(f"--model {self.o.model}: {exc.message}") from None
        if not model.container_spec.command:
            raise RunError(
                f"--model {self.o.model} cannot be deployed by the emulator: its "
                "containerSpec has no command (container images are not pulled)"
            )

    def _register_demo_model(self) -> str:
        from pipelines.local_model import ensure_demo_model, register_model

        model_dir = ensure_demo_model(self.o.cache_dir, self.o.demo_size, self.say)
        name = register_model(
            self.o.project, self.o.location, self.api_endpoint, model_dir, self.o.demo_size
        )
        self.say(f"registered the {self.o.demo_size} demo model as {name}")
        return name

    def _pipeline_arguments(self, model: str) -> dict[str, Any]:
        from components.vertex_clients import resource_uri

        params = dict(self.o.parameters)
        if self.o.fault == "deploy-hang":
            params["deploy_timeout_s"] = min(params["deploy_timeout_s"], DEPLOY_HANG_TIMEOUT_S)
        params.update(
            project=self.o.project,
            location=self.o.location,
            api_endpoint=self.api_endpoint,
            run_id=self.o.run_id,
            model=model,
            model_uri=resource_uri(model, self.o.location, self.api_endpoint),
            locustfile=str(Path(self.o.locustfile).resolve()),
        )
        if not params.get("template"):
            from history.records import git_commit

            params["template"] = git_commit(Path(__file__).parent)
        return params

    def _run_child(self, pipeline_yaml: Path) -> None:
        import psutil

        log_path = self.run_dir / "pipeline.log"
        cmd = [
            sys.executable,
            "-m",
            "pipelines.local_child",
            str(pipeline_yaml),
            str(self.run_dir / "arguments.json"),
            str(self.run_dir / "kfp"),
        ]
        # Everything the run's tasks put in a temporary folder (kfp's workspaces, Locust)
        # lands in the run's own `tmp/`, removed when the run ends.
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(self.tmp_dir.resolve())}
        # The child exits with us, even if we die by SIGKILL: it holds the read end of a
        # pipe whose write end only this process has.
        owner_read, self._owner_fd = os.pipe()
        cmd.append(str(owner_read))
        self.progress = ProgressFilter(self.started)
        with open(log_path, "w") as log:
            try:
                self.child = subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    bufsize=1,
                    env=env,
                    start_new_session=True,
                    pass_fds=(owner_read,),
                )
            finally:
                os.close(owner_read)
            parent = psutil.Process(self.child.pid)
            for line in self.child.stdout:
                log.write(line)
                if time.monotonic() - self._descendants_seen_at > 1.0:
                    self._remember_descendants(parent)
                shown = self.progress.feed(line)
                if shown:
                    self.out(shown, flush=True)
            self.child.wait()

    def _remember_descendants(self, parent) -> None:
        """Note every process under the run (Locust makes its own process group)."""
        import psutil

        self._descendants_seen_at = time.monotonic()
        try:
            for proc in parent.children(recursive=True):
                if proc not in self.descendants:
                    self.descendants.append(proc)
        except psutil.Error:
            pass

    # -- results ----------------------------------------------------------------------

    def _finish(self) -> int:
        results = collect_results(self.run_dir)
        if self.job is not None:
            from pipelines.vertex_run import task_states

            results["tasks"] = task_states(self.job.job)
            results["pipeline_job"] = self.job.job.get("name", "")
        known = [e["name"] for e in (results.get("cleanup") or {}).get("endpoints", [])]
        left = self._left_behind(known)
        if left["endpoints"]:
            # The exit task failed or never ran: clean up ourselves, and say so.
            self.say(f"endpoints left after the pipeline: {left['endpoints']}; cleaning up")
            results["fallback_cleanup"] = json.loads(self._cleanup().to_json())
            left = self._left_behind(known)
        results["left"] = left
        results["cost"] = self._cost(results)
        (self.run_dir / "summary.json").write_text(json.dumps(results, indent=2))
        from reports.run_report import write_run_report

        write_run_report(self.run_dir, self.o.parameters)
        return self._summary(results)

    def _left_behind(self, known_endpoints: list[str] = ()) -> dict[str, list]:
        """Endpoints labelled with this run, and model servers still running for it."""
        from components.endpoint_cleanup import list_run_endpoints
        from components.labels import run_label
        from components.vertex_clients import endpoint_client

        client = endpoint_client(self.o.location, self.api_endpoint)
        label = run_label(self.o.run_id, "")
        endpoints = list_run_endpoints(client, self.o.project, self.o.location, label)
        processes = self.admin.processes()
        if self.emulator is None:
            # a shared emulator may serve other runs: count only this run's endpoints
            ours = set(endpoints) | set(known_endpoints)
            processes = [p for p in processes if p.get("endpoint") in ours]
        return {"endpoints": endpoints, "processes": processes}

    def _cleanup(self):
        from components.endpoint_cleanup import cleanup_run
        from components.labels import run_label

        return cleanup_run(
            project=self.o.project,
            location=self.o.location,
            run_label=run_label(self.o.run_id, ""),
            api_endpoint=self.api_endpoint,
            timeout_s=self.o.parameters["cleanup_timeout_s"],
            log=lambda line: self.say(line),
        )

    def _cost(self, results: dict) -> dict | None:
        """The run's cost over every clean-up record (the exit task's and our fallback's)."""
        from components.cost import run_cost

        records = [results.get(k) for k in ("cleanup", "fallback_cleanup") if results.get(k)]
        if not records:
            return None
        merged = {
            "endpoints": [e for r in records for e in r.get("endpoints", [])],
            "billing_id": records[0].get("billing_id", ""),
        }
        tokens = (results.get("metrics") or {}).get("output_tokens")
        return run_cost(merged, self.o.parameters.get("prices"), tokens)

    def _summary(self, results: dict) -> int:
        from components.llm_metrics import summary_lines
        from components.metrics_schema import evaluate_checks, evaluate_slo, format_slo_table

        p = self.o.parameters
        metrics = results.get("metrics")
        cleanup = results.get("cleanup") or results.get("fallback_cleanup")
        gate_status = results["tasks"].get("slo-gate", "NOT RUN")
        lines = ["", f"deploytest run {self.o.run_id}"]
        if metrics:
            passed, checks = evaluate_slo(
                metrics, p["slo_p95_ms"], p["max_failure_ratio"], p["min_rps"]
            )
            checks += evaluate_checks(metrics, p.get("slo_checks", []))
            passed = all(check.passed for check in checks)
            lines += [
                f"  latency      p50 {metrics['p50_ms']:.0f} ms   p90 {metrics['p90_ms']:.0f} ms"
                f"   p95 {metrics['p95_ms']:.0f} ms   p99 {metrics['p99_ms']:.0f} ms"
                f"   mean {metrics['mean_ms']:.1f} ms",
                f"  throughput   {metrics['rps']:.1f} requests/s, "
                f"{metrics['output_tokens_per_s']:.0f} output tokens/s",
                f"  failures     {metrics['failures']} of {metrics['requests']} "
                f"({metrics['failure_ratio']:.2%})",
                *summary_lines(metrics),
                "  SLO gate:",
                *("    " + row for row in format_slo_table(checks).splitlines()),
            ]
        else:
            passed = False
            lines.append("  load test    did not run (see the failed task above)")
        failed = [t for t, s in results["tasks"].items() if s != "SUCCESS"]
        if failed:
            lines.append(f"  failed tasks {', '.join(failed)}")
        if cleanup:
            deleted = sum(e["deleted"] for e in cleanup["endpoints"])
            undeployed = sum(len(e["undeployed_models"]) for e in cleanup["endpoints"])
            lines.append(
                f"  clean-up     {deleted} endpoint(s) deleted, {undeployed} model(s) undeployed "
                f"in {cleanup['seconds']:.1f}s"
            )
        else:
            lines.append("  clean-up     no record (the exit task did not run)")
        if results.get("cost"):
            from components.cost import describe

            lines.append(f"  cost         {describe(results['cost'])}")
        left = results["left"]
        lines.append(
            f"  left behind  {len(left['endpoints'])} endpoint(s), "
            f"{len(left['processes'])} model-server process(es)"
        )
        judged = (self.run_dir / "verdict.json").is_file() and json.loads(
            (self.run_dir / "verdict.json").read_text()
        )
        if judged:
            from history.recorder import regression_mode

            mode = regression_mode(p["regression"], p["trigger"])
            lines.append(
                f"  regression   {judged['overall']} against {judged['history_runs']} earlier "
                f"run(s) of the series (mode {mode})"
            )
        for name in ("report.html", "metrics.json", "run.json", "cleanup.json", "pipeline.log"):
            if (self.run_dir / name).exists():
                lines.append(f"  {name:<12} {self.run_dir / name}")
        reasons = []
        if failed:
            reasons.append(f"{', '.join(failed)} failed")
        elif not (passed and gate_status == "SUCCESS"):
            reasons.append("the SLO gate did not pass")
        if not (cleanup and cleanup.get("ok", False)):
            reasons.append("clean-up did not finish")
        if left["endpoints"] or left["processes"]:
            reasons.append("resources were left behind")
        verdict = f"FAIL ({'; '.join(reasons)})" if reasons else "PASS"
        lines.append(f"  verdict      {verdict} in {time.monotonic() - self.started:.1f}s")
        for line in lines:
            self.out(line)
        return 1 if reasons else 0

    # -- stopping ---------------------------------------------------------------------

    def _interrupted(self, signum: int) -> int:
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        self.say(f"{signal.Signals(signum).name}: stopping the run, then cleaning up")
        self._cancel_job()
        self._stop_child()
        if self.api_endpoint:
            from components.cost import describe

            try:
                record = self._cleanup()
                self.run_dir.mkdir(parents=True, exist_ok=True)
                data = json.loads(record.to_json())
                if data["endpoints"]:  # else the exit task took them: their cost is not here
                    data["cost"] = self._cost({"cleanup": data})
                    self.say(f"cost: {describe(data['cost'])}")
                record_path = self.run_dir / "cleanup.json"
                if data["endpoints"] or not record_path.is_file():  # keep the exit task's
                    record_path.write_text(json.dumps(data, indent=2))
                left = self._left_behind([e.name for e in record.endpoints])
                self.say(
                    f"left behind: {len(left['endpoints'])} endpoint(s), "
                    f"{len(left['processes'])} model-server process(es)"
                )
            except Exception as exc:  # say it plainly; the emulator stop still ends processes
                self.say(f"clean-up failed: {type(exc).__name__}: {exc}")
        return 128 + signum

    def _cancel_job(self) -> None:
        """--pipeline vertex: cancel the job and wait (bounded) for its exit handler."""
        from pipelines.vertex_run import TERMINAL

        if self.job is None or self.job.job.get("state") in TERMINAL:
            return
        self.say("cancelling the pipeline job; its exit handler cleans up")
        try:
            self.job.cancel()
            job = self.job.wait(timeout_s=120)
            self.say(f"pipeline job {job.get('state', '?').removeprefix('PIPELINE_STATE_')}")
            self._fetch_vertex_outputs(self.admin.client_env())
            collect_results(self.run_dir)  # the exit task's record becomes cleanup.json
        except Exception as exc:  # the clean-up by label below still runs
            self.say(f"cancel failed: {type(exc).__name__}: {exc}")

    def _stop_child(self) -> None:
        import psutil

        if self.child is None or self.child.poll() is not None and not self.descendants:
            return
        if self.child.poll() is None:
            self._remember_descendants(psutil.Process(self.child.pid))
            try:
                os.killpg(self.child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        # Locust runs in a process group of its own: signal every process we saw.
        for proc in self.descendants:
            try:
                proc.terminate()
            except psutil.Error:
                pass
        procs = [psutil.Process(self.child.pid)] if self.child.poll() is None else []
        _, alive = psutil.wait_procs(procs + self.descendants, timeout=10)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        self.child.wait()
        self.descendants = []

    def _stop_emulator(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        elif self.faults_injected:
            self.admin.clear_faults()  # leave a shared emulator as we found it

    def say(self, text: str) -> None:
        self.out(f"[{time.monotonic() - self.started:5.1f}s] {text}", flush=True)


def collect_results(run_dir: Path) -> dict[str, Any]:
    """Copy the report, stats, metrics and clean-up record to the run folder's top level."""
    kfp_root = run_dir / "kfp"
    results: dict[str, Any] = {"tasks": _task_statuses(run_dir / "pipeline.log")}
    found = {p.relative_to(kfp_root).parts[1:]: p for p in kfp_root.glob("*/*/*")}
    for (task, output), path in found.items():
        if task == "locust-load-test" and output == "report" and path.is_file():
            shutil.copy(path, run_dir / "locust-report.html")  # report.html is the run report
        elif task == "record-run" and output == "record" and path.is_dir():
            for name in ("run.json", "verdict.json"):
                if (path / name).is_file():
                    shutil.copy(path / name, run_dir / name)
        elif task == "locust-load-test" and output == "stats" and path.is_dir():
            shutil.copytree(path, run_dir / "stats", dirs_exist_ok=True)
        elif task == "cleanup-endpoints" and output == "record" and path.is_file():
            shutil.copy(path, run_dir / "cleanup.json")
            results["cleanup"] = json.loads(path.read_text())
    metrics = run_dir / "stats" / "metrics.json"
    if metrics.is_file():
        shutil.copy(metrics, run_dir / "metrics.json")
        results["metrics"] = json.loads(metrics.read_text())
    return results


def _task_statuses(log_path: Path) -> dict[str, str]:
    statuses = {}
    if log_path.is_file():
        for line in log_path.read_text().splitlines():
            if m := _TASK_END.search(_ANSI.sub("", line)):
                statuses[m.group(1)] = m.group(2)
    return statuses
