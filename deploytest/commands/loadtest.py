"""`deploytest loadtest`: the pipeline's Locust load test against any running endpoint.

No pipeline, nothing deployed or deleted: the same component code (components/runtime/load_test.py)
runs against a Vertex AI endpoint (`--endpoint`, the regional host with a Google access
token, or the emulator with `--api-endpoint`) or any URL with the predict contract (`--url`
and `--predict-path`), and writes Locust's report, its stats and metrics.json into `-o DIR`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Without any SLO a load test still fails past this share of failed requests: a run whose
# every request failed (a wrong --api, a broken server) must not exit 0.
DEFAULT_MAX_FAILURE_RATIO = 0.01


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from deploytest.commands.options import add_workload_options
    from loadtests.apis import API_NAMES, AUTO
    from loadtests.plan import SHAPES

    p = subparsers.add_parser(
        "loadtest",
        help="load-test a running endpoint (Vertex AI or any URL); no pipeline",
        description="Run the pipeline's Locust load test against an endpoint that is already "
        "serving, and write report.html, Locust's stats and metrics.json into -o DIR. "
        "Exits 0, 1 when a given SLO is missed, more than --max-failure-ratio of the "
        f"requests failed (default {DEFAULT_MAX_FAILURE_RATIO}, SLO or not) or Locust "
        "failed, 2 for bad input (before anything is created).",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--endpoint", help="a Vertex AI endpoint, projects/P/locations/L/endpoints/E"
    )
    target.add_argument("--url", help="base URL of any server with the predict contract")
    p.add_argument("--predict-path", default="", help="with --url: the predict path, e.g. /predict")
    p.add_argument(
        "--api-endpoint",
        default="",
        help="with --endpoint: the API host to use, e.g. a `deploytest emulator` URL (no auth); "
        "default https://LOCATION-aiplatform.googleapis.com with a Google access token",
    )
    p.add_argument(
        "--auth",
        choices=("none", "google"),
        default="none",
        help="with --url: send a Google access token (default: none)",
    )
    p.add_argument(
        "--api",
        choices=(AUTO, *API_NAMES),
        default=AUTO,
        help="the serving API to speak (loadtests/apis.py). auto: with --endpoint, from the "
        "deployed model's containerSpec (refused when no rule knows the container); with "
        "--url, from the predict path (/v1/completions, /v1/chat/completions), else our "
        "server's (default: auto)",
    )
    p.add_argument(
        "--tokenizer",
        default="",
        help="the model's tokenizer.json (or its folder), to count output tokens of answers "
        "that carry no count (default: none, counts then estimated and marked so)",
    )
    p.add_argument("-o", "--output-dir", required=True, help="where the results go")
    p.add_argument("--locustfile", default="", help="default: loadtests/locustfile.py")
    load = p.add_argument_group("load")
    load.add_argument("--users", type=int, default=8, help="closed-loop users (default: 8)")
    load.add_argument("--spawn-rate", type=float, default=8.0, help="users/s (default: 8)")
    load.add_argument("--duration", default="20s", help="Locust time span (default: 20s)")
    load.add_argument("--processes", type=int, default=1, help="Locust processes (default: 1)")
    load.add_argument("--max-new-tokens", type=int, default=16, help="default: 16")
    load.add_argument("--stream", action="store_true", help="stream tokens: TTFT, ITL, TPOT")
    load.add_argument("--load-shape", choices=SHAPES, default="users", help="default: users")
    load.add_argument("--rate", type=float, default=None, help="open-loop arrivals per second")
    load.add_argument("--max-concurrency", type=int, default=64, help="open-loop users cap")
    load.add_argument("--steps", default="", help="DURATION:RATE stages, e.g. 10s:5,10s:10")
    load.add_argument("--sweep-rates", default="1,2,4,8,16,32,64", help="rising sweep rates")
    load.add_argument("--stage-s", type=float, default=10.0, help="seconds per sweep stage")
    load.add_argument("--seed", type=int, default=None, help="seed of the arrival schedule")
    add_workload_options(load)  # needs --tokenizer: prompts are built with the model's own
    slo = p.add_argument_group("SLOs (each optional; a missed one exits 1)")
    slo.add_argument("--slo-ttft-ms", type=float, default=None, help="per-request TTFT target")
    slo.add_argument("--slo-tpot-ms", type=float, default=None, help="per-request TPOT target")
    slo.add_argument("--slo-p95-ms", type=float, default=None, help="E2E p95 target")
    slo.add_argument(
        "--max-failure-ratio",
        type=float,
        default=DEFAULT_MAX_FAILURE_RATIO,
        help="most failed/total requests; checked with or without other SLOs, and per sweep "
        f"stage (default: {DEFAULT_MAX_FAILURE_RATIO})",
    )
    slo.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="METRIC<=VALUE",
        help="a check on any metrics.json number, e.g. goodput_ratio>=0.9 (repeatable)",
    )
    add_correctness_options(p)
    p.set_defaults(func=run)


def add_correctness_options(p: argparse.ArgumentParser) -> None:
    """The correctness phase's options (correctness/phase.py)."""
    from correctness.phase import DEFAULT_REFERENCE_MAX_MB, DEFAULT_TOKENS

    group = p.add_argument_group(
        "correctness (checked before the load, with greedy decoding; its requests are not "
        "counted in the load's figures; a missed check exits 1)"
    )
    group.add_argument(
        "--reference-model",
        default="",
        metavar="DIR|gs://…",
        help="the model artifact (a transformers folder) the endpoint should answer as: its "
        "greedy answers to correctness/prompts.txt, in float32, are compared token by token "
        "with the endpoint's (default: no parity check)",
    )
    group.add_argument(
        "--expect",
        default="",
        metavar="FILE",
        help="the team's expectations, JSONL: one prompt per line with checks (equals, "
        "contains, not_contains, regex, json_schema, max_output_tokens, min_output_tokens; "
        "correctness/expectations.py, examples in correctness/examples/)",
    )
    group.add_argument(
        "--parity-tokens",
        type=int,
        default=DEFAULT_TOKENS,
        metavar="K",
        help=f"tokens compared per prompt (default: {DEFAULT_TOKENS})",
    )
    group.add_argument(
        "--min-parity",
        type=float,
        default=1.0,
        help="least share of prompts whose first K tokens match the reference (default: 1.0: "
        "our server on its own artifact matches exactly, see README)",
    )
    group.add_argument(
        "--min-expect-pass",
        type=float,
        default=1.0,
        help="least share of expectations that pass (default: 1.0)",
    )
    group.add_argument(
        "--reference-max-mb",
        type=float,
        default=DEFAULT_REFERENCE_MAX_MB,
        help=f"largest reference model loaded here (default: {DEFAULT_REFERENCE_MAX_MB} MB)",
    )


