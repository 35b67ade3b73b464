"""`deploytest run`: the whole pipeline, offline, on the production path.

The steps, in order (`LocalRun._run`): check inputs that need the emulator, make the run
folder, start the embedded Vertex AI (or use one), register the demo model, stage the
locustfile in Cloud Storage, compile the one pipeline, submit it as a `PipelineJob` with the
code of `deploytest submit`, follow its task states, fetch its outputs, and finish (results,
a fallback clean-up by label if the exit task did not clean up, summary.json, the run
report, the summary). On SIGINT/SIGTERM it cancels the job, waits for its exit handler,
cleans up by the run's label itself too, and exits 130/143 with nothing left.
"""

from __future__ import annotations

import json
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploytest.run.progress import Progress

FAULTS: dict[str, dict[str, Any]] = {
    "deploy-fail": {"deploy": "fail"},
    "deploy-hang": {"deploy": "hang"},
    "predict-errors": {"predict_error_rate": 0.5},
    # latency is set from the p95 SLO at run time
    "slo-breach": {},
    # the emulator deploys a noisy copy of the artifact's weights (emulator/faults.py)
    "wrong-answers": {"deploy": "wrong-weights"},
}
# A hung deploy would otherwise hold the run for the whole deploy timeout.
DEPLOY_HANG_TIMEOUT_S = 10
# The emulator's own bound on one deploy, unless the run allows more.
EMULATOR_DEPLOY_TIMEOUT_S = 120
# How long a cancelled job may take to run its exit handler before we clean up ourselves.
CANCEL_WAIT_S = 120


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
    # also the pipeline job id, so the run label is both (pipelines/pipeline.py)
    run_id: str = field(default_factory=lambda: new_run_id())
    serving: str = "deploytest"  # what serves the demo model: ours, or vllm
    fault_machine_type: str = ""  # the deploy fault hits only this machine type ("": all)


