"""`deploytest demo-model`: build the offline demo model."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo-model",
        help="build the offline GPT-2 demo model (nothing is downloaded)",
        description=(
            "Build a GPT2LMHeadModel with a byte-level BPE tokenizer trained locally, saved "
            "with save_pretrained so the real from_pretrained path loads it. Deterministic "
            "for a given seed."
        ),
    )
    p.add_argument(
        "--size",
        choices=("tiny", "gpt2"),
        default="tiny",
        help="tiny: 2 layers, 64 wide, fast on a 2-core CPU; gpt2: the 124M architecture "
        "with random weights (default: tiny)",
    )
    p.add_argument("-o", "--output", required=True, help="directory to write the model into")
    p.add_argument("--seed", type=int, default=0, help="seed for tokenizer text and weights")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from serving.demo_model import build_demo_model

    print(f"building {args.size} demo model in {args.output} ...", flush=True)
    out = build_demo_model(args.output, size=args.size, seed=args.seed)
    print(f"wrote {out}")
    return 0
