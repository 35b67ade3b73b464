"""Every input check says which rule the value broke, not only the form it expected."""

from __future__ import annotations

import pytest

from deploytest.cli import main
from pipelines import validation as v

OK_SA = "dt-dev-runner@p-demo.iam.gserviceaccount.com"
SUBMIT = [
    "submit",
    "--project",
    "p-demo",
    "--pipeline-root",
    "gs://bucket-ok/root",
    "--service-account",
    OK_SA,
    "--model",
    "projects/p-demo/locations/us-central1/models/1",
    "--locustfile",
    "gs://bucket-ok/locustfile.py",
    "--template-uri",
    "https://us-central1-kfp.pkg.dev/p-demo/repo/deploytest/sha256:" + "a" * 64,
    "--dry-run",
]


@pytest.mark.parametrize(
    "value, rule",
    [
        ("s3://bucket/root", "expected gs://BUCKET/PATH"),
        ("gs:///root", "expected gs://BUCKET/PATH"),
        ("gs://b/root", "a bucket name is 3 to 63 characters long, not 1"),
        ("gs://" + "b" * 64 + "/root", "3 to 63 characters long, not 64"),
        ("gs://My-Bucket/root", "only lowercase letters, digits, '-', '_' and '.', not 'BM'"),
        ("gs://-bucket/root", "starts and ends with a letter or digit"),
        ("gs://a." + "b" * 64 + "/root", "at most 63 between dots"),
    ],
)
def test_gcs_uri_names_the_rule(value, rule) -> None:
    with pytest.raises(v.InputError, match=f"invalid --pipeline-root '.*': .*{_re(rule)}"):
        v.gcs_uri(value, "--pipeline-root")


@pytest.mark.parametrize(
    "value, rule",
    [
        ("runner", "expected NAME@PROJECT.iam.gserviceaccount.com"),
        ("runner@p-demo.example.com", "expected NAME@PROJECT.iam.gserviceaccount.com"),
        ("sa@p-demo.iam.gserviceaccount.com", "the account name 'sa' must be 6 to 30 characters"),
        ("a" * 31 + "@p-demo.iam.gserviceaccount.com", "must be 6 to 30 characters long, not 31"),
        (
            "Runner1@p-demo.iam.gserviceaccount.com",
            "only lowercase letters, digits and '-', not 'R'",
        ),
        ("1runner@p-demo.iam.gserviceaccount.com", "must start with a lowercase letter"),
        ("runner-@p-demo.iam.gserviceaccount.com", "must not end with '-'"),
        ("runner@P_demo.iam.gserviceaccount.com", "the project part 'P_demo' may contain only"),
    ],
)
def test_service_account_names_the_rule(value, rule) -> None:
    with pytest.raises(v.InputError, match=_re(rule)):
        v.service_account(value)


@pytest.mark.parametrize(
    "value, rule",
    [
        ("demo", "a project ID must be 6 to 30 characters long, not 4"),
        ("Demo-project", "may contain only lowercase letters, digits and '-', not 'D'"),
        ("9demo-project", "must start with a lowercase letter"),
        ("demo-project-", "must not end with '-'"),
    ],
)
def test_project_names_the_rule(value, rule) -> None:
    with pytest.raises(v.InputError, match=_re(rule)):
        v.project(value)


@pytest.mark.parametrize(
    "value, rule",
    [
        ("models/1", "six parts joined by '/'"),
        ("projects/p/locations//models/1", "the locations part is empty"),
        ("projects//locations/l/models/", "the projects, models part is empty"),
    ],
)
def test_model_names_the_rule(value, rule) -> None:
    with pytest.raises(v.InputError, match=_re(rule)):
        v.model_resource(value)


def test_other_checks_say_what_is_allowed() -> None:
    with pytest.raises(v.InputError, match="ending in one or two digits"):
        v.location("us-central")
    with pytest.raises(v.InputError, match="NVIDIA_… or TPU_…"):
        v.accelerator("nvidia-t4", 1)
    with pytest.raises(v.InputError, match="each part non-empty"):
        v.kms_key("projects/p/locations/l/keyRings//cryptoKeys/k")
    with pytest.raises(v.InputError, match="e.g. n1-standard-8"):
        v.pipeline_parameters({"machine_type": "N1"})


def test_valid_values_pass() -> None:
    assert v.gcs_uri("gs://bucket-ok/root", "x") == "gs://bucket-ok/root"
    assert v.gcs_uri("gs://my.bucket.example/root", "x")
    assert v.service_account(OK_SA) == OK_SA
    assert v.project("p-demo") == "p-demo"
    assert v.model_resource("projects/p/locations/l/models/1@2")


@pytest.mark.parametrize(
    "option, value, message",
    [
        (
            "--pipeline-root",
            "gs://b/root",
            "invalid pipeline root 'gs://b/root': a bucket name is 3 to 63 characters long",
        ),
        (
            "--service-account",
            "sa@p-demo.iam.gserviceaccount.com",
            "the account name 'sa' must be 6 to 30 characters long, not 2",
        ),
    ],
)
def test_submit_says_which_rule(capsys, option, value, message) -> None:
    argv = list(SUBMIT)
    argv[argv.index(option) + 1] = value
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_submit_require_version_refuses_a_tag(capsys) -> None:
    argv = [*SUBMIT, "--require-version"]
    argv[argv.index("--template-uri") + 1] = (
        "https://us-central1-kfp.pkg.dev/p-demo/repo/deploytest/main"
    )
    assert main(argv) == 2
    assert "must end in a sha256: version, not a tag" in capsys.readouterr().err


def _re(text: str) -> str:
    import re

    return re.escape(text)
