"""Compile the pipeline to KFP IR YAML."""

from __future__ import annotations

from pathlib import Path


def compile_pipeline(
    output: str | Path, component_image: str = "", notify_emails: tuple[str, ...] = ()
) -> Path:
    """Compile the pipeline to `output` and return its path.

    `notify_emails` compiles in GCPC's VertexNotificationEmailOp (Vertex AI only).

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
    compiler.Compiler().compile(build_pipeline(tuple(notify_emails)), package_path=str(out))
    return out
