"""The `deploytest` command. Each subcommand lives beside the code it drives.

A subcommand module exposes `add_parser(subparsers)`, which registers its parser and
sets `func` (called with the parsed namespace, returns an exit code). Modules keep
heavy imports (torch, kfp, aiplatform) inside their functions so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Order is the order `deploytest --help` lists them in.
SUBCOMMAND_MODULES = (
    "deploytest.commands.run",
    "deploytest.commands.compile",
    "deploytest.commands.submit",
    "deploytest.commands.upload",
    "deploytest.commands.cleanup",
    "deploytest.commands.verdict",
    "deploytest.commands.history",
    "deploytest.commands.loadtest",
    "emulator.cli",
    "serving.cli",
    "serving.demo_model_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deploytest",
        description=(
            "Deploy a model to a Vertex AI endpoint, load-test it with Locust, gate on SLOs, "
            "and always clean the endpoint up. `deploytest run` does it all offline against "
            "an embedded Vertex AI emulator."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
