"""`deploytest serve`: run the model server locally, exactly as the container does."""

from __future__ import annotations

import argparse

from serving.config import add_server_arguments


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `deploytest serve`; heavy imports wait until it runs."""
    p = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP under Vertex AI's custom-container contract",
        description=(
            "Run the same model server as the container's `python -m serving`: AIP_* "
            "variables or flags choose port, routes and model (a directory or gs://). The "
            "port opens at once, health answers 503 until the model is loaded, then 200; "
            "concurrent predictions are batched into one generate call; GET /stats shows "
            "the batching. Stops on Ctrl-C/SIGTERM; exits 1 if the model fails to load."
        ),
    )
    add_server_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns its exit code."""
    from serving.server import main_from_args

    return main_from_args(args)
