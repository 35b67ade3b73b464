"""`deploytest run` (being built)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="(being built)")
    p.set_defaults(func=lambda args: print("not built yet") or 2)
