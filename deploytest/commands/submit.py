"""`deploytest submit`: run the pipeline on Vertex AI Pipelines."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from deploytest.commands.options import add_email_option, add_pipeline_options

    p = subparsers.add_parser(
        "submit",
        help="submit the pipeline to Vertex AI Pipelines (--dry-run prints the request)",
        description="Compile the pipeline (or use a template in Artifact Registry) and "
        "create a PipelineJob. Every input is checked, and the locustfile must exist in "
        "Cloud Storage, before anything is created; a template tag is resolved to its "
        "sha256: version first. --dry-run prints the PipelineJob REST body and touches "
        "nothing (no check, no lookup). --wait follows the job and exits 1 unless it "
        "succeeds.",
    )
    p.add_argument("--project", required=True, help="Google Cloud project")
    p.add_argument("--location", default="us-central1", help="region (default: us-central1)")
    p.add_argument("--pipeline-root", required=True, help="gs:// folder for run artifacts")
    p.add_argument("--service-account", required=True, help="the pipeline runner's email")
    p.add_argument("--model", required=True, help="projects/P/locations/L/models/ID[@VERSION]")
    p.add_argument("--locustfile", required=True, help="gs:// path of the locustfile")
    p.add_argument(
        "--template-uri",
        default="",
        help="https://REGION-kfp.pkg.dev/P/REPO/PACKAGE/(TAG|sha256:DIGEST); a tag is "
        "resolved to its version before the job is created; compiled on the fly if empty "
        "(with $DEPLOYTEST_COMPONENT_IMAGE, which must name a pushed image)",
    )
    p.add_argument(
        "--pipeline-file",
        default="",
        help="a pipeline YAML compiled by `deploytest compile` (instead of "
        "a template or compiling here)",
    )
    p.add_argument(
        "--require-version",
        action="store_true",
        help="refuse a --template-uri that names a tag: only a pinned sha256: version "
        "(promotion runs exactly the version the settings pin)",
    )
    p.add_argument("--display-name", default="deploytest", help="the pipeline job's name")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label on the pipeline job (repeatable)",
    )
    p.add_argument(
        "--kms-key-name",
        default="",
        help="Cloud KMS key (CMEK) for the pipeline job and the endpoint it creates; "
        "empty: Google-managed keys",
    )
    add_pipeline_options(p)
    add_email_option(p)
    p.add_argument(
        "--parallelism",
        type=int,
        default=2,
        metavar="N",
        help="right-sizing (--candidate): candidates deployed at once, compiled in (each a "
        "paid endpoint; GPU quota is finite; 1-16, default: %(default)s)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the request, send nothing")
    p.add_argument("--json", action="store_true", help="print only the JSON body")
    p.add_argument(
        "--only-if",
        choices=("true", "false"),
        default="true",
        help="false: check the inputs, then exit 0 without submitting (lets one Cloud Build "
        "config serve triggers that do and do not run the paid load test)",
    )
    p.add_argument(
        "--skip-locustfile-check",
        action="store_true",
        help="create the job without checking that the gs:// locustfile exists",
    )
    p.add_argument(
        "--model-wait-s",
        type=float,
        default=0.0,
        help="wait up to this long for the model to appear in the Model Registry (a "
        "model-upload build may start before the upload has finished); 0: must exist now",
    )
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--poll-s", type=float, default=30.0, help="--wait: seconds between polls")
    p.add_argument(
        "--wait-timeout-s",
        type=float,
        default=6 * 3600.0,
        help="--wait: give up (exit 1) after this long; the job keeps running and cleans up",
    )
    p.add_argument(
        "--api-endpoint",
        default="",
        help="a Vertex AI API endpoint such as http://127.0.0.1:PORT (emulator or test "
        "double); empty: REGION-aiplatform.googleapis.com",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deploytest.commands.options import pipeline_parameters
    from pipelines.submit import SubmitRequest, build_job_body, dumps, to_pipeline_job
    from pipelines.validation import (
        InputError,
        check,
        correctness_files,
        key_values,
        workload_files,
    )

    try:
        check(
            not (args.pipeline_file and args.template_uri),
            "give --template-uri or --pipeline-file, not both",
        )
        check(
            not args.require_version or args.template_uri.rsplit("/", 1)[-1].startswith("sha256:"),
            f"--require-version: --template-uri {args.template_uri!r} must end in a sha256: "
            "version, not a tag",
        )
        check(0.1 <= args.poll_s <= 600, "--poll-s must be within [0.1, 600]")
        check(1 <= args.parallelism <= 16, "--parallelism must be within [1, 16]")
        check(args.wait_timeout_s > 0, "--wait-timeout-s must be > 0")
        check(0 <= args.model_wait_s <= 3600, "--model-wait-s must be within [0, 3600]")
        request = SubmitRequest(
            project=args.project,
            location=args.location,
            pipeline_root=args.pipeline_root,
            service_account=args.service_account,
            model=args.model,
            locustfile=args.locustfile,
            template_uri=args.template_uri,
            display_name=args.display_name,
            labels=key_values(args.label, "label"),
            parameters=workload_files(
                correctness_files(pipeline_parameters(args), local=False), local=False
            ),
            kms_key_name=args.kms_key_name,
            notify_emails=list(args.notify_emails),
            parallelism=args.parallelism,
        )
        body = build_job_body(
            request, _read_spec(args.pipeline_file) if args.pipeline_file else None
        )
        to_pipeline_job(body)  # the body must be a valid aiplatform_v1.PipelineJob
    except InputError as exc:
        print(f"deploytest submit: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        if not args.json:
            print(
                f"# dry run: would POST https://{args.location}-aiplatform.googleapis.com/v1/"
                f"projects/{args.project}/locations/{args.location}/pipelineJobs"
            )
        print(dumps(body))
        return 0
    if _names_placeholder_image(body):
        print(
            "deploytest submit: the pipeline names the placeholder component image, which no "
            "build pushes: pass --template-uri (a template cloudbuild.yaml uploaded), "
            "--pipeline-file compiled with --component-image, or set "
            "DEPLOYTEST_COMPONENT_IMAGE to a pushed image",
            file=sys.stderr,
        )
        return 2
    if args.only_if == "false":
        print("deploytest submit: inputs valid; not submitting (--only-if false)")
        return 0
    return _submit(args, body)


def _read_spec(path: str) -> dict:
    """A compiled pipeline YAML as the PipelineJob's pipelineSpec; InputError if not one."""
    from pathlib import Path

    import yaml

    from pipelines.validation import InputError

    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read --pipeline-file {path}: {exc}") from None
    if not isinstance(spec, dict) or "deploymentSpec" not in spec:
        raise InputError(f"--pipeline-file {path} is not a compiled KFP pipeline")
    return spec


