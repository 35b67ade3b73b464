"""`deploytest emulator`: run the embedded Vertex AI emulator (see emulator/README.md)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

DESCRIPTION = (
    "Run an embedded Vertex AI (a subset of REST v1: Model Registry upload/get/list/delete, "
    "endpoints create/get/list/delete, deployModel/undeployModel, predict/rawPredict, "
    "long-running operations) that the official google-cloud-aiplatform SDK talks to with "
    "api_transport='rest' and api_endpoint='http://HOST:PORT'. A deployed model is the "
    "model's container command run as a local process with the AIP_* variables. State lives "
    "in SQLite under --state-dir and survives a restart. Prints "
    "'emulator listening on http://HOST:PORT' when ready; stop with Ctrl-C or SIGTERM, which "
    "stops every model-server process it started. It also runs an HTTPS proxy on 127.0.0.1 "
    "with its own CA, Cloud Storage and Artifact Registry (KFP templates): with --env-file, "
    "Google's own clients reach all of it with their default hosts once that file is "
    "sourced; any other host gets a 502, nothing is forwarded to the internet."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The emulator's options (shared by `deploytest emulator` and `python -m emulator`)."""
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default: 0)")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path(".deploytest/emulator"),
        help="SQLite state, logs/ and emulator.json (default: %(default)s)",
    )
    p.add_argument(
        "--gcs-dir",
        type=Path,
        default=None,
        help="local stand-in for Cloud Storage: gs://BUCKET/PATH maps to GCS_DIR/BUCKET/PATH "
        "(default: STATE_DIR/gcs)",
    )
    p.add_argument(
        "--deploy-timeout-s",
        type=float,
        default=120.0,
        help="a deploy fails if the model server is not healthy by then (default: %(default)s)",
    )
    p.add_argument(
        "--max-model-servers",
        type=int,
        default=8,
        help="at most this many deployed models (deploying or running) at once; one more "
        "deploy is refused with RESOURCE_EXHAUSTED (default: %(default)s)",
    )
    p.add_argument(
        "--exit-with-fd",
        type=int,
        default=None,
        metavar="FD",
        help="read end of a pipe held open by the emulator's owner: when the owner dies (even "
        "by SIGKILL) the emulator undeploys every model, stops every model server and exits",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=None,
        help="write shell 'export' lines here (HTTPS_PROXY, REQUESTS_CA_BUNDLE, "
        "GOOGLE_APPLICATION_CREDENTIALS, ...) that make Google's Python clients reach this "
        "emulator with their default hosts; removed again on stop",
    )
    p.add_argument(
        "--project",
        default="deploytest-local",
        help="GOOGLE_CLOUD_PROJECT written to the env file (default: %(default)s)",
    )
    p.add_argument(
        "--operation-hold-s",
        type=float,
        default=30.0,
        help="through the HTTPS front, a POST that starts an operation is answered once the "
        "operation is done or after this many seconds, whichever is first (default: "
        "%(default)s; 0 answers at once)",
    )
    p.add_argument(
        "--fault-deploy",
        choices=("fail", "hang"),
        default=None,
        help="inject a deploy fault: 'fail' (server crashes, operation fails) or 'hang' "
        "(operation never completes until undeployed)",
    )
    p.add_argument(
        "--fault-predict-error-rate",
        type=float,
        default=0.0,
        help="share (0-1) of predict calls answered with --fault-predict-error-code",
    )
    p.add_argument(
        "--fault-predict-error-code",
        type=int,
        default=503,
        help="HTTP code of injected predict errors (default: %(default)s)",
    )
    p.add_argument(
        "--local-image",
        action="append",
        default=[],
        metavar="REPOSITORY",
        help="Vertex AI Pipelines: an image repository (e.g. "
        "us-central1-docker.pkg.dev/P/R/components) whose code is installed here, so a "
        "pipeline task naming it runs its command locally; repeatable. GCPC's images, "
        "python:* and DEPLOYTEST_COMPONENT_IMAGE's repository always are",
    )
    p.add_argument(
        "--machine-profiles",
        default=None,
        metavar="FILE|default",
        help="give a model deployed on a machine type the table names that type's container "
        "variables (a step delay, a batch size: emulator/machine_profiles.json is 'default'), "
        "so that machine types differ measurably here; off by default",
    )
    p.add_argument(
        "--fault-deploy-machine-type",
        default="",
        metavar="TYPE",
        help="apply --fault-deploy only to deploys on this machine type (default: every deploy)",
    )
    p.add_argument(
        "--fault-predict-latency-ms",
        type=int,
        default=0,
        help="latency added to every predict call (default: 0)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `deploytest emulator`."""
    p = subparsers.add_parser(
        "emulator",
        help="run the embedded Vertex AI emulator (REST v1 subset) for offline runs and tests",
        description=DESCRIPTION,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the emulator with parsed arguments; returns the exit code."""
    from emulator.errors import ApiError
    from emulator.faults import validate
    from emulator.server import ServerConfig
    from emulator.server import run as serve

    try:
        faults = validate(
            {
                "deploy": args.fault_deploy,
                "predict_error_rate": args.fault_predict_error_rate,
                "predict_error_code": args.fault_predict_error_code,
                "predict_latency_ms": args.fault_predict_latency_ms,
                "deploy_machine_type": args.fault_deploy_machine_type,
            }
        )
        if args.machine_profiles is not None:
            from emulator.machines import MachineProfiles

            MachineProfiles.load(args.machine_profiles)  # a bad table fails here, with exit 2
    except ApiError as err:
        print(f"deploytest emulator: {err.message}")
        return 2
    if args.max_model_servers < 1:
        print("deploytest emulator: --max-model-servers must be >= 1")
        return 2
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", args.project):
        print(f"deploytest emulator: --project {args.project!r} is not a GCP project id")
        return 2
    if not 0 <= args.operation_hold_s <= 600:
        print("deploytest emulator: --operation-hold-s must be between 0 and 600")
        return 2
    if args.env_file is not None and not args.env_file.resolve().parent.is_dir():
        print(f"deploytest emulator: --env-file: no folder {args.env_file.resolve().parent}")
        return 2
    config = ServerConfig(
        state_dir=args.state_dir,
        gcs_dir=args.gcs_dir,
        host=args.host,
        port=args.port,
        deploy_timeout_s=args.deploy_timeout_s,
        faults=faults,
        exit_with_fd=args.exit_with_fd,
        max_model_servers=args.max_model_servers,
        env_file=args.env_file.resolve() if args.env_file else None,
        project=args.project,
        operation_hold_s=args.operation_hold_s,
        machine_profiles=args.machine_profiles,
        local_images=tuple(i.split("@", 1)[0].rsplit(":", 1)[0] for i in args.local_image),
    )
    return serve(config)


def main(argv: list[str] | None = None) -> int:
    """`python -m emulator`: same options as `deploytest emulator`."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))
