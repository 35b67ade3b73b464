"""The scheduled janitor: its own least-privilege account, a Cloud Run job that runs the
real `deploytest cleanup --expired`, the schedule that starts it, and the leak alert."""

from __future__ import annotations

import pytest
from deploytest_infra.janitor import JANITOR_PERMISSIONS, LEAK_EVENT, JanitorProps
from deploytest_infra.settings import InfraSettings, SettingsError

from .conftest import Synth
from .test_stack import ref, sa_member


def janitor_member(synth: Synth) -> str:
    return sa_member(synth, f"dt-{synth.settings.environment}-janitor")


def test_the_janitor_account_may_only_take_endpoints_down(synth: Synth) -> None:
    role = synth.one("google_project_iam_custom_role")
    assert sorted(role["permissions"]) == sorted(JANITOR_PERMISSIONS)
    for perm in role["permissions"]:  # nothing that creates, deploys, reads data or spends
        assert perm.startswith("aiplatform.") and not perm.endswith(
            (".create", ".deploy", ".predict", ".update", ".setIamPolicy")
        )
    grants = {
        (m["role"], m["member"]) for m in synth.resources("google_project_iam_member").values()
    }
    mine = {r for r, m in grants if m == janitor_member(synth)}
    assert mine == {ref(synth, "google_project_iam_custom_role", "id")}
    # run.invoker on its own job only (the schedule runs the job as the janitor)
    [invoker] = synth.resources("google_cloud_run_v2_job_iam_member").values()
    assert invoker["role"] == "roles/run.invoker" and invoker["member"] == janitor_member(synth)
    assert invoker["name"] == ref(synth, "google_cloud_run_v2_job", "name")
    for tf_type in ("google_service_account_iam_member", "google_storage_bucket_iam_member"):
        assert all(m["member"] != janitor_member(synth) for m in synth.resources(tf_type).values())


def test_the_job_runs_the_real_janitor_command_as_the_janitor(synth: Synth) -> None:
    from deploytest.cli import build_parser

    s = synth.settings
    job = synth.one("google_cloud_run_v2_job")
    task = job["template"]["template"]
    assert task["service_account"] == ref(
        synth, "google_service_account", "email", account_id=f"dt-{s.environment}-janitor"
    )
    [container] = task["containers"]
    assert container["image"] == (
        f"{s.region}-docker.pkg.dev/{s.project_id}/{s.docker_repository}/components:latest"
    )
    assert container["command"] == ["deploytest"]
    args = build_parser().parse_args(container["args"])  # our own CLI accepts it
    assert args.command == "cleanup" and args.expired and not args.dry_run
    assert (args.project, args.location, args.max_age) == (s.project_id, s.region, "24h")
    # the job may run longer than the clean-up bound it gives the command
    assert int(task["timeout"].rstrip("s")) > args.timeout_s
    assert job["deletion_protection"] is False


def test_the_schedule_starts_the_job_with_an_oauth_token(synth: Synth) -> None:
    s = synth.settings
    [sched] = [
        j
        for j in synth.resources("google_cloud_scheduler_job").values()
        if j["name"] == f"{s.prefix}-janitor"
    ]
    assert sched["schedule"] == s.janitor_schedule
    target = sched["http_target"]
    assert target["http_method"] == "POST"
    job_id = ref(synth, "google_cloud_run_v2_job", "id")
    assert target["uri"] == f"https://run.googleapis.com/v2/{job_id}:run"
    assert target["oauth_token"]["service_account_email"] == ref(
        synth, "google_service_account", "email", account_id=f"dt-{s.environment}-janitor"
    )


def test_a_leak_the_janitor_logs_raises_an_alert(synth: Synth) -> None:
    from components.janitor import LEAK_EVENT as LOGGED

    assert LEAK_EVENT == LOGGED  # the metric counts what the janitor really writes
    metric = synth.one("google_logging_metric")
    assert f'jsonPayload.event="{LEAK_EVENT}"' in metric["filter"]
    assert 'resource.type="cloud_run_job"' in metric["filter"]
    assert f'resource.labels.job_name="{synth.settings.prefix}-janitor"' in metric["filter"]
    assert metric["metric_descriptor"]["metric_kind"] == "DELTA"
    policy = synth.one("google_monitoring_alert_policy")
    [condition] = policy["conditions"]
    threshold = condition["condition_threshold"]
    metric_name = ref(synth, "google_logging_metric", "name")
    assert f'metric.type="logging.googleapis.com/user/{metric_name}"' in threshold["filter"]
    assert threshold["comparison"] == "COMPARISON_GT" and threshold["threshold_value"] == 0
    assert policy.get("enabled", True) is not False and policy["documentation"]["content"]


def test_apis_for_the_janitor_are_enabled(synth: Synth) -> None:
    names = {svc["service"] for svc in synth.resources("google_project_service").values()}
    assert {"run.googleapis.com", "monitoring.googleapis.com"} <= names


# ---- settings (no jsii) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"janitor_schedule": "hourly"}, "janitor_schedule"),
        ({"janitor_max_age": "a day"}, "janitor_max_age"),
        ({"janitor_max_age": "0h"}, "janitor_max_age"),
        ({"janitor_alert_channels": ["me@example.com"]}, "janitor_alert_channels"),
        ({"janitor_image": "not an image"}, "janitor_image"),
        ({"prices": {"NVIDIA_TESLA_T4": "cheap"}}, "prices"),
        ({"prices": {"NVIDIA_TESLA_T4": -1}}, "prices"),
    ],
)
def test_bad_janitor_and_price_settings_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        InfraSettings.from_mapping(overrides)


def test_props_take_what_the_janitor_needs_from_the_settings() -> None:
    s = InfraSettings(
        janitor_image="europe-docker.pkg.dev/p/r/components@sha256:" + "a" * 64,
        janitor_alert_channels=["projects/deploytest-demo/notificationChannels/123"],
        prices={"NVIDIA_TESLA_T4": 0.5},
    )
    props = JanitorProps.from_settings(s)
    assert props.image == s.janitor_image and props.alert_channels == s.janitor_alert_channels
    assert props.command[-4:] == ["--max-age", "24h", "--timeout-s", "900"]
    assert 6 <= len(props.account_id) <= 30
