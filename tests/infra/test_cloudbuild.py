"""cloudbuild.yaml: every step calls `make` or `deploytest` only, and every deploytest
step runs here as Cloud Build would run it (with --dry-run where it calls Google Cloud),
with the substitutions the two triggers pass. `make install` and `make test` are not run:
they are what runs these tests."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from deploytest_infra.build_config import MODEL_FIELD, MODEL_VERSION_FIELD, build_substitutions
from deploytest_infra.settings import InfraSettings

from .conftest import REPO

CLOUDBUILD = REPO / "cloudbuild.yaml"
DEPLOYTEST = ".venv/bin/deploytest"
IMAGE = "python:3.11"
TALKS_TO_GOOGLE_CLOUD = {"upload-template", "submit"}
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
SUBST_RE = re.compile(r"\$(?:\{([A-Z_][A-Z0-9_]*)\}|([A-Z_][A-Z0-9_]*))")
# An operation.last audit-log entry of UploadModel, shaped after the AuditLog and
# UploadModelResponse contracts (not captured from a live project).
SAMPLE_ENTRY = Path(__file__).parent / "data" / "upload_model_last_entry.json"


@pytest.fixture(scope="module")
def build() -> dict:
    return yaml.safe_load(CLOUDBUILD.read_text())


def command(step: dict) -> list[str]:
    return [step["entrypoint"], *[str(a) for a in step.get("args", [])]]


def used_substitutions(build: dict) -> set[str]:
    names = set()
    for step in build["steps"]:
        for part in [step["name"], *command(step)]:
            names |= {a or b for a, b in SUBST_RE.findall(part)}
    return names


def substitute(text: str, values: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        assert name in values, f"no value for ${name}"
        return values[name]

    return SUBST_RE.sub(one, text)


def trigger_substitutions(settings: InfraSettings, trigger: str, model: str, version: str) -> dict:
    return {
        **build_substitutions(settings, settings.runner_email),
        "_TRIGGER": trigger,
        "_MODEL_RESOURCE_NAME": model,
        "_MODEL_VERSION_ID": version,
    }


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, re.M))


def is_deploytest_subcommand(name: str) -> bool:
    proc = subprocess.run(
        [str(REPO / DEPLOYTEST), name, "--help"], capture_output=True, text=True, timeout=60
    )
    return proc.returncode == 0


# ---- shape -----------------------------------------------------------------------------


def test_steps_call_only_make_or_deploytest(build: dict) -> None:
    targets = makefile_targets()
    assert [s["id"] for s in build["steps"]] == [
        "install",
        "test",
        "compile",
        "upload-template",
        "submit",
    ]
    for step in build["steps"]:
        assert step["name"] == IMAGE, step["id"]
        assert set(step) <= {"id", "name", "entrypoint", "args"}, step["id"]  # no script/env
        cmd = command(step)
        if cmd[0] == "make":
            assert len(cmd) == 2 and cmd[1] in targets, cmd
        else:
            assert cmd[0] == DEPLOYTEST, cmd
            assert is_deploytest_subcommand(cmd[1]), cmd


def test_substitutions_are_declared_and_match_the_triggers(build: dict) -> None:
    declared = set(build["substitutions"])
    used = used_substitutions(build)
    assert used - BUILTINS == declared, "every substitution used is declared, and vice versa"
    assert all(name.startswith("_") for name in declared)
    # Both triggers pass exactly the declared ones (Cloud Build rejects unused keys).
    settings = InfraSettings()
    assert set(trigger_substitutions(settings, "merge", "m", "v")) == declared


def test_cost_labels_reach_the_run_and_its_endpoints(build: dict) -> None:
    submit = command(next(s for s in build["steps"] if s["id"] == "submit"))
    cost = dict(
        submit[i + 1].split("=", 1) for i, arg in enumerate(submit) if arg == "--cost-label"
    )
    labels = dict(submit[i + 1].split("=", 1) for i, arg in enumerate(submit) if arg == "--label")
    settings = InfraSettings()
    subs = build_substitutions(settings, settings.runner_email)
    assert {k: substitute(v, subs) for k, v in cost.items()} == settings.cost_labels
    assert {k: v for k, v in labels.items() if k in cost} == cost


def test_build_runs_as_a_user_specified_service_account(build: dict) -> None:
    assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"


# ---- each deploytest step, run locally --------------------------------------------------


def pubsub_push_body(entry: dict) -> dict:
    """What a Cloud Build Pub/Sub trigger sees: the log entry, base64 JSON in message.data."""
    data = base64.b64encode(json.dumps(entry).encode()).decode()
    return {
        "message": {"data": data, "messageId": "1"},
        "subscription": "projects/p/subscriptions/s",
    }


def resolve_binding(binding: str, body: dict):
    """Resolve a `$(body.message.data.a.b)` payload binding (data is decoded JSON)."""
    m = re.fullmatch(r"\$\(body\.(.+)\)", binding)
    assert m, binding
    node = body
    for part in m.group(1).split("."):
        if isinstance(node, str):
            node = json.loads(base64.b64decode(node))
        node = node[part]
    return node


def test_payload_bindings_find_the_new_model() -> None:
    entry = json.loads(SAMPLE_ENTRY.read_text())
    assert entry["operation"]["last"] is True
    body = pubsub_push_body(entry)
    model = resolve_binding(f"$(body.message.data.{MODEL_FIELD})", body)
    version = resolve_binding(f"$(body.message.data.{MODEL_VERSION_FIELD})", body)
    assert model == "projects/123456789012/locations/us-central1/models/9876543210"
    assert version == "2"
    # The trigger's filter lets it through.
    assert re.match(r"^projects/[^/]+/locations/us-central1/models/[^/@]+$", model)


@pytest.mark.parametrize("trigger", ["merge", "model-upload"])
def test_deploytest_steps_run(build: dict, trigger: str, tmp_path: Path) -> None:
    settings = InfraSettings()
    if trigger == "merge":
        model, _, version = settings.regression_model.partition("@")
        version = version or "default"
    else:
        body = pubsub_push_body(json.loads(SAMPLE_ENTRY.read_text()))
        model = resolve_binding(f"$(body.message.data.{MODEL_FIELD})", body)
        version = resolve_binding(f"$(body.message.data.{MODEL_VERSION_FIELD})", body)
    values = {
        **trigger_substitutions(settings, trigger, model, version),
        "PROJECT_ID": settings.project_id,
        "BUILD_ID": str(uuid.uuid4()),
    }
    ran = []
    for step in build["steps"]:
        cmd = [substitute(part, values) for part in command(step)]
        if cmd[0] == "make":
            continue
        cmd[0] = str(REPO / DEPLOYTEST)
        if cmd[1] in TALKS_TO_GOOGLE_CLOUD:
            cmd.append("--dry-run")
        if cmd[1] == "submit":
            cmd.append("--json")
        # /workspace in Cloud Build: the step's relative paths (build/...) land here.
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{step['id']}: {proc.stderr[-3000:]}"
        ran.append(step["id"])
        if cmd[1] == "compile":
            assert (tmp_path / "build" / "pipeline.yaml").stat().st_size > 0
        if cmd[1] == "submit":
            job = json.loads(proc.stdout)
            assert job["runtimeConfig"]["parameterValues"]["model"] == f"{model}@{version}"
            assert job["templateUri"] == settings.template_uri(f"build-{values['BUILD_ID']}")
            assert job["labels"]["trigger"] == trigger
            assert job["runtimeConfig"]["parameterValues"]["cost_labels"] == settings.cost_labels
    assert ran == ["compile", "upload-template", "submit"]
