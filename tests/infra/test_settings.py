"""The settings object: validated before anything is synthesised (no jsii here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from deploytest_infra.environments import load_environments
from deploytest_infra.settings import (
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    SETTINGS_ENV,
    InfraSettings,
    SettingsError,
)

from .conftest import INFRA


def test_defaults_are_valid_and_labels_gcp_valid() -> None:
    s = InfraSettings()
    assert s.cost_labels == {
        "team": "ml-platform",
        "environment": "dev",
        "cost-center": "cc-0000",
        "gpu-type": "nvidia-tesla-t4",
    }
    for key, value in s.labels.items():
        assert LABEL_KEY_RE.match(key) and LABEL_VALUE_RE.match(value)
    assert s.runner_email == f"{s.runner_account_id}@{s.project_id}.iam.gserviceaccount.com"
    assert 6 <= len(s.runner_account_id) <= 30


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"team": "ML Platform"}, "label team='ML Platform'"),
        ({"cost_center": "x" * 64}, "label cost-center="),
        ({"extra_labels": {"Owner": "me"}}, "label key 'Owner'"),
        ({"extra_labels": {"owner": "Me"}}, "label owner='Me'"),
        ({"serving_gpu_type": "NVIDIA_GTX_1080"}, "serving_gpu_type"),
        ({"serving_gpu_count": 3}, "serving_gpu_count"),
        ({"gpu_quota_limit": 0}, "gpu_quota_limit"),
        ({"project_id": "My_Project"}, "project_id"),
        ({"region": "moon"}, "region"),
        ({"environment": "Prod"}, "environment"),
        ({"regression_schedule": "every monday"}, "regression_schedule"),
        ({"regression_model": "models/1"}, "regression_model"),
        (
            {"regression_model": "projects/p/locations/europe-west4/models/1"},
            "not in region us-central1",
        ),
        ({"regression_locustfile": "gs://b/x.py"}, "regression_locustfile"),
        ({"kms_key_name": "my-key"}, "kms_key_name"),
        ({"state_bucket": "gs://x"}, "state_bucket"),
        ({"quota_contact_email": ""}, "quota_contact_email '' is not an email (required"),
        ({"quota_contact_email": "oncall"}, "quota_contact_email"),
        ({"billing_project": "Not A Project"}, "billing_project"),
        ({"template_tag": "sha256:abc"}, "template_tag"),
        ({"scheduler_template": "sha256:xyz"}, "scheduler_template"),
        ({"merge_runs_load_test": "yes"}, "merge_runs_load_test"),
        ({"model_opt_in_label": "deploytest"}, "model_opt_in_label"),
        ({"model_opt_in_label": "Deploy=yes"}, "model_opt_in_label"),
        ({"serving_torch_index": "cuda"}, "serving_torch_index"),
    ],
)
def test_invalid_settings_fail_fast_with_a_clear_message(overrides: dict, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        InfraSettings(**overrides)
    assert message in str(err.value)


def test_regions_with_two_digit_numbers() -> None:
    s = InfraSettings(
        region="europe-west10", regression_model="projects/p/locations/europe-west10/models/1"
    )
    assert s.kfp_host.startswith("https://europe-west10-kfp.pkg.dev/")


def test_scheduler_template_is_a_tag_or_a_pinned_version() -> None:
    s = InfraSettings()
    assert (s.scheduler_template_ref, s.scheduler_uses_tag) == ("main", True)
    pinned = InfraSettings(scheduler_template="sha256:" + "a" * 64)
    assert not pinned.scheduler_uses_tag
    assert pinned.template_uri(pinned.scheduler_template_ref).endswith("/sha256:" + "a" * 64)
    assert InfraSettings(billing_project="billing-proj-1").billing_project_id == "billing-proj-1"
    assert s.billing_project_id == s.project_id


def test_longest_names_still_fit() -> None:
    s = InfraSettings(project_id="a" * 30, environment="x" * 16)
    assert max(len(s.pipeline_root_bucket), len(s.loadtest_bucket)) <= 63
    assert len(s.runner_account_id) <= 30


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as err:
        InfraSettings(team="A B", region="x", serving_gpu_count=5)
    text = str(err.value)
    assert "label team" in text and "region" in text and "serving_gpu_count" in text


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(SettingsError, match="unknown keys \\['gpu'\\]"):
        InfraSettings.from_mapping({"gpu": "T4"})


def test_load_from_the_file_named_in_the_environment(tmp_path, monkeypatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps({"environment": "prod", "team": "search", "serving_gpu_type": "NVIDIA_L4"})
    )
    monkeypatch.setenv(SETTINGS_ENV, str(path))
    s = InfraSettings.load()
    assert (s.environment, s.team, s.serving_gpu_type) == ("prod", "search", "NVIDIA_L4")
    assert s.cost_labels["gpu-type"] == "nvidia-l4"
    assert s.serving_quota_id == "CustomModelServingL4GPUsPerProjectPerRegion"
    assert s.machine_type == "g2-standard-8"
    assert s.stack_name == "deploytest-prod"


def test_example_settings_file_is_valid() -> None:
    envs = load_environments(INFRA / "settings.example.json")
    assert [s.environment for s in envs] == ["dev", "test", "prod"]
    with pytest.raises(SettingsError, match="several environments: read it with"):
        InfraSettings.load(INFRA / "settings.example.json")


def test_main_refuses_invalid_settings_before_synth(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"team": "Data Science"}))
    env = {**os.environ, SETTINGS_ENV: str(bad), "CDKTF_OUTDIR": str(tmp_path / "out")}
    proc = subprocess.run(
        [sys.executable, "main.py"], cwd=INFRA, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "label team='Data Science'" in proc.stderr
    assert not (tmp_path / "out").exists()
