"""dev, test and prod from one settings file: one stack each, each with its own overrides
and state, the Scheduler only where it is on, and test and prod pinned to the template
version dev's merges uploaded. The policy checks of test_stack.py and checkov run on
every environment."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest
from deploytest_infra.build_config import promote_substitutions
from deploytest_infra.environments import environments_from_mapping, load_environments
from deploytest_infra.settings import SettingsError

from . import test_stack
from .conftest import CHECKOV, ENVIRONMENTS, INFRA, PINNED, Synth, require_node
from .test_checkov import CONFIG, run_checkov, summary_line

EXAMPLE = INFRA / "settings.example.json"


def triggers(synth: Synth) -> dict[str, dict]:
    return {t["name"]: t for t in synth.resources("google_cloudbuild_trigger").values()}


# ---- settings --------------------------------------------------------------------------


def test_each_environment_has_its_own_overrides() -> None:
    dev, test, prod = load_environments(EXAMPLE)
    assert [dev.project_id, test.project_id, prod.project_id] == [
        "my-ml-dev",
        "my-ml-test",
        "my-ml-prod",
    ]
    assert (dev.serving_gpu_type, dev.machine_type) == ("NVIDIA_TESLA_T4", "n1-standard-8")
    assert (prod.serving_gpu_type, prod.machine_type) == ("NVIDIA_L4", "g2-standard-8")
    assert (dev.slo_p95_ms, prod.slo_p95_ms, prod.min_rps) == (2000, 800, 2)
    assert [e.scheduler_enabled for e in (dev, test, prod)] == [False, False, True]
    assert "merge" in dev.triggers and "merge" not in test.triggers + prod.triggers
    # the defaults reach every environment unless it overrides them
    assert {e.team for e in (dev, test, prod)} == {"ml-platform"}
    # test and prod read dev's repository; the project and region come from dev's entry
    for e in (test, prod):
        assert (e.template_source_project, e.template_source_region) == (dev.project_id, dev.region)
        assert e.source_kfp_host == dev.kfp_host


def test_a_flat_file_of_one_environment_still_works(tmp_path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"environment": "prod", "project_id": "my-ml-platform"}))
    (only,) = load_environments(path)
    assert (only.environment, only.project_id, only.scheduler_enabled) == (
        "prod",
        "my-ml-platform",
        True,
    )


@pytest.mark.parametrize(
    "values, message",
    [
        ({"environments": {"dev": {}}, "team": "x"}, "unknown top-level keys \\['team'\\]"),
        ({"defaults": {}}, "'defaults' without 'environments'"),
        ({"environments": {"Prod": {}}}, "'Prod' is not an environment name"),
        ({"environments": {"dev": {"environment": "prod"}}}, "leave 'environment' out"),
        (
            {"environments": {"test": {"template_source": "dev", "template_version": PINNED}}},
            "template_source 'dev' is not in this file",
        ),
        (
            {"environments": {"dev": {}, "test": {"template_source": "dev"}}},
            "environments.test: template_version is required with template_source",
        ),
        (
            {
                "environments": {
                    "dev": {},
                    "test": {"template_source": "dev", "template_version": "main"},
                }
            },
            "template_version 'main' is not a version: sha256:",
        ),
        (
            {
                "environments": {
                    "dev": {},
                    "test": {
                        "template_source": "dev",
                        "template_version": PINNED,
                        "triggers": ["merge"],
                    },
                }
            },
            "has no merge trigger",
        ),
        ({"environments": {"dev": {"triggers": ["promote"]}}}, "'promote' needs template_source"),
        (
            {"environments": {"dev": {"triggers": ["deploy"]}}},
            "\\['deploy'\\] are not trigger names",
        ),
        ({"environments": {"dev": {"slo_p95_ms": 0}}}, "slo_p95_ms 0 must be a number within \\(0"),
        ({"environments": {"dev": {"max_failure_ratio": 2}}}, "max_failure_ratio 2 must be"),
        (
            {"environments": {"dev": {"scheduler_enabled": "yes"}}},
            "scheduler_enabled 'yes' must be",
        ),
    ],
)
def test_invalid_environments_name_the_environment_and_the_rule(values, message) -> None:
    with pytest.raises(SettingsError, match=message):
        environments_from_mapping(values)


def test_every_environment_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as err:
        environments_from_mapping(
            {"environments": {"dev": {"team": "A B"}, "prod": {"region": "x"}}}
        )
    text = str(err.value)
    assert "environments.dev: label team='A B'" in text and "environments.prod: region" in text


# ---- synthesised stacks ------------------------------------------------------------------


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_each_environment_is_its_own_stack_with_its_own_state(env_synths, env) -> None:
    s = env_synths[env].settings
    config = env_synths[env].config
    assert s.stack_name == f"deploytest-{env}"
    assert config["terraform"]["backend"]["gcs"] == {
        "bucket": s.state_bucket,
        "prefix": f"deploytest/{env}",
    }
    (provider,) = config["provider"]["google"]
    assert (provider["project"], provider["region"]) == (s.project_id, s.region)
    buckets = {b["name"] for b in env_synths[env].resources("google_storage_bucket").values()}
    assert buckets == {f"{s.project_id}-{env}-pipeline-root", f"{s.project_id}-{env}-loadtests"}


def test_only_prod_has_the_regression_schedule(env_synths) -> None:
    for env in ENVIRONMENTS:
        jobs = {
            j["name"]: j for j in env_synths[env].resources("google_cloud_scheduler_job").values()
        }
        assert f"deploytest-{env}-janitor" in jobs  # every environment sweeps its leaks
        assert (f"deploytest-{env}-regression" in jobs) == (env == "prod"), env
    prod = env_synths["prod"]
    job = next(
        j
        for j in prod.resources("google_cloud_scheduler_job").values()
        if j["name"] == "deploytest-prod-regression"
    )
    body = json.loads(base64.b64decode(job["http_target"]["body"]))
    s = prod.settings
    # prod runs the pinned version, from dev's repository, with prod's own gate
    assert body["templateUri"] == s.template_uri(s.template_version)
    assert body["templateUri"].startswith(env_synths["dev"].settings.kfp_host + "/")
    params = body["runtimeConfig"]["parameterValues"]
    assert (params["slo_p95_ms"], params["min_rps"]) == (800, 2)
    assert body["serviceAccount"] == s.runner_email
    assert "regression_job" in prod.config["output"]
    assert "regression_job" not in env_synths["test"].config["output"]


def test_a_scheduler_elsewhere_only_when_set(synth: Synth) -> None:
    # scheduler_enabled is on unless a file turns it off (the example's defaults do)
    dev, test = environments_from_mapping(
        {
            "defaults": {"scheduler_enabled": False},
            "environments": {"dev": {}, "test": {"scheduler_enabled": True}},
        }
    )
    assert (dev.scheduler_enabled, test.scheduler_enabled) == (False, True)
    assert any(
        j["name"].endswith("-regression")
        for j in synth.resources("google_cloud_scheduler_job").values()
    )


def test_trigger_sets_per_environment(env_synths) -> None:
    assert set(triggers(env_synths["dev"])) == {
        f"deploytest-dev-{t}" for t in ("merge", "model-upload", "pull-request", "builder")
    }
    for env in ("test", "prod"):
        assert set(triggers(env_synths[env])) == {
            f"deploytest-{env}-{t}" for t in ("model-upload", "builder", "promote")
        }


def test_test_pins_the_template_version(env_synths) -> None:
    dev, test = env_synths["dev"].settings, env_synths["test"]
    s = test.settings
    assert s.template_version == "sha256:" + "1" * 64
    promote = triggers(test)["deploytest-test-promote"]
    # manual: no GitHub, Pub/Sub or webhook event; the config and source from main
    assert not {"github", "pubsub_config", "webhook_config", "trigger_template"} & set(promote)
    assert promote["git_file_source"]["path"] == "cloudbuild-promote.yaml"
    assert promote["git_file_source"]["revision"] == "refs/heads/main"
    assert promote["substitutions"] == promote_substitutions(s, s.runner_email)
    assert promote["substitutions"]["_TEMPLATE_HOST"] == dev.kfp_host
    assert promote["substitutions"]["_TEMPLATE_REF"] == s.template_version
    assert promote["approval_config"] == {"approval_required": False}
    # model uploads in test run the same pinned version, not main's tag
    upload = triggers(test)["deploytest-test-model-upload"]
    assert upload["substitutions"]["_TEMPLATE_REF"] == s.template_version
    assert upload["substitutions"]["_TEMPLATE_HOST"] == dev.kfp_host
    assert test.config["output"]["template_version"]["value"] == s.template_uri(s.template_version)
    prod_promote = triggers(env_synths["prod"])["deploytest-prod-promote"]
    assert prod_promote["approval_config"] == {"approval_required": True}
    assert prod_promote["substitutions"]["_TEMPLATE_REF"] == s.template_version


@pytest.mark.parametrize("env", ["test", "prod"])
def test_promoted_environments_read_dev_repositories_only(env_synths, env) -> None:
    dev = env_synths["dev"].settings
    grants = env_synths[env].resources("google_artifact_registry_repository_iam_member").values()
    upstream = [g for g in grants if g["project"] == dev.project_id]
    assert {g["repository"] for g in upstream} == {dev.kfp_repository, dev.docker_repository}
    assert {g["role"] for g in upstream} == {"roles/artifactregistry.reader"}
    assert len(upstream) == 8  # runner, build, invoker, Vertex AI agent on both
    assert not [
        g
        for g in env_synths["dev"]
        .resources("google_artifact_registry_repository_iam_member")
        .values()
        if g["project"] != dev.project_id
    ]


# ---- the policies of test_stack.py and checkov, on every environment ------------------------

POLICIES = [
    test_stack.test_no_primitive_roles,
    test_stack.test_every_bucket_is_private_and_uniform,
    test_stack.test_every_labelled_resource_carries_the_cost_labels,
    test_stack.test_no_provider_default_labels,
    test_stack.test_service_accounts_and_no_keys,
    test_stack.test_quota_preference_has_a_contact,
    test_stack.test_provider_pinned,
]


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("policy", POLICIES, ids=lambda f: f.__name__.removeprefix("test_"))
def test_policies_hold_in_every_environment(env_synths, env, policy) -> None:
    policy(env_synths[env])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_checkov_passes_on_every_environment(env_synths, env) -> None:
    if not CHECKOV.exists():
        pytest.skip(f"{CHECKOV} not found")
    outdir = env_synths[env].outdir / "stacks" / env_synths[env].settings.stack_name
    report = run_checkov(
        "-d", str(outdir), "--framework", "terraform_json", "--config-file", str(CONFIG)
    )
    assert report["summary"]["failed"] == 0, summary_line(report)
    assert report["summary"]["passed"] >= 20
    assert report["summary"]["parsing_errors"] == 0


def test_main_writes_every_environment(tmp_path) -> None:
    require_node()
    out = tmp_path / "cdktf.out"
    env = {**os.environ, "CDKTF_OUTDIR": str(out), "DEPLOYTEST_INFRA_SETTINGS": str(EXAMPLE)}
    proc = subprocess.run(
        [sys.executable, "main.py"], cwd=INFRA, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in (out / "stacks").iterdir()) == [
        f"deploytest-{e}" for e in sorted(ENVIRONMENTS)
    ]
    for e in ENVIRONMENTS:
        assert f"synthesised stack deploytest-{e}" in proc.stdout
