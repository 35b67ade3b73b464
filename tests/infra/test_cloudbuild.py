"""The Cloud Build configs (cloudbuild.yaml for merges, cloudbuild-model.yaml for opted-in
model uploads, cloudbuild-pr.yaml for `/gcbrun` on a pull request, and
builder/cloudbuild.yaml): every image the compiled pipeline names is built and pushed
before compile, the locustfile the runs read is uploaded before any run, the
substitutions match the triggers, and every deploytest step runs here as Cloud Build
would run it (with --dry-run where it calls Google Cloud). `make install` and `make test`
are not run: they are what runs these tests."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from deploytest_infra.build_config import (
    LABELS_FIELD,
    MODEL_FIELD,
    builder_substitutions,
    merge_substitutions,
    model_upload_substitutions,
    pr_substitutions,
    promote_substitutions,
)
from deploytest_infra.settings import InfraSettings
from deploytest_infra.submit_body import regression_submit_args

from .cloudbuild_checks import (
    BUILDER,
    BUILTINS,
    CONFIGS,
    DEPLOYTEST,
    DOCKER,
    GCLOUD,
    command,
    compiled_images,
    gcpc_image,
    load,
    option,
    pushed_images,
    substitute,
    unbuilt_images,
    uploaded_objects,
    used_substitutions,
)
from .conftest import REPO

TALKS_TO_GOOGLE_CLOUD = {"upload-template", "submit"}
DATA = Path(__file__).parent / "data"
# Audit-log entries of UploadModel, shaped after the AuditLog, UploadModelRequest and
# UploadModelResponse contracts (not captured from a live project: see build_config.py).
FIRST_ENTRY = DATA / "upload_model_first_entry.json"
LAST_ENTRY = DATA / "upload_model_last_entry.json"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def builds() -> dict[str, dict]:
    return {name: load(path) for name, path in CONFIGS.items()}


def trigger_values(settings: InfraSettings, config: str, **model) -> dict[str, str]:
    subs = {
        "merge": merge_substitutions,
        "model-upload": model_upload_substitutions,
        "pull-request": pr_substitutions,
        "promote": promote_substitutions,
    }
    values = (
        builder_substitutions(settings)
        if config == "builder"
        else subs[config](settings, settings.runner_email)
    )
    return {
        **values,
        **model,
        "PROJECT_ID": settings.project_id,
        "BUILD_ID": str(uuid.uuid4()),
        "COMMIT_SHA": COMMIT,
    }


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, re.M))


def deploytest_subcommands() -> set[str]:
    proc = subprocess.run(
        [str(REPO / DEPLOYTEST), "--help"], capture_output=True, text=True, timeout=60
    )
    return set(re.findall(r"^    ([a-z-]+)\s", proc.stdout, re.M))


# ---- shape -----------------------------------------------------------------------------


def test_steps_are_image_builds_an_upload_or_make_and_deploytest(builds) -> None:
    targets, subcommands = makefile_targets(), deploytest_subcommands()
    assert {"compile", "upload-template", "submit"} <= subcommands
    for name, build in builds.items():
        for step in build["steps"]:
            cmd = command(step)
            assert set(step) <= {"id", "name", "entrypoint", "args", "env"}, step["id"]
            if step["name"] == DOCKER:
                assert cmd[0] in {"build", "push"}, cmd
            elif step["name"] == GCLOUD:
                assert cmd[:3] == ["gcloud", "storage", "cp"] and len(cmd) == 5, cmd
            else:
                assert step["name"] == BUILDER, (name, step["id"])
                if cmd[0] == "make":
                    assert len(cmd) == 2 and cmd[1] in targets, cmd
                else:
                    assert cmd[0] == DEPLOYTEST and cmd[1] in subcommands, cmd
    ids = [s["id"] for s in builds["merge"]["steps"]]
    assert ids.index("push-components") < ids.index("compile") < ids.index("upload-template")
    assert ids.index("test") < ids.index("upload-template") < ids.index("submit")


def test_model_upload_builds_never_build_upload_or_tag(builds) -> None:
    steps = builds["model-upload"]["steps"]
    assert [s["id"] for s in steps] == ["install", "submit"]
    submit = command(steps[-1])
    (template,) = option(submit, "--template-uri")
    # main's tag in dev, the pinned version in test and prod
    assert template == "${_TEMPLATE_HOST}/${_PIPELINE_NAME}/${_TEMPLATE_REF}"
    assert "--wait" in submit


@pytest.mark.parametrize("config", ["merge", "model-upload", "pull-request", "builder", "promote"])
def test_substitutions_are_declared_and_match_the_trigger(builds, config) -> None:
    build = builds[config]
    declared = set(build["substitutions"])
    assert used_substitutions(build) - BUILTINS == declared, "used == declared"
    assert all(name.startswith("_") for name in declared)
    # The trigger passes exactly the declared ones (Cloud Build rejects unused keys).
    values = trigger_values(InfraSettings(), config)
    assert {k for k in values if k.startswith("_")} == declared


@pytest.mark.parametrize("config", ["merge", "model-upload", "pull-request", "promote"])
def test_cost_labels_reach_the_run_and_its_endpoints(builds, config) -> None:
    submit = command(next(s for s in builds[config]["steps"] if s["id"] == "submit"))
    cost = dict(v.split("=", 1) for v in option(submit, "--cost-label"))
    labels = dict(v.split("=", 1) for v in option(submit, "--label"))
    settings = InfraSettings()
    values = trigger_values(settings, config)
    assert {k: substitute(v, values) for k, v in cost.items()} == settings.cost_labels
    assert {k: v for k, v in labels.items() if k in cost} == cost
    assert labels["trigger"] == config


def test_builds_log_to_cloud_logging_only(builds) -> None:
    # Required for builds that run as a user-specified service account.
    for build in builds.values():
        assert build["options"]["logging"] == "CLOUD_LOGGING_ONLY"


# ---- images: every image the compiled pipeline names is pushed before compile ----------


@pytest.fixture(scope="module")
def merge_run(builds, tmp_path_factory) -> dict:
    """The merge build's deploytest steps, run here (dry-run where they call Google Cloud)."""
    settings = InfraSettings()
    values = trigger_values(settings, "merge")
    workspace = tmp_path_factory.mktemp("workspace")  # /workspace in Cloud Build
    outputs = run_deploytest_steps(builds["merge"], values, workspace)
    spec = yaml.safe_load((workspace / "build" / "pipeline.yaml").read_text())
    return {"values": values, "outputs": outputs, "spec": spec}


