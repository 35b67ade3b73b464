"""`deploytest compile`: write the pipeline YAML."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile the pipeline to KFP YAML",
        description="Compile the deploy-and-load-test pipeline with the KFP compiler: the "
        "YAML that goes to Vertex AI Pipelines (Google Cloud Pipeline Components create the "
        "endpoint and deploy) and that `deploytest run` runs in the embedded Vertex AI.",
    )
    p.add_argument("-o", "--output", required=True, help="YAML file to write")
    p.add_argument(
        "--component-image",
        default="",
        metavar="IMAGE",
        help="the image our components run in on Vertex, by tag or digest (e.g. "
        "REGION-docker.pkg.dev/P/REPO/components:COMMIT, as cloudbuild.yaml pushes it); "
        "default: $DEPLOYTEST_COMPONENT_IMAGE, else a placeholder no build pushes",
    )
    p.add_argument(
        "--rightsize",
        action="store_true",
        help="compile the right-sizing graph: the deploy, sweep and record fan out over the "
        "`candidates` parameter (dsl.ParallelFor) and a recommendation names the cheapest "
        "candidate that meets the SLO",
    )
    p.add_argument(
        "--parallelism",
        type=int,
        default=2,
        metavar="N",
        help="right-sizing: candidates deployed at once (KFP takes it at compile time; each is "
        "a paid endpoint and GPU quota is finite; 1-16, default: %(default)s)",
    )
    from deploytest.commands.options import add_email_option

    add_email_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from components.image import IMAGE_RE
    from pipelines.compile import compile_pipeline

    if args.component_image and not IMAGE_RE.match(args.component_image):
        print(
            f"deploytest compile: invalid component image {args.component_image!r}: expected "
            "REGISTRY/PATH/NAME:TAG or REGISTRY/PATH/NAME@sha256:DIGEST",
            file=sys.stderr,
        )
        return 2
    from pipelines.validation import InputError, notify_emails

    try:
        notify_emails(args.notify_emails)
        out = compile_pipeline(
            args.output,
            args.component_image,
            tuple(args.notify_emails),
            rightsize=args.rightsize,
            parallelism=args.parallelism,
        )
    except (InputError, ValueError) as exc:
        print(f"deploytest compile: {exc}", file=sys.stderr)
        return 2
    print(f"compiled the pipeline to {out}")
    return 0
