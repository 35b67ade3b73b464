"""`deploytest compile`: write the pipeline YAML."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compile",
        help="compile the pipeline to KFP YAML (Vertex AI or local op set)",
        description="Compile the deploy-and-load-test pipeline with the KFP compiler. "
        "--target vertex uses Google Cloud Pipeline Components for create and deploy; "
        "--target local uses the SDK-based components that talk to the emulator.",
    )
    p.add_argument("--target", choices=("vertex", "local"), default="vertex")
    p.add_argument("-o", "--output", required=True, help="YAML file to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipelines.compile import compile_pipeline

    out = compile_pipeline(args.target, args.output)
    print(f"compiled {args.target} pipeline to {out}")
    return 0
