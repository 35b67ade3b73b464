"""Compile the pipeline to KFP IR YAML."""

from __future__ import annotations

from pathlib import Path

# Right-sizing branches at once: each is a paid endpoint (pipelines/candidates.py).
MAX_PARALLELISM = 16


def is_rightsize_spec(spec: dict) -> bool:
    """Whether a compiled pipeline spec is the right-sizing graph (it has the recommendation)."""
    return "comp-recommend" in (spec.get("components") or {})


def compile_pipeline(
    output: str | Path,
    component_image: str = "",
    notify_emails: tuple[str, ...] = (),
    rightsize: bool = False,
    parallelism: int = 1,
) -> Path:
    """Compile the pipeline to `output` and return its path.

    `notify_emails` compiles in GCPC's VertexNotificationEmailOp (Vertex AI only).
    `rightsize` compiles the right-sizing graph, `parallelism` candidates at a time
    (pipelines/pipeline.py build_pipeline).

    `component_image` pins the image our components run in on Vertex (see
    components/image.py); it must be given before the components are first imported.
    """
    if component_image:
        from components.image import pin

        pin(component_image)
    from kfp import compiler

    from pipelines.pipeline import build_pipeline

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not 1 <= parallelism <= MAX_PARALLELISM:
        raise ValueError(f"parallelism must be within [1, {MAX_PARALLELISM}], got {parallelism}")
    pipeline = build_pipeline(tuple(notify_emails), rightsize=rightsize, parallelism=parallelism)
    compiler.Compiler().compile(pipeline, package_path=str(out))
    return out