def _names_placeholder_image(body: dict) -> bool:
    """Whether an embedded pipelineSpec names the image no build pushes."""
    from components.image import DEFAULT_IMAGE

    executors = body.get("pipelineSpec", {}).get("deploymentSpec", {}).get("executors", {})
    return any(e.get("container", {}).get("image") == DEFAULT_IMAGE for e in executors.values())


def _submit(args: argparse.Namespace, body: dict) -> int:
    """Check what the run needs, create the job, and (with --wait) follow it."""
    from google.api_core import exceptions
    from google.auth.exceptions import GoogleAuthError

    from pipelines.submit import submit
    from pipelines.validation import InputError

    try:
        _preflight(args, body)
        name = submit(body, args.project, args.location, args.api_endpoint)
    except InputError as exc:
        print(f"deploytest submit: {exc}", file=sys.stderr)
        return 2
    except (exceptions.GoogleAPICallError, GoogleAuthError) as exc:
        print(f"deploytest submit: nothing was created: {exc}", file=sys.stderr)
        return 1
    print(f"submitted {name}")
    print(
        f"https://console.cloud.google.com/vertex-ai/locations/{args.location}/pipelines/runs/"
        f"{name.rsplit('/', 1)[-1]}?project={args.project}",
        flush=True,
    )
    deploy_timeout = body["runtimeConfig"]["parameterValues"].get("deploy_timeout_s")
    return _follow(args, name, deploy_timeout) if args.wait else 0


def _preflight(args: argparse.Namespace, body: dict) -> None:
    """The model and the locustfile exist; a template tag becomes its sha256: version."""
    from deploytest.job_wait import model_exists_getter, wait_for_model
    from pipelines import templates
    from pipelines.submit import check_locustfile_exists
    from pipelines.validation import InputError

    exists = model_exists_getter(args.model, args.location, args.api_endpoint)
    if not wait_for_model(exists, timeout_s=args.model_wait_s, poll_s=min(15, args.poll_s)):
        raise InputError(f"the model {args.model} does not exist in the Model Registry")
    print(f"model {args.model} exists")
    if not args.skip_locustfile_check:
        check_locustfile_exists(args.locustfile, args.project)
        print(f"locustfile {args.locustfile} exists")
    if "templateUri" in body:
        body["templateUri"] = templates.resolve(body["templateUri"])
        print(f"template {body['templateUri']}")


def _follow(args: argparse.Namespace, name: str, deploy_timeout_s: float | None = None) -> int:
    """Exit code of --wait: 0 only if the job succeeded. A deploy that outlives the run's
    deploy timeout gets the job cancelled (job_wait.job_state_getter)."""
    from google.api_core import exceptions

    from deploytest.job_wait import SUCCEEDED, WaitTimeout, job_state_getter, wait_for_job

    get_state = job_state_getter(
        name,
        args.location,
        args.api_endpoint,
        deploy_timeout_s=deploy_timeout_s,
        progress=lambda line: print(line, flush=True),
    )
    try:
        state = wait_for_job(
            get_state,
            poll_s=args.poll_s,
            timeout_s=args.wait_timeout_s,
            progress=lambda line: print(line, flush=True),
        )
    except (WaitTimeout, exceptions.GoogleAPICallError) as exc:
        print(f"deploytest submit: lost track of {name}: {exc}; it keeps running", file=sys.stderr)
        return 1
    if state != SUCCEEDED:
        print(f"deploytest submit: {name} ended {state}", file=sys.stderr)
        return 1
    print(f"{name} succeeded")
    return 0
