"""The demo model for local runs: built once into a cache, registered in the emulator.

Registered through the real Model Registry API (`ModelServiceClient.upload_model`) with a
container spec whose command is this Python running `python -m serving` (or, with
`--serving vllm`, the real vLLM engine's OpenAI server): the emulator starts exactly that
as the deployed model's process.
"""

from __future__ import annotations

import fcntl
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

DEMO_LABEL = "deploytest-demo"


def _built(target: Path) -> bool:
    return (target / "config.json").is_file() and (target / "deploytest_demo.json").is_file()


def ensure_demo_model(cache_dir: Path, size: str, log: Callable[[str], None]) -> Path:
    """Build the demo model into `cache_dir` unless it is already there.

    Concurrent first runs share one cache: the build holds an exclusive lock, goes into a
    private temporary folder beside the target and is renamed into place (atomic on one
    file system), so a run sees either no model or a whole one.
    """
    target = cache_dir / "models" / f"{size}-seed0"
    if _built(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second run waits here while the first builds
        if _built(target):
            return target
        from serving.demo_model import build_demo_model

        log(f"building the {size} demo model in {target} (once) ...")
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build_demo_model(tmp / "model", size=size, seed=0)
            if target.exists():  # a broken leftover of an older version
                shutil.rmtree(target)
            (tmp / "model").rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


SERVINGS = ("deploytest", "vllm")


def container_spec(model_dir: Path, serving: str, work_dir: Path):
    """The demo model's `ModelContainerSpec`: our model server, or the real vLLM engine's
    OpenAI server (engines/vllm.py, installed by `make vllm`) as a custom container."""
    from google.cloud import aiplatform_v1

    if serving == "vllm":
        from engines.vllm import container_spec as vllm_spec
        from engines.vllm import vllm_python

        spec = vllm_spec(model_dir, work_dir, python=vllm_python())
        return aiplatform_v1.ModelContainerSpec(
            image_uri="local/vllm-openai-cpu",
            command=spec.command,
            args=spec.args,
            env=[aiplatform_v1.EnvVar(name=k, value=v) for k, v in spec.env.items()],
            health_route=spec.health_route,
            predict_route=spec.predict_route,
        )
    return aiplatform_v1.ModelContainerSpec(
        image_uri="local/deploytest-serving",
        command=[sys.executable, "-m", "serving"],
        # The weights come from AIP_STORAGE_URI (the model's artifactUri; Vertex AI expands
        # `$(VAR)` in args), so the command line names the folder served; a run's model
        # server is reachable from this machine only.
        args=["--model-dir", "$(AIP_STORAGE_URI)", "--host", "127.0.0.1"],
        health_route="/health",
        predict_route="/predict",
    )


def register_model(
    project: str,
    location: str,
    api_endpoint: str,
    model_dir: Path,
    size: str,
    serving: str = "deploytest",
    work_dir: Path | None = None,
) -> str:
    """Upload the demo model to the (emulated) Model Registry, served by `serving`; return
    its resource name."""
    from google.cloud import aiplatform_v1

    from components.vertex_clients import location_path, model_client

    client = model_client(location, api_endpoint)
    model = aiplatform_v1.Model(
        display_name=f"deploytest-demo-{size}" + ("" if serving == "deploytest" else f"-{serving}"),
        labels={DEMO_LABEL: size},
        # A local folder: the embedded Vertex AI takes one (Vertex AI itself wants gs://).
        # The correctness phase's reference by default; vLLM's command names it too.
        artifact_uri=str(model_dir.resolve()),
        container_spec=container_spec(model_dir, serving, work_dir or model_dir.parent),
    )
    operation = client.upload_model(parent=location_path(project, location), model=model)
    return operation.result(timeout=60).model
