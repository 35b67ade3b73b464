"""Prompts files: one prompt per line. Plain Python, so code that must not import Locust
(the correctness phase, benchmarks) reads them as the locustfile does; `default.txt` is the
load test's default."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_FILE = Path(__file__).with_name("default.txt")


def parse_prompts(text: str, source: str) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise ValueError(f"prompts file {source} holds no prompts")
    return prompts


def read_prompts(path: str | os.PathLike) -> list[str]:
    return parse_prompts(Path(path).read_text(encoding="utf-8"), str(path))
