"""Reading the Cloud Build configs as Cloud Build would: substitutions, step commands, and
what the steps produce (images pushed, objects uploaded) before a given step. The tests
in test_cloudbuild.py use these to prove that every image a compiled pipeline names and
every locustfile a run reads is produced by a build step first."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .conftest import REPO

CONFIGS = {
    "merge": REPO / "cloudbuild.yaml",
    "model-upload": REPO / "cloudbuild-model.yaml",
    "pull-request": REPO / "cloudbuild-pr.yaml",
    "promote": REPO / "cloudbuild-promote.yaml",
    "builder": REPO / "builder" / "cloudbuild.yaml",
}
DOCKER = "gcr.io/cloud-builders/docker"
GCLOUD = "gcr.io/google.com/cloudsdktool/cloud-sdk:slim"
BUILDER = "${_REGION}-docker.pkg.dev/${PROJECT_ID}/${_DOCKER_REPO}/builder:latest"
DEPLOYTEST = ".venv/bin/deploytest"
SUBST_RE = re.compile(r"\$(?:\{([A-Z_][A-Z0-9_]*)\}|([A-Z_][A-Z0-9_]*))")
BUILTINS = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "COMMIT_SHA",
    "SHORT_SHA",
    "REPO_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REVISION_ID",
    "TRIGGER_NAME",
    "SERVICE_ACCOUNT_EMAIL",
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def command(step: dict) -> list[str]:
    entry = [step["entrypoint"]] if "entrypoint" in step else []
    return [*entry, *[str(a) for a in step.get("args", [])]]


def substitute(text: str, values: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        assert name in values, f"no value for ${name}"
        return values[name]

    return SUBST_RE.sub(one, text)


def used_substitutions(build: dict) -> set[str]:
    names = set()
    for step in build["steps"]:
        for part in [step["name"], *command(step)]:
            names |= {a or b for a, b in SUBST_RE.findall(part)}
    return names


def steps_before(build: dict, step_id: str) -> list[dict]:
    ids = [s["id"] for s in build["steps"]]
    assert step_id in ids, f"no step {step_id!r} in {ids}"
    return build["steps"][: ids.index(step_id)]


def pushed_images(build: dict, values: dict[str, str], before: str) -> set[str]:
    """Images (name:tag) built by a docker build step and pushed before step `before`."""
    built, pushed = set(), set()
    for step in steps_before(build, before):
        if step["name"] != DOCKER:
            continue
        args = [substitute(a, values) for a in command(step)]
        if args[0] == "build":
            built |= {args[i + 1] for i, a in enumerate(args) if a == "-t"}
        elif args[0] == "push" and "--all-tags" in args:
            repo = args[-1]
            pushed |= {image for image in built if image.rsplit(":", 1)[0] == repo}
        elif args[0] == "push":
            pushed.add(args[-1])
    return built & pushed


def compiled_images(spec: dict) -> set[str]:
    """Every container image a compiled pipeline (KFP IR) names."""
    executors = spec["deploymentSpec"]["executors"].values()
    return {e["container"]["image"] for e in executors if "container" in e}


def gcpc_image() -> str:
    """Google's own image for GCPC's launchers, published with each GCPC release."""
    import google_cloud_pipeline_components

    return (
        "gcr.io/ml-pipeline/google-cloud-pipeline-components:"
        f"{google_cloud_pipeline_components.__version__}"
    )


def unbuilt_images(spec: dict, build: dict, values: dict[str, str], before: str) -> set[str]:
    """Images the compiled pipeline names that no step pushes before `before` (GCPC's own
    release image aside: Google builds that one)."""
    return compiled_images(spec) - pushed_images(build, values, before) - {gcpc_image()}


def uploaded_objects(build: dict, values: dict[str, str], before: str) -> dict[str, str]:
    """gs:// destination -> repository file, for `gcloud storage cp` steps before `before`."""
    uploads = {}
    for step in steps_before(build, before):
        cmd = [substitute(a, values) for a in command(step)]
        if step["name"] == GCLOUD and cmd[:3] == ["gcloud", "storage", "cp"]:
            uploads[cmd[4]] = cmd[3]
    return uploads


def option(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]