def correctness_plan(args: argparse.Namespace):
    """The phase's plan from the options; ValueError (naming the file and line, or the
    folder) on bad input, before anything is sent."""
    from correctness.expectations import read_expectations
    from correctness.phase import NONE, Plan

    if not 1 <= args.parity_tokens <= 1024:
        raise ValueError(f"--parity-tokens must be in 1..1024, got {args.parity_tokens}")
    for name in ("min_parity", "min_expect_pass"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in 0..1")
    reference = args.reference_model
    if reference and reference != NONE and not reference.startswith("gs://"):
        if not (Path(reference) / "config.json").is_file():
            raise ValueError(
                f"--reference-model {reference}: not a transformers model folder (no "
                "config.json there)"
            )
        reference = str(Path(reference).resolve())
    expectations = tuple(read_expectations(args.expect)) if args.expect else ()
    return Plan(reference, expectations, args.parity_tokens, args.reference_max_mb)


def correctness_checks(plan, api: str, args: argparse.Namespace) -> list[str]:
    """The gate's checks on the phase's ratios."""
    from loadtests.apis import get_api

    checks = []
    if plan.parity and get_api(api).deterministic:
        checks.append(f"parity_ratio>={args.min_parity}")
    if plan.expectations:
        checks.append(f"expect_pass_ratio>={args.min_expect_pass}")
    return checks


def _serving_api(args: argparse.Namespace) -> tuple[str, str]:
    """(api, why); ValueError when auto finds no rule or the API cannot stream."""
    from components.runtime.serving_api import resolve
    from loadtests.apis import AUTO, auto_api

    if args.api == AUTO and args.locustfile:
        return "deploytest", "auto: a locustfile of your own speaks its own API (given :predict)"
    if args.api == AUTO and args.url:
        try:
            return auto_api({"predictRoute": args.predict_path}, args.stream)
        except ValueError:  # no container to read: our own server's contract
            return "deploytest", "auto: no rule for the predict path, our server's API"
    return resolve(args.api, args.stream, lambda: _deployed_container_spec(args))


def _deployed_container_spec(args: argparse.Namespace) -> dict:
    """The containerSpec of the model that takes most of the endpoint's traffic."""
    from components.runtime.serving_api import container_spec
    from components.vertex_clients import endpoint_client

    location = args.endpoint.split("/")[3]
    endpoint = endpoint_client(location, args.api_endpoint).get_endpoint(name=args.endpoint)
    deployed = list(endpoint.deployed_models)
    if not deployed:
        raise ValueError(f"--api auto: {args.endpoint} has no deployed model: give --api")
    split = dict(endpoint.traffic_split)
    main = max(deployed, key=lambda d: split.get(d.id, 0))
    return container_spec(main.model, location, args.api_endpoint)


def _target(args: argparse.Namespace, api: str, stream: bool | None = None) -> tuple[str, str, str]:
    """(host, path, auth) of the load's requests (`stream`: of streamed or not, default as
    --stream); ValueError on bad input."""
    from components.runtime.load_test import predict_target

    stream = args.stream if stream is None else stream
    if args.endpoint:
        location = args.endpoint.split("/")[3] if args.endpoint.count("/") >= 5 else ""
        return predict_target(args.endpoint, args.api_endpoint, location, api, stream)
    if not args.predict_path:
        raise ValueError("--url needs --predict-path, e.g. /predict")
    if args.api_endpoint:
        raise ValueError("--api-endpoint goes with --endpoint, not --url")
    return args.url.rstrip("/"), args.predict_path, args.auth


def run(args: argparse.Namespace) -> int:
    from components import llm_metrics
    from components.load_options import LoadOptions
    from components.metrics_schema import evaluate_checks, format_slo_table, parse_check
    from components.runtime.load_test import (
        LocustRunError,
        prepare_workload,
        run_locust,
        validate_inputs,
    )
    from deploytest.run.orchestrator import default_locustfile

    locustfile = Path(args.locustfile) if args.locustfile else default_locustfile()
    from google.api_core import exceptions as google_errors

    from deploytest.commands.options import workload_json
    from loadtests.tokens import tokenizer_file
    from loadtests.workload import context_tokens
    from pipelines.validation import InputError

    checks = list(args.slo)
    if args.slo_p95_ms is not None:
        checks.append(f"p95_ms<={args.slo_p95_ms}")
    checks.append(f"failure_ratio<={args.max_failure_ratio}")
    try:
        if args.endpoint and args.endpoint.count("/") < 5:
            raise ValueError(
                "--endpoint must look like projects/P/locations/L/endpoints/E, "
                f"got {args.endpoint!r}"
            )
        if args.tokenizer:
            tokenizer_file(args.tokenizer)
        workload = workload_json(args)
        if workload and not args.tokenizer:
            raise ValueError(
                "--workload/--input-tokens build prompts with the model's tokenizer: give "
                "--tokenizer (the model's tokenizer.json or its folder)"
            )
        api, why = _serving_api(args)
        host, path, auth = _target(args, api)
        context = (
            context_tokens(tokenizer_file(args.tokenizer).with_name("config.json"))
            if args.tokenizer
            else None
        )
        if workload:  # its dataset fetched (gs://) and its requests built once, before load
            workload, context = prepare_workload(
                workload,
                str(tokenizer_file(args.tokenizer)),
                args.output_dir,
                config=tokenizer_file(args.tokenizer).with_name("config.json"),
            )
        load = LoadOptions(
            api=api,
            tokenizer=str(Path(args.tokenizer).resolve()) if args.tokenizer else "",
            stream=args.stream,
            load_shape=args.load_shape,
            rate=args.rate,
            max_concurrency=args.max_concurrency,
            steps=args.steps,
            sweep_rates=args.sweep_rates,
            stage_s=args.stage_s,
            slo_ttft_ms=args.slo_ttft_ms,
            slo_tpot_ms=args.slo_tpot_ms,
            slo_p95_ms=args.slo_p95_ms,
            max_failure_ratio=args.max_failure_ratio,
            seed=args.seed,
            workload=workload,
            context_tokens=context,
        )
        load.validate(args.processes)
        validate_inputs(
            locustfile, host, path, args.users, args.spawn_rate, args.duration,
            args.processes, args.max_new_tokens, auth,
        )  # fmt: skip
        for spec in checks:
            parse_check(spec)
        plan = correctness_plan(args)
        checks += correctness_checks(plan, api, args)
        phase_url = host + (_target(args, api, stream=False)[1] if args.stream else path)
    except (ValueError, FileNotFoundError, InputError) as exc:
        print(f"deploytest loadtest: {exc}", file=sys.stderr)
        return 2
    except google_errors.GoogleAPICallError as exc:  # --api auto could not read the model
        print(f"deploytest loadtest: --api auto: {exc.message}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    print(f"serving API: {api} ({why})", flush=True)
    correctness: dict = {}
    if plan.active:
        from correctness.phase import run_phase

        print(f"correctness phase against {phase_url} ...", flush=True)
        correctness = run_phase(
            phase_url, api, auth, plan, out, log=lambda line: print(line, flush=True)
        )
    print(f"load test of {host}{path}: results in {out}", flush=True)
    try:
        metrics = run_locust(
            locustfile=locustfile,
            host=host,
            path=path,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration=args.duration,
            processes=args.processes,
            out_dir=out,
            max_new_tokens=args.max_new_tokens,
            auth=auth,
            load=load,
            correctness=correctness,
        )
    except LocustRunError as exc:
        print(f"deploytest loadtest: {exc}", file=sys.stderr)
        return 1
    for line in llm_metrics.summary_lines(metrics):
        print(line)
    print(f"  report.html  {out / 'report.html'}\n  metrics.json {out / 'metrics.json'}")
    if correctness:
        print(f"  correctness  {out / 'correctness.json'}")
    results = evaluate_checks(metrics, checks)
    print(format_slo_table(results))
    if metrics["requests"] and metrics["failures"] == metrics["requests"]:
        print(
            f"deploytest loadtest: every request failed ({metrics['failures']}): see "
            f"{out / 'locust_failures.csv'} for why (a wrong --api? the answers' shape is "
            f"checked as {api} answers)",
            file=sys.stderr,
        )
    return 0 if all(check.passed for check in results) else 1