def new_run_id() -> str:
    return time.strftime("local-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(2)


def default_locustfile() -> Path:
    import loadtests

    return Path(loadtests.__file__).with_name("locustfile.py")


class LocalRun:
    """One `deploytest run`: everything it started is stopped when `execute` returns."""

    def __init__(self, options: RunOptions, out=print):
        self.o = options
        self.out = out
        self.progress = Progress(out)
        self.say = self.progress.say
        self.run_dir = options.output_dir / options.run_id
        self.emulator = None  # the EmulatorProcess this run started, if any
        self.admin = None
        self.api_endpoint = options.api_endpoint
        self.faults_injected = False
        self.job = None  # the pipeline job's follower, once submitted
        self.api_choice: dict[str, str] = {}  # the serving API and why (summary.json)
        self.params = dict(options.parameters)
        if options.fault == "deploy-hang":
            self.params["deploy_timeout_s"] = min(
                self.params["deploy_timeout_s"], DEPLOY_HANG_TIMEOUT_S
            )

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
            self._stop_emulator()
            for s, handler in previous.items():
                signal.signal(s, handler)

    # -- the steps -------------------------------------------------------------------

    def _run(self) -> int:
        if self.api_endpoint:
            self._connect_emulator()  # before the run folder: a bad URL creates nothing
            if self.o.model:
                self._check_model()
        self._make_run_dir()
        self._start_emulator()
        model = self.o.model or self._register_demo_model()
        self._resolve_api(model)
        env = self.admin.client_env()
        root, locustfile = self._stage_locustfile(env)
        spec_path = self._compile()
        name = self._submit(spec_path, root, model, locustfile)
        self._follow(name)
        self._fetch_outputs(env)
        return self._finish()

    def _make_run_dir(self) -> None:
        self.o.output_dir.mkdir(exist_ok=True)  # only the last folder: its parent was checked
        try:
            # Exclusive: two runs with one --run-id never share a folder or an emulator state.
            self.run_dir.mkdir()
        except FileExistsError:
            raise RunError(
                f"run folder {self.run_dir} exists already: give another --run-id"
            ) from None
        self.say(f"run {self.o.run_id}: output in {self.run_dir}")

    def _start_emulator(self) -> None:
        fault = FAULTS.get(self.o.fault, {}) if self.o.fault else {}
        if self.o.fault == "slo-breach":
            fault = {"predict_latency_ms": int(self.params["slo_p95_ms"] * 1.5) + 100}
        if fault and self.o.fault_machine_type:
            fault = {**fault, "deploy_machine_type": self.o.fault_machine_type}
        extra = []
        if self.params["candidates"]:
            # machine types differ measurably only through the emulator's table (its README)
            extra = ["--machine-profiles", "default"]
        if self.api_endpoint:
            self.say(f"using the emulator at {self.api_endpoint}")
        else:
            from emulator.launcher import EmulatorProcess

            self.say("starting the Vertex AI emulator ...")
            # The emulator bounds each deploy by its own timeout (120 s by default): at least
            # the run's, so a slow model server (vLLM's cold start on a CPU) has the time
            # the run gives it; the run's own watchdog keeps the run's bound.
            timeout = str(max(EMULATOR_DEPLOY_TIMEOUT_S, self.params["deploy_timeout_s"]))
            self.emulator = EmulatorProcess(
                self.run_dir / "emulator", extra_args=["--deploy-timeout-s", timeout, *extra]
            )
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
        from deploytest.run.demo_model import ensure_demo_model, register_model

        model_dir = ensure_demo_model(self.o.cache_dir, self.o.demo_size, self.say)
        name = register_model(
            self.o.project,
            self.o.location,
            self.api_endpoint,
            model_dir,
            self.o.demo_size,
            self.o.serving,
            self.run_dir / "vllm",  # vLLM's caches and temporary files stay in the run
        )
        served = "" if self.o.serving == "deploytest" else f", served by {self.o.serving}"
        self.say(f"registered the {self.o.demo_size} demo model{served} as {name}")
        return name

    def _resolve_api(self, model: str) -> None:
        """The serving API, before anything is deployed (the pipeline's first task checks it
        again): `auto` reads the model's containerSpec; a container no rule knows stops the
        run here (exit 2)."""
        from components.runtime.serving_api import container_spec, resolve

        try:
            api, why = resolve(
                self.params["api"],
                bool(self.params["stream"]),
                lambda: container_spec(model, self.o.location, self.api_endpoint),
                self.params["workload"],
            )
        except ValueError as exc:
            raise RunError(str(exc)) from None
        self.params["api"] = api
        self.api_choice = {"api": api, "why": why}
        self.say(f"serving API: {api} ({why})")

    def _stage_locustfile(self, env: dict[str, str]) -> tuple[str, str]:
        from deploytest.run import pipeline_job

        with pipeline_job.client_environment(env):
            root, locustfile = pipeline_job.stage_locustfile(
                self.o.project, self.o.run_id, self.o.locustfile
            )
        self.say(f"staged the locustfile as {locustfile}")
        return root, locustfile

    def _compile(self) -> Path:
        from pipelines.compile import compile_pipeline

        # Offline the candidates go one at a time: side by side they would share this
        # machine's CPU and measure each other.
        spec_path = compile_pipeline(
            self.run_dir / "pipeline.yaml", rightsize=bool(self.params["candidates"])
        )
        self.say(f"compiled the pipeline to {spec_path}")
        return spec_path

    def _submit(self, spec_path: Path, root: str, model: str, locustfile: str) -> str:
        """Submit as `deploytest submit` does (pipelines/submit.py); return the job name."""
        import yaml

        from deploytest.run.pipeline_job import RUNNER_ACCOUNT
        from pipelines.submit import SubmitRequest, build_job_body, submit

        params = dict(self.params)
        if not params.get("template"):
            from history.records import git_commit

            params["template"] = git_commit(Path(__file__).parent)
        request = SubmitRequest(
            project=self.o.project,
            location=self.o.location,
            pipeline_root=root,
            service_account=RUNNER_ACCOUNT.format(project=self.o.project),
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
        return name

    def _follow(self, name: str) -> None:
        """Show task states and the tasks' log lines until the job ends; keep the run's
        deploy timeout, which GCPC's deploy launcher does not, by cancelling the job."""
        from deploytest.job_wait import deploy_cancel_message
        from deploytest.run.pipeline_job import JobFollower

        self.job = JobFollower(self.api_endpoint, name, self.say, self.progress.task_line)
        deploy_timeout = self.params["deploy_timeout_s"]
        timed_out = False

        def deploy_watchdog(follower: JobFollower) -> None:
            nonlocal timed_out
            if not timed_out and (ran := follower.deploy_overrun(deploy_timeout)):
                timed_out = True
                self.say(deploy_cancel_message(ran, deploy_timeout))
                follower.cancel()

        job = self.job.wait(timeout_s=7 * 24 * 3600, on_poll=deploy_watchdog)
        self.say(f"pipeline job {job.get('state', '?').removeprefix('PIPELINE_STATE_')}")

    def _fetch_outputs(self, env: dict[str, str]) -> None:
        from deploytest.run import pipeline_job
        from emulator.client import EmulatorAdmin

        with pipeline_job.client_environment(env):
            pipeline_job.fetch_outputs(self.job.job["name"], self.run_dir / "kfp")
        log = EmulatorAdmin(self.api_endpoint).pipeline_log(self.o.run_id)  # tasks' output
        if log:
            (self.run_dir / "pipeline.log").write_bytes(log)

    # -- results ----------------------------------------------------------------------

    def _finish(self) -> int:
        from deploytest.run import summary
        from deploytest.run.pipeline_job import task_states
        from deploytest.run.results import collect_results, run_cost

        results: dict[str, Any] = {"run_id": self.o.run_id, **collect_results(self.run_dir)}
        results["pipeline_job"] = self.job.job.get("name", "")
        results["serving_api"] = self.api_choice
        results["tasks"] = task_states(self.job.job)
        known = [e["name"] for e in (results.get("cleanup") or {}).get("endpoints", [])]
        left = self._left_behind(known)
        if left["endpoints"]:
            # The exit task failed or never ran: clean up ourselves, and say so.
            self.say(f"endpoints left after the pipeline: {left['endpoints']}; cleaning up")
            results["fallback_cleanup"] = json.loads(self._cleanup().to_json())
            left = self._left_behind(known)
        results["left"] = left
        results["cost"] = run_cost(results, self.params.get("prices"))
        results["outcome"] = summary.judge(results, self.params)
        results["seconds"] = round(time.monotonic() - self.progress.started, 1)
        (self.run_dir / "summary.json").write_text(json.dumps(results, indent=2))
        from reports.run_report import write_run_report

        write_run_report(self.run_dir, self.params)
        for line in summary.lines(results, self.params, self.run_dir):
            self.out(line)
        return 0 if results["outcome"]["verdict"] == "PASS" else 1

    def _left_behind(self, known_endpoints: list[str] = ()) -> dict[str, list]:
        """Endpoints labelled with this run, and model servers still running for it."""
        from components.runtime.cleanup import list_run_endpoints
        from components.runtime.make_labels import run_label
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
        from components.runtime.cleanup import cleanup_run
        from components.runtime.make_labels import run_label

        return cleanup_run(
            project=self.o.project,
            location=self.o.location,
            run_label=run_label(self.o.run_id, ""),
            api_endpoint=self.api_endpoint,
            timeout_s=self.params["cleanup_timeout_s"],
            log=self.say,
        )

    # -- stopping ---------------------------------------------------------------------

    def _interrupted(self, signum: int) -> int:
        """Cancel the job (its exit handler cleans up), clean up by the run's label too, and
        keep what happened in summary.json with the verdict CANCELLED."""
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        name = signal.Signals(signum).name
        self.say(f"{name}: stopping the run, then cleaning up")
        self._cancel_job()
        if self.api_endpoint and self.admin is not None and self.run_dir.is_dir():
            try:
                self._record_interrupted(name)
            except Exception as exc:  # say it plainly; the emulator stop still ends processes
                self.say(f"clean-up failed: {type(exc).__name__}: {exc}")
        return 128 + signum

    def _record_interrupted(self, signame: str) -> None:
        from components.cost import describe
        from deploytest.run.pipeline_job import task_states
        from deploytest.run.results import collect_results, run_cost

        results: dict[str, Any] = {"run_id": self.o.run_id, **collect_results(self.run_dir)}
        if self.job is not None:
            results["pipeline_job"] = self.job.job.get("name", "")
            results["tasks"] = task_states(self.job.job)
        record = self._cleanup()
        data = json.loads(record.to_json())
        if data["endpoints"] or "cleanup" not in results:  # else the exit task took them
            results["fallback_cleanup"] = data
            data["cost"] = run_cost({"cleanup": data}, self.params.get("prices"))
            self.say(f"cost: {describe(data['cost'])}")
            (self.run_dir / "cleanup.json").write_text(json.dumps(data, indent=2))
        known = [e["name"] for r in (results.get("cleanup"), data) if r for e in r["endpoints"]]
        left = self._left_behind(known)
        self.say(
            f"left behind: {len(left['endpoints'])} endpoint(s), "
            f"{len(left['processes'])} model-server process(es)"
        )
        results["left"] = left
        results["serving_api"] = self.api_choice
        results["cost"] = run_cost(results, self.params.get("prices"))
        results["outcome"] = {
            "verdict": "CANCELLED",
            "reasons": [f"{signame} arrived"],
            "failed_tasks": [],
            "checks": [],
        }
        results["seconds"] = round(time.monotonic() - self.progress.started, 1)
        (self.run_dir / "summary.json").write_text(json.dumps(results, indent=2))

    def _cancel_job(self) -> None:
        """Cancel the job and wait (bounded) for its exit handler."""
        from deploytest.job_wait import TERMINAL_STATES

        if self.job is None or self.job.job.get("state") in TERMINAL_STATES:
            return
        self.say("cancelling the pipeline job; its exit handler cleans up")
        try:
            self.job.cancel()
            job = self.job.wait(timeout_s=CANCEL_WAIT_S)
            self.say(f"pipeline job {job.get('state', '?').removeprefix('PIPELINE_STATE_')}")
            self._fetch_outputs(self.admin.client_env())  # the exit task's record
        except Exception as exc:  # the clean-up by label below still runs
            self.say(f"cancel failed: {type(exc).__name__}: {exc}")

    def _stop_emulator(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        elif self.faults_injected:
            self.admin.clear_faults()  # leave a shared emulator as we found it
        if self.o.serving == "vllm":
            from engines.vllm import remove_ipc_dir

            remove_ipc_dir(self.run_dir / "vllm")  # its sockets, if they lived outside the run
