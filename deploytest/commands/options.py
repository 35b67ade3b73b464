"""Command-line options shared by `deploytest run` and `deploytest submit`.

Each option maps to one pipeline parameter of `pipelines.pipeline.DEFAULTS`, so the two
commands cannot drift apart.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.pipeline import DEFAULTS

# option name -> (pipeline parameter, type, help)
_OPTIONS: dict[str, tuple[str, type, str]] = {
    "--machine-type": ("machine_type", str, "machine type per replica"),
    "--accelerator-type": (
        "accelerator_type",
        str,
        "accelerator per replica, e.g. NVIDIA_TESLA_T4 (none if empty)",
    ),
    "--accelerator-count": ("accelerator_count", int, "accelerators per replica"),
    "--min-replicas": ("min_replicas", int, "minimum replicas"),
    "--max-replicas": ("max_replicas", int, "maximum replicas"),
    "--users": ("users", int, "concurrent Locust users"),
    "--spawn-rate": ("spawn_rate", float, "users started per second"),
    "--duration": ("duration", str, "load-test length in Locust's format: 20s, 2m, 1h30m"),
    "--processes": ("processes", int, "Locust worker processes; -1 for one per core"),
    "--max-new-tokens": ("max_new_tokens", int, "tokens generated per request"),
    "--slo-p95-ms": ("slo_p95_ms", float, "gate: maximum p95 latency in ms"),
    "--max-failure-ratio": ("max_failure_ratio", float, "gate: maximum failed/total requests"),
    "--min-rps": ("min_rps", float, "gate: minimum requests per second"),
    "--api": (
        "api",
        str,
        "the serving API the load test speaks: auto (from the model's containerSpec, before "
        "the deploy), deploytest, openai-completions, openai-chat, vertex-vllm, tgi, "
        "hf-inference-toolkit",
    ),
    "--load-shape": (
        "load_shape",
        str,
        "users (closed loop), rate (Poisson arrivals at --rate), steps (--steps), sweep "
        "(--sweep-rates until an SLO breaks: the knee)",
    ),
    "--rate": ("rate", float, "open-loop arrivals per second (--load-shape rate)"),
    "--max-concurrency": ("max_concurrency", int, "users carrying open-loop arrivals"),
    "--steps": ("steps", str, "stages DURATION:RATE,... for --load-shape steps"),
    "--sweep-rates": ("sweep_rates", str, "rising rates for --load-shape sweep"),
    "--stage-s": ("stage_s", float, "seconds per sweep stage"),
    "--slo-ttft-ms": ("slo_ttft_ms", float, "goodput: per-request TTFT target, ms (0: none)"),
    "--slo-tpot-ms": ("slo_tpot_ms", float, "goodput: per-request TPOT target, ms (0: none)"),
    "--deploy-timeout-s": (
        "deploy_timeout_s",
        int,
        "how long the deploy may take: GCPC's ModelDeployOp takes no timeout, so `deploytest "
        "run` and `deploytest submit --wait` cancel the job when its deploy task runs longer "
        "(a job submitted without --wait, or by Cloud Scheduler, waits as long as Vertex AI's "
        "deploy operation runs)",
    ),
    "--cleanup-timeout-s": ("cleanup_timeout_s", int, "bound on the whole clean-up"),
    "--history": ("history", str, "run history: a folder or gs://BUCKET/PREFIX (empty: none)"),
    "--regression": (
        "regression",
        str,
        "on a regression against history: fail, warn or off (empty: fail for scheduled runs, "
        "warn otherwise)",
    ),
    "--trigger": ("trigger", str, "what started the run: manual, merge, model-upload, schedule"),
    "--template": ("template", str, "the template tag or git commit (recorded in run.json)"),
    "--reference-model": (
        "reference_model",
        str,
        "correctness: the model the endpoint should answer as, greedy and in float32, token "
        "by token: artifact (the deployed model's own artifactUri), none, or a transformers "
        "folder / gs:// prefix",
    ),
    "--expect": (
        "expectations",
        str,
        "correctness: the team's expectations, JSONL (correctness/expectations.py; examples "
        "in correctness/examples/); a path here, gs:// for Vertex",
    ),
    "--parity-tokens": ("parity_tokens", int, "correctness: K, tokens compared per prompt"),
    "--min-parity": (
        "min_parity",
        float,
        "gate: least share of prompts whose first K tokens match the reference",
    ),
    "--min-expect-pass": ("min_expect_pass", float, "gate: least share of expectations met"),
    "--reference-max-mb": (
        "reference_max_mb",
        float,
        "correctness: the largest reference model loaded by the load-test task",
    ),
    "--correctness-drift": (
        "correctness_drift",
        str,
        "gate: answers that differ from the series' last PASS run (needs --history): fail, "
        "warn or off",
    ),
    "--notify": (
        "notify_webhook",
        str,
        "a webhook URL for the message when the run ends (Google Chat / Slack JSON "
        '{"text": ...}, the facts under "deploytest"): https, or http to a loopback host',
    ),
    "--notify-secret": (
        "notify_webhook_secret",
        str,
        "on Vertex AI: a Secret Manager secret version holding the webhook URL, "
        "projects/P/secrets/S/versions/V",
    ),
    "--notify-topic": (
        "notify_topic",
        str,
        "a Pub/Sub topic for the message when the run ends, projects/P/topics/T",
    ),
    "--notify-timeout-s": (
        "notify_timeout_s",
        float,
        "bound on sending the message, every destination together (0.1-300 s); a failing "
        "destination never fails the clean-up",
    ),
    "--required-rps": (
        "required_rps",
        float,
        "right-sizing: the requests/s the model must carry; the recommendation is the "
        "cheapest candidate (with as many replicas as it needs) that carries it (0: the "
        "lowest price per million output tokens at the knee)",
    ),
    "--required-tokens-per-s": (
        "required_tokens_per_s",
        float,
        "right-sizing: the output tokens/s the model must carry (0: none)",
    ),
}


def add_candidate_options(group) -> None:
    """`--candidate`, `--candidates` (run, submit, compile's --rightsize): right-sizing."""
    group.add_argument(
        "--candidate",
        action="append",
        dest="candidate_specs",
        default=[],
        metavar="MACHINE[,ACCELERATOR:COUNT][,replicas=N]",
        help="right-sizing: one machine shape to deploy and sweep to its knee, e.g. "
        "n1-standard-8 or g2-standard-8,NVIDIA_L4:1,replicas=2 (repeatable; two or more: "
        "each its own endpoint, then the cheapest that meets the SLO is recommended; needs "
        "--load-shape sweep)",
    )
    group.add_argument(
        "--candidates",
        dest="candidates_file",
        default="",
        metavar="FILE",
        help="right-sizing: a JSON list of candidates, each {machine_type, accelerator_type, "
        "accelerator_count, replicas} (with --candidate: both)",
    )


def candidates_from(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The candidates the options give, checked ([] for a single run)."""
    from pipelines.candidates import check_candidates, parse_spec, read_file

    found = [parse_spec(s) for s in getattr(args, "candidate_specs", [])]
    if getattr(args, "candidates_file", ""):
        found += read_file(args.candidates_file)
    return check_candidates(found)


def add_workload_options(group) -> None:
    """`--workload`, `--input-tokens`, `--output-tokens` (run, submit, loadtest)."""
    group.add_argument(
        "--workload",
        dest="workload_spec",
        default="",
        metavar="FILE|NAME",
        help="the workload (loadtests/workload.py): a YAML or JSON spec of input and output "
        "lengths in tokens (fixed, normal, uniform), a ShareGPT or JSONL dataset, a shared "
        "prefix, chat sessions; or a NAME in loadtests/workloads/ (e.g. sharegpt-mini). "
        "Prompts are built with the model's own tokenizer, exactly (default: the prompts "
        "file with --max-new-tokens)",
    )
    group.add_argument(
        "--input-tokens",
        type=int,
        default=None,
        metavar="N",
        help="every prompt exactly N tokens (over the workload's input_tokens)",
    )
    group.add_argument(
        "--output-tokens",
        type=int,
        default=None,
        metavar="N",
        help="ask for exactly N output tokens a request where the API allows it (vLLM's "
        "ignore_eos, our server's): over the workload's output_tokens",
    )


def workload_json(args: argparse.Namespace) -> str:
    """The workload the options give, as the pipeline parameter's canonical JSON ("" for
    none); InputError names the bad field, file or line."""
    import json

    from loadtests.workload import WorkloadError, from_flags, load_workload
    from pipelines.validation import InputError

    try:
        workload = load_workload(args.workload_spec) if args.workload_spec else None
        workload = from_flags(workload, args.input_tokens, args.output_tokens)
    except WorkloadError as exc:
        raise InputError(str(exc)) from None
    return json.dumps(workload.to_spec(), sort_keys=True) if workload else ""


def add_pipeline_options(parser: argparse.ArgumentParser, defaults: dict | None = None) -> None:
    """Add the deploy, load and SLO options; `defaults` overrides the pipeline defaults."""
    values = {**DEFAULTS, **(defaults or {})}
    group = parser.add_argument_group("deployment, load test and SLO gate")
    for option, (param, kind, text) in _OPTIONS.items():
        group.add_argument(
            option,
            dest=param,
            type=kind,
            # --rate has no default: an explicit 0 is an error, not "unset" (see below).
            default=None if param == "rate" else values[param],
            help=f"{text} (default: {values[param]!r})",
        )
    group.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=values["stream"],
        help="stream tokens through :streamRawPredict and measure TTFT, ITL and TPOT "
        f"(default: {values['stream']!r})",
    )
    group.add_argument(
        "--slo",
        action="append",
        dest="slo_checks",
        default=[],
        metavar="METRIC<=VALUE",
        help="gate: one more check on any metrics.json number, e.g. ttft_p95_ms<=500 or "
        "goodput_ratio>=0.9 (repeatable)",
    )
    group.add_argument(
        "--cost-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a team cost label for every created resource (repeatable)",
    )
    group.add_argument(
        "--price",
        action="append",
        default=[],
        metavar="TYPE=USD_PER_HOUR",
        help="hourly price of a machine or accelerator type for the run's cost, over the "
        "table in components/prices.json (repeatable), e.g. NVIDIA_TESLA_T4=0.40",
    )
    add_workload_options(group)
    add_candidate_options(group)


def pipeline_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline parameters the options above set."""
    from pipelines.validation import InputError, key_values

    params = {param: getattr(args, param) for param, _, _ in _OPTIONS.values()}
    params["cost_labels"] = key_values(args.cost_label, "cost label")
    params["prices"] = key_values(args.price, "price")
    if params["rate"] is None:
        params["rate"] = DEFAULTS["rate"]
    elif not params["rate"] > 0:
        raise InputError(f"--rate must be > 0 requests/s, got {params['rate']:g}")
    params["stream"] = args.stream
    params["slo_checks"] = list(args.slo_checks)
    params["workload"] = workload_json(args)
    params["candidates"] = candidates_from(args)
    return params


def add_email_option(parser: argparse.ArgumentParser) -> None:
    """`--notify-email` (compile and submit: Vertex AI only, compiled into the pipeline)."""
    parser.add_argument(
        "--notify-email",
        action="append",
        dest="notify_emails",
        default=[],
        metavar="ADDRESS",
        help="Vertex AI only: also email the run's final state with GCPC's "
        "VertexNotificationEmailOp, compiled into the pipeline after the exit handler "
        "(repeatable; the embedded Vertex AI does not run it)",
    )