def run_deploytest_steps(build: dict, values: dict, workspace: Path) -> dict[str, str]:
    outputs = {}
    for step in build["steps"]:
        cmd = [substitute(part, values) for part in command(step)]
        if cmd[0] != DEPLOYTEST:
            continue
        cmd[0] = str(REPO / DEPLOYTEST)
        if cmd[1] in TALKS_TO_GOOGLE_CLOUD:
            cmd.append("--dry-run")
        if cmd[1] == "submit":
            cmd.append("--json")
        proc = subprocess.run(cmd, cwd=workspace, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{step['id']}: {proc.stderr[-3000:]}"
        outputs[step["id"]] = proc.stdout
    return outputs


def test_every_compiled_image_is_built_and_pushed_before_compile(builds, merge_run) -> None:
    settings = InfraSettings()
    spec, values = merge_run["spec"], merge_run["values"]
    components = settings.image("components", COMMIT)
    assert components in compiled_images(spec)  # pinned by the commit's tag
    assert gcpc_image() in compiled_images(spec)
    assert unbuilt_images(spec, builds["merge"], values, before="compile") == set()


def test_an_image_no_step_pushes_is_caught(builds, merge_run, tmp_path) -> None:
    spec, values = merge_run["spec"], merge_run["values"]
    without_push = copy.deepcopy(builds["merge"])
    without_push["steps"] = [s for s in without_push["steps"] if s["id"] != "push-components"]
    assert unbuilt_images(spec, without_push, values, "compile") == {
        InfraSettings().image("components", COMMIT)
    }
    # A pipeline compiled without pinning names the placeholder, which nothing builds.
    from components.image import DEFAULT_IMAGE

    env = {k: v for k, v in os.environ.items() if k != "DEPLOYTEST_COMPONENT_IMAGE"}
    out = tmp_path / "unpinned.yaml"
    subprocess.run(
        [str(REPO / DEPLOYTEST), "compile", "-o", str(out)],
        check=True, capture_output=True, timeout=300, env=env,
    )  # fmt: skip
    unpinned = yaml.safe_load(out.read_text())
    assert unbuilt_images(unpinned, builds["merge"], values, "compile") == {DEFAULT_IMAGE}


def test_a_pull_request_run_names_only_images_it_pushed_and_reads_its_own_locustfile(
    builds, tmp_path
) -> None:
    settings = InfraSettings()
    build = builds["pull-request"]
    values = trigger_values(settings, "pull-request")
    outputs = run_deploytest_steps(build, values, tmp_path)
    assert list(outputs) == ["compile", "submit"]
    spec = yaml.safe_load((tmp_path / "build" / "pipeline.yaml").read_text())
    assert unbuilt_images(spec, build, values, before="compile") == set()
    job = json.loads(outputs["submit"])
    assert job["pipelineSpec"] == spec  # submitted inline: no template uploaded or tagged
    assert "templateUri" not in job
    uploads = uploaded_objects(build, values, before="submit")
    locustfile = job["runtimeConfig"]["parameterValues"]["locustfile"]
    assert uploads == {locustfile: "loadtests/locustfile.py"}
    assert locustfile.startswith(f"gs://{settings.loadtest_bucket}/locustfiles/pr/{COMMIT}/")
    assert locustfile != settings.regression_locustfile_uri  # main's stays as it is


def test_the_serving_image_is_built_for_the_serving_gpu(builds) -> None:
    settings = InfraSettings()
    values = trigger_values(settings, "merge")
    step = next(s for s in builds["merge"]["steps"] if s["id"] == "build-serving")
    args = [substitute(a, values) for a in command(step)]
    assert args[args.index("-f") + 1] == "serving/Dockerfile"
    assert f"TORCH_INDEX={settings.serving_torch_index}" in option(args, "--build-arg")
    assert settings.serving_torch_index.startswith("cu")  # a GPU build: the runs use GPUs
    pushed = pushed_images(builds["merge"], values, before="submit")
    assert {settings.image("serving", COMMIT), settings.image("serving", "main")} <= pushed


# ---- the locustfile: uploaded where every run reads it ---------------------------------


def test_the_locustfile_every_run_reads_is_uploaded_by_the_merge_build(builds) -> None:
    settings = InfraSettings()
    values = trigger_values(settings, "merge")
    uploads = uploaded_objects(builds["merge"], values, before="submit")
    assert uploads == {settings.regression_locustfile_uri: "loadtests/locustfile.py"}
    assert (REPO / "loadtests" / "locustfile.py").is_file()
    readers = {
        "merge run": command(next(s for s in builds["merge"]["steps"] if s["id"] == "submit")),
        "model-upload run": command(builds["model-upload"]["steps"][-1]),
    }
    for who, cmd in readers.items():
        (uri,) = option(cmd, "--locustfile")
        assert substitute(uri, values) in uploads, who
    (scheduler_uri,) = option(regression_submit_args(settings), "--locustfile")
    assert scheduler_uri in uploads


def test_a_locustfile_no_step_uploads_is_caught(builds) -> None:
    settings = InfraSettings()
    values = trigger_values(settings, "merge")
    without = copy.deepcopy(builds["merge"])
    without["steps"] = [s for s in without["steps"] if s["id"] != "upload-locustfile"]
    assert settings.regression_locustfile_uri not in uploaded_objects(without, values, "submit")


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


@pytest.mark.parametrize("entry", [FIRST_ENTRY, LAST_ENTRY], ids=["first", "last"])
def test_the_model_binding_works_on_either_audit_entry(entry) -> None:
    settings = InfraSettings()
    body = pubsub_push_body(json.loads(entry.read_text()))
    binding = model_upload_substitutions(settings, settings.runner_email)["_MODEL_RESOURCE_NAME"]
    assert binding == f"$(body.message.data.{MODEL_FIELD})"
    model = resolve_binding(binding, body)
    assert model == "projects/123456789012/locations/us-central1/models/9876543210"
    assert re.match(r"^projects/[^/]+/locations/us-central1/models/[^/@]+$", model)


def test_the_opt_in_label_is_where_the_sink_looks() -> None:
    key, value = InfraSettings().opt_in_label
    entry = json.loads(FIRST_ENTRY.read_text())
    labels = resolve_binding(f"$(body.message.data.{LABELS_FIELD})", pubsub_push_body(entry))
    assert labels[key] == value


def test_merge_build_steps_run(merge_run) -> None:
    settings = InfraSettings()
    values, outputs = merge_run["values"], merge_run["outputs"]
    assert list(outputs) == ["compile", "upload-template", "submit"]
    assert (
        f"with tags ['{settings.template_tag}', 'build-{values['BUILD_ID']}']"
        in (outputs["upload-template"])
    )
    job = json.loads(outputs["submit"])
    model = f"{values['_MODEL_RESOURCE_NAME']}@{values['_MODEL_VERSION_ID']}"
    assert model == f"{settings.regression_model}@default"
    assert job["runtimeConfig"]["parameterValues"]["model"] == model
    assert job["templateUri"] == settings.template_uri(f"build-{values['BUILD_ID']}")
    assert job["labels"]["trigger"] == "merge"
    assert job["runtimeConfig"]["parameterValues"]["cost_labels"] == settings.cost_labels


def test_model_upload_build_steps_run(builds, tmp_path) -> None:
    settings = InfraSettings()
    body = pubsub_push_body(json.loads(FIRST_ENTRY.read_text()))
    model = resolve_binding(f"$(body.message.data.{MODEL_FIELD})", body)
    values = {**trigger_values(settings, "model-upload"), "_MODEL_RESOURCE_NAME": model}
    outputs = run_deploytest_steps(builds["model-upload"], values, tmp_path)
    job = json.loads(outputs["submit"])
    assert job["runtimeConfig"]["parameterValues"]["model"] == model
    assert job["templateUri"] == settings.template_uri(settings.template_tag)
    assert job["labels"]["trigger"] == "model-upload"


# ---- promotion (test and prod run dev's template version) -------------------------------


def example_environment(name: str) -> InfraSettings:
    from deploytest_infra.environments import load_environments

    from .conftest import INFRA

    return next(
        s for s in load_environments(INFRA / "settings.example.json") if s.environment == name
    )


def test_promote_build_runs_the_pinned_version_from_dev(builds, tmp_path) -> None:
    dev, test = example_environment("dev"), example_environment("test")
    steps = builds["promote"]["steps"]
    assert [s["id"] for s in steps] == ["install", "upload-locustfile", "submit"]
    submit = command(steps[-1])
    assert "--require-version" in submit and "--wait" in submit
    values = trigger_values(test, "promote")
    outputs = run_deploytest_steps(builds["promote"], values, tmp_path)
    job = json.loads(outputs["submit"])
    # The same bytes dev's merge build uploaded: dev's repository, test's pinned version.
    assert job["templateUri"] == f"{dev.kfp_host}/{dev.pipeline_package}/{test.template_version}"
    assert job["serviceAccount"] == test.runner_email
    assert job["labels"]["trigger"] == "promote"
    assert job["labels"]["environment"] == "test"
    assert uploaded_objects(builds["promote"], values, before="submit") == {
        test.regression_locustfile_uri: "loadtests/locustfile.py"
    }


def test_promote_build_refuses_a_tag(builds, tmp_path) -> None:
    values = {**trigger_values(example_environment("test"), "promote"), "_TEMPLATE_REF": "main"}
    with pytest.raises(AssertionError, match="must end in a sha256: version, not a tag"):
        run_deploytest_steps(builds["promote"], values, tmp_path)


def test_slos_of_the_environment_reach_every_run(builds) -> None:
    prod = example_environment("prod")
    for config in ("merge", "model-upload", "pull-request", "promote"):
        submit = command(next(s for s in builds[config]["steps"] if s["id"] == "submit"))
        values = trigger_values(prod, config)
        got = {opt: substitute(option(submit, opt)[0], values) for opt in
               ("--slo-p95-ms", "--max-failure-ratio", "--min-rps")}  # fmt: skip
        assert got == {"--slo-p95-ms": "800", "--max-failure-ratio": "0.01", "--min-rps": "2"}


@pytest.mark.parametrize("config", ["merge", "model-upload", "pull-request", "promote"])
def test_runs_send_their_run_end_message_to_the_stacks_topic_and_secret(builds, config) -> None:
    submit = command(next(s for s in builds[config]["steps"] if s["id"] == "submit"))
    settings = InfraSettings(notify_webhook_secret=True)
    values = trigger_values(settings, config)
    (topic,) = option(submit, "--notify-topic")
    (secret,) = option(submit, "--notify-secret")
    assert substitute(topic, values) == settings.notify_topic_name
    assert substitute(secret, values) == settings.notify_secret_version
    # the defaults in the file are the default settings' (no secret)
    assert builds[config]["substitutions"]["_NOTIFY_TOPIC"] == InfraSettings().notify_topic_name
    assert builds[config]["substitutions"]["_NOTIFY_SECRET"] == ""
