import pytest

from components.runtime.make_labels import (
    label_value,
    resource_labels,
    run_filter,
    run_label,
    validate_labels,
)


def test_run_label_prefers_the_explicit_run_id():
    assert run_label("Local-2026_11", "job-1") == "local-2026_11"
    assert run_label("", "deploytest-20261125081106") == "deploytest-20261125081106"


def test_run_label_is_the_job_id_of_the_resource_name_and_unique_when_cut():
    name = "projects/p/locations/us-central1/pipelineJobs/deploytest-20261125081106"
    assert run_label("", name) == "deploytest-20261125081106"
    # Two 128-character ids sharing their first 63 characters get different labels.
    a, b = "a" * 100 + "-one", "a" * 100 + "-two"
    la, lb = run_label("", f"projects/p/locations/l/pipelineJobs/{a}"), run_label("", b)
    assert la != lb and len(la) <= 63 and len(lb) <= 63
    assert run_label("", a) == la  # the same job, by name or by id, the same label
    with pytest.raises(ValueError, match="not substituted"):
        run_label("", "{{$.pipeline_job_resource_name}}")


def test_label_values_follow_gcp_rules():
    assert label_value("My Pipeline/Run:42") == "my-pipeline-run-42"
    long = label_value("x" * 100)
    assert len(long) == 63
    with pytest.raises(ValueError):
        run_label("", "")


def test_resource_labels_carry_cost_labels_and_run():
    labels = resource_labels("", "job-7", {"team": "ml-platform", "env": "dev"})
    assert labels == {
        "team": "ml-platform",
        "env": "dev",
        "deploytest-run": "job-7",
        "deploytest-managed": "true",
    }
    assert run_filter("job-7") == 'labels.deploytest-run="job-7"'


def test_invalid_cost_labels_are_refused_with_every_offender():
    with pytest.raises(ValueError) as err:
        validate_labels({"Team": "x", "env": "Prod", "ok": "fine"})
    assert "Team=x" in str(err.value) and "env=Prod" in str(err.value)
    assert "ok=fine" not in str(err.value)


def test_endpoints_carry_an_expiry_made_of_the_runs_own_bounds():
    from components.runtime.make_labels import EXPIRY_SLACK_S, expires_at

    when = expires_at(1_000_000, deploy_timeout_s=1800, load_s=20, cleanup_timeout_s=900)
    assert when == 1_000_000 + 1800 + 20 + 900 + EXPIRY_SLACK_S
    labels = resource_labels("run-1", "", {"team": "x"}, expires=when)
    assert labels["deploytest-expires-at"] == str(when)
    validate_labels(labels)  # a unix second is a valid label value
    assert "deploytest-expires-at" not in resource_labels("run-1", "")
    with pytest.raises(ValueError):
        expires_at(0, -1, 0, 0)
