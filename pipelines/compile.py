"""Compile the pipeline to KFP IR YAML."""

from __future__ import annotations

from pathlib import Path


def compile_pipeline(target: str, output: str | Path) -> Path:
    """Compile the `target` op set ("vertex" or "local") to `output` and return its path."""
    from kfp import compiler

    from pipelines.pipeline import build_pipeline

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(target), package_path=str(out))
    return out
