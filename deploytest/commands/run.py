"""`deploytest run`: the whole pipeline, offline, against the embedded Vertex AI (the steps
are in deploytest/run/orchestrator.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Local runs favour a quick demo: fewer users, a shorter timeout for a stuck deploy.
LOCAL_DEFAULTS = {
    "deploy_timeout_s": 120,
    "cleanup_timeout_s": 120,
    "history": "OUTPUT_DIR/history",
}
# The demo model streams: show TTFT, TPOT and goodput (targets generous for a CPU).
LOCAL_DEFAULTS.update(stream=True, slo_ttft_ms=1000.0, slo_tpot_ms=100.0)
# vLLM's CPU build takes 35-80 s to answer /health here (engines/README.md).
VLLM_DEPLOY_TIMEOUT_S = 300


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "deploytest"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from deploytest.commands.options import add_pipeline_options
    from deploytest.run.orchestrator import FAULTS

    p = subparsers.add_parser(
        "run",
        help="run the whole pipeline locally, against the embedded Vertex AI",
        description="Start the embedded Vertex AI emulator (or use --api-endpoint), register "
        "the demo GPT-2 model unless --model is given, and submit the pipeline YAML that goes "
        "to Vertex AI, as `deploytest submit` does, to the emulator's Vertex AI Pipelines: "
        "GCPC's launchers create the endpoint and deploy, then the Locust load test, the SLO "
        "gate, and the clean-up exit task. Progress shows the job's tasks. Prints a summary "
        "(also in the run folder's summary.json); exits 0 only if the gate passed and "
        "clean-up left nothing. On Ctrl-C or SIGTERM it cancels the job (its exit handler "
        "cleans up), cleans up by the run's label itself too, and exits 130 or 143. "
        "Use `deploytest submit` for Vertex AI. Every input is checked before anything is "
        "created (exit 2): numbers must be finite and within sane maxima (users <= 10000, "
        "spawn rate <= 10000/s, duration <= 24h, max new tokens 1-4096, timeouts 1 s-24 h, "
        "p95 SLO <= 1 h, min rps <= 1e6).",
    )
    p.add_argument(
        "--api-endpoint",
        default="",
        help="URL of a running `deploytest emulator` to use (default: start one for this run)",
    )
    p.add_argument(
        "--project", default="deploytest-local", help="emulated project (default: deploytest-local)"
    )
    p.add_argument(
        "--location", default="us-central1", help="emulated region (default: us-central1)"
    )
    p.add_argument(
        "--model",
        default="",
        help="a model already registered in the emulator given by --api-endpoint, "
        "projects/P/locations/L/models/ID; it must exist and have a containerSpec.command "
        "(default: build and register the demo model)",
    )
    p.add_argument(
        "--demo-size",
        choices=("tiny", "gpt2"),
        default="tiny",
        help="demo model size when --model is not given (default: tiny)",
    )
    p.add_argument(
        "--serving",
        choices=("deploytest", "vllm"),
        default="deploytest",
        help="what serves the demo model: our model server, or vllm, the real vLLM engine's "
        "OpenAI server (its CPU build: `make vllm` installs it; about 40 s to start; the "
        "deploy timeout becomes at least 300 s) as a custom container whose predict route "
        "is /v1/completions, so --api auto picks openai-completions (default: deploytest)",
    )
    p.add_argument(
        "--locustfile", default="", help="locustfile to run (default: loadtests/locustfile.py)"
    )
    p.add_argument(
        "--fault",
        choices=sorted(FAULTS),
        default="",
        help="inject a fault to watch the exit handler clean up: deploy-fail, deploy-hang "
        "(deploy timeout cut to 10 s), predict-errors (half the predictions fail), "
        "slo-breach (predictions slower than the p95 SLO), wrong-answers (the endpoint "
        "serves other weights than the model's artifact: the correctness gate fails)",
    )
    p.add_argument(
        "--fault-machine-type",
        default="",
        metavar="TYPE",
        help="with --fault deploy-fail or deploy-hang: only deploys on this machine type "
        "fail (e.g. one right-sizing candidate; default: every deploy)",
    )
    p.add_argument(
        "--output-dir",
        default="runs",
        help="where run folders go: a writable directory, or a new one whose parent exists "
        "(default: runs)",
    )
    p.add_argument(
        "--cache-dir",
        default=str(_cache_dir()),
        help="where the demo model is built once (default: %(default)s)",
    )
    p.add_argument(
        "--run-id",
        default="",
        help="the run's id and label; a run folder that exists already is refused "
        "(default: generated)",
    )
    add_pipeline_options(p, LOCAL_DEFAULTS)
    p.set_defaults(func=run)


def _demo_context(args: argparse.Namespace) -> int | None:
    """The demo model's context in tokens (None for a model of the user's own: the
    load-test task checks it against the model's config.json)."""
    from serving.demo_model import SIZES

    return None if args.model else SIZES[args.demo_size].n_positions


