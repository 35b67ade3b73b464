"""`deploytest submit`: run the pipeline on Vertex AI Pipelines."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from pipelines.cli_args import add_pipeline_options

    p = subparsers.add_parser(
        "submit",
        help="submit the pipeline to Vertex AI Pipelines (--dry-run prints the request)",
        description="Compile the Vertex op set (or use a template in Artifact Registry) and "
        "create a PipelineJob. Every input is checked before anything is sent. --dry-run "
        "prints the PipelineJob REST body and touches nothing.",
    )
    p.add_argument("--project", required=True, help="Google Cloud project")
    p.add_argument("--location", default="us-central1", help="region (default: us-central1)")
    p.add_argument("--pipeline-root", required=True, help="gs:// folder for run artifacts")
    p.add_argument("--service-account", required=True, help="the pipeline runner's email")
    p.add_argument("--model", required=True, help="projects/P/locations/L/models/ID")
    p.add_argument("--locustfile", required=True, help="gs:// path of the locustfile")
    p.add_argument(
        "--template-uri",
        default="",
        help="https://REGION-kfp.pkg.dev/P/REPO/PACKAGE/TAG; compiled on the fly if empty",
    )
    p.add_argument("--display-name", default="deploytest", help="the pipeline job's name")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label on the pipeline job (repeatable)",
    )
    add_pipeline_options(p)
    p.add_argument("--dry-run", action="store_true", help="print the request, send nothing")
    p.add_argument("--json", action="store_true", help="print only the JSON body")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.cli_args import pipeline_parameters
    from pipelines.submit import SubmitRequest, build_job_body, dumps, submit, to_pipeline_job
    from pipelines.validation import InputError, key_values

    try:
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
            parameters=pipeline_parameters(args),
        )
        body = build_job_body(request)
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
    name = submit(body, args.project, args.location)
    print(f"submitted {name}")
    print(
        f"https://console.cloud.google.com/vertex-ai/locations/{args.location}/pipelines/runs/"
        f"{name.rsplit('/', 1)[-1]}?project={args.project}"
    )
    return 0