def run(args: argparse.Namespace) -> int:
    from components.runtime.make_labels import label_value
    from deploytest.commands.options import pipeline_parameters
    from deploytest.run.orchestrator import LocalRun, RunOptions, default_locustfile, new_run_id
    from deploytest.run.pipeline_job import check_job_id
    from pipelines import validation as check

    try:
        params = pipeline_parameters(args)
        check.project(args.project)
        check.location(args.location)
        if args.model:
            check.model_resource(args.model)
            check.check(
                bool(args.api_endpoint),
                "--model needs --api-endpoint: a run's own emulator starts empty",
            )
        if args.serving == "vllm":
            check.check(not args.model, "--serving vllm serves the demo model: not with --model")
            try:
                from engines.vllm import vllm_python

                vllm_python()
            except RuntimeError as exc:
                raise check.InputError(str(exc)) from None
            if params["deploy_timeout_s"] == LOCAL_DEFAULTS["deploy_timeout_s"]:
                params["deploy_timeout_s"] = VLLM_DEPLOY_TIMEOUT_S
        check.check(
            not args.fault_machine_type or args.fault in ("deploy-fail", "deploy-hang"),
            "--fault-machine-type narrows --fault deploy-fail or deploy-hang",
        )
        if args.fault_machine_type:
            from pipelines.candidates import check_candidate

            check_candidate({"machine_type": args.fault_machine_type}, "--fault-machine-type")
        if params["history"] == LOCAL_DEFAULTS["history"]:
            params["history"] = str(Path(args.output_dir) / "history")
        check.pipeline_parameters(params)
        params = check.correctness_files(params, local=True)
        params = check.workload_files(params, local=True, context_tokens=_demo_context(args))
        params["reference_cache"] = str(Path(args.cache_dir).resolve() / "reference-answers")
        check.check(
            not params["notify_webhook_secret"],
            "--notify-secret needs Secret Manager, which the embedded Vertex AI does not "
            "emulate: give the loopback URL as --notify",
        )
        if params["history"] and not params["history"].startswith("gs://"):
            # the pipeline's tasks run in other folders: give them an absolute path
            params["history"] = str(Path(params["history"]).resolve())
        locustfile = Path(args.locustfile) if args.locustfile else default_locustfile()
        check.check(locustfile.is_file(), f"no such locustfile: {locustfile}")
        check.check(
            not args.api_endpoint or args.api_endpoint.startswith(("http://", "https://")),
            f"invalid --api-endpoint {args.api_endpoint!r}: expected http://HOST:PORT",
        )
        run_id = label_value(args.run_id) if args.run_id else new_run_id()
        check.check(bool(run_id), f"invalid --run-id {args.run_id!r}")
        try:
            check_job_id(run_id)  # the run id is the pipeline job id
        except ValueError as exc:
            raise check.InputError(str(exc)) from None
        output_dir = check.output_dir(args.output_dir)
        check.check(
            not (output_dir / run_id).exists(),
            f"run folder {output_dir / run_id} exists already: give another --run-id",
        )
    except check.InputError as exc:
        print(f"deploytest run: {exc}", file=sys.stderr)
        return 2
    options = RunOptions(
        project=args.project,
        location=args.location,
        api_endpoint=args.api_endpoint.rstrip("/"),
        model=args.model,
        locustfile=str(locustfile),
        output_dir=output_dir,
        cache_dir=Path(args.cache_dir),
        demo_size=args.demo_size,
        fault=args.fault,
        serving=args.serving,
        fault_machine_type=args.fault_machine_type,
        parameters=params,
        run_id=run_id,
    )
    return LocalRun(options).execute()
