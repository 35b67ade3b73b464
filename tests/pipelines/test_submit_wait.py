"""`deploytest submit` against a loopback double of Vertex AI and Cloud Storage: it
checks the locustfile exists before creating the job, and `--wait` follows the job and
exits non-zero when it fails or is cancelled."""

import os
import re
import subprocess
import sys

import pytest

from deploytest.job_wait import WaitTimeout, wait_for_job

from .fake_pipeline_service import FakePipelineService

VERSION = "sha256:" + "0" * 64
TEMPLATE = f"https://europe-west10-kfp.pkg.dev/my-proj-123/pipelines/deploytest/{VERSION}"
LOCUSTFILE = "gs://my-loadtests/locustfiles/locustfile.py"
ARGS = [
    "--project", "my-proj-123",
    "--location", "europe-west10",
    "--pipeline-root", "gs://my-bucket/root",
    "--service-account", "pipeline-runner@my-proj-123.iam.gserviceaccount.com",
    "--model", "projects/my-proj-123/locations/europe-west10/models/42",
    "--locustfile", LOCUSTFILE,
    "--template-uri", TEMPLATE,
]  # fmt: skip


def submit(fake: FakePipelineService, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "STORAGE_EMULATOR_HOST": fake.url}
    return subprocess.run(
        [sys.executable, "-m", "deploytest", "submit", *ARGS, "--api-endpoint", fake.url,
         "--poll-s", "0.1", *extra],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


OBJECTS = {"my-loadtests/locustfiles/locustfile.py"}


@pytest.mark.parametrize(
    "final, code",
    [
        ("PIPELINE_STATE_SUCCEEDED", 0),
        ("PIPELINE_STATE_FAILED", 1),
        ("PIPELINE_STATE_CANCELLED", 1),
    ],
)
def test_wait_exit_code_follows_the_job(final, code):
    states = ["PIPELINE_STATE_PENDING", "PIPELINE_STATE_RUNNING", final]
    with FakePipelineService(states, OBJECTS, error="slo-gate failed") as fake:
        r = submit(fake, "--wait")
    assert r.returncode == code, r.stderr
    assert len(fake.created) == 1
    assert fake.created[0]["templateUri"] == TEMPLATE
    # a unique job id (the run label), in Vertex AI's id syntax
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,127}", fake.job_ids[0]), fake.job_ids
    assert fake.gets == 3  # polled until the terminal state, not beyond
    assert "RUNNING" in r.stdout and final.removeprefix("PIPELINE_STATE_") in r.stdout
    if code:
        assert final in r.stderr


def test_wait_rides_out_a_transient_error():
    states = ["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED"]
    with FakePipelineService(states, OBJECTS, unavailable_gets=frozenset({2})) as fake:
        r = submit(fake, "--wait")
    assert r.returncode == 0, r.stderr
    assert fake.attempts == 3 and fake.gets == 2


def test_a_refused_create_is_one_line_and_exit_1():
    with FakePipelineService(["PIPELINE_STATE_SUCCEEDED"], OBJECTS, refuse_create=True) as fake:
        r = submit(fake, "--wait")
    assert r.returncode == 1
    assert "nothing was created" in r.stderr and "Traceback" not in r.stderr
    assert fake.created == [] and fake.attempts == 0


def test_without_wait_submit_returns_after_create():
    with FakePipelineService(["PIPELINE_STATE_FAILED"], OBJECTS) as fake:
        r = submit(fake)
    assert r.returncode == 0, r.stderr
    assert len(fake.created) == 1 and fake.gets == 0


def test_missing_locustfile_is_refused_before_the_job_is_created():
    with FakePipelineService(["PIPELINE_STATE_SUCCEEDED"], set()) as fake:
        r = submit(fake, "--wait")
        assert r.returncode == 2
        assert f"the locustfile {LOCUSTFILE} does not exist" in r.stderr
        assert fake.created == []
        # Skippable on purpose; and --dry-run never looks.
        assert submit(fake, "--skip-locustfile-check").returncode == 0
        assert len(fake.created) == 1
        assert submit(fake, "--dry-run", "--json").returncode == 0
        assert len(fake.created) == 1


def test_a_model_that_is_not_in_the_registry_is_refused_before_the_job():
    with FakePipelineService(["PIPELINE_STATE_SUCCEEDED"], OBJECTS, model_found_after=None) as f:
        r = submit(f)
    assert r.returncode == 2
    assert "does not exist in the Model Registry" in r.stderr
    assert f.created == []


def test_submit_waits_for_a_model_whose_upload_is_finishing():
    with FakePipelineService(["PIPELINE_STATE_SUCCEEDED"], OBJECTS, model_found_after=3) as f:
        r = submit(f, "--model-wait-s", "30")
    assert r.returncode == 0, r.stderr
    assert f.model_gets == 3 and len(f.created) == 1
    assert "model not found yet" in r.stdout


def test_a_pipeline_compiled_with_the_placeholder_image_is_not_submitted():
    args = ARGS[: ARGS.index("--template-uri")]
    env = {k: v for k, v in os.environ.items() if k != "DEPLOYTEST_COMPONENT_IMAGE"}
    with FakePipelineService(["PIPELINE_STATE_SUCCEEDED"], OBJECTS) as fake:
        cmd = [sys.executable, "-m", "deploytest", "submit", *args, "--api-endpoint", fake.url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        assert r.returncode == 2 and "placeholder component image" in r.stderr
        pushed = {**env, "DEPLOYTEST_COMPONENT_IMAGE": "europe-west10-docker.pkg.dev/p/r/c:abc"}
        pushed["STORAGE_EMULATOR_HOST"] = fake.url
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=pushed)
        assert r.returncode == 0, r.stderr
    assert len(fake.created) == 1
    images = {
        e["container"]["image"]
        for e in fake.created[0]["pipelineSpec"]["deploymentSpec"]["executors"].values()
        if "container" in e
    }
    assert "europe-west10-docker.pkg.dev/p/r/c:abc" in images


def test_only_if_false_checks_inputs_and_creates_nothing():
    with FakePipelineService(["PIPELINE_STATE_SUCCEEDED"], OBJECTS) as fake:
        r = submit(fake, "--only-if", "false")
        assert r.returncode == 0 and "not submitting" in r.stdout
        bad = submit(fake, "--only-if", "false", "--model", "models/42")
        assert bad.returncode == 2
    assert fake.created == []


def test_wait_gives_up_after_its_bound():
    clock = iter(range(0, 1000, 10))
    with pytest.raises(WaitTimeout):
        wait_for_job(
            lambda: ("PIPELINE_STATE_RUNNING", ""),
            poll_s=10,
            timeout_s=35,
            progress=lambda _: None,
            sleep=lambda _: None,
            clock=lambda: next(clock),
        )


def test_job_ids_are_unique_within_one_second():
    from pipelines.submit import new_job_id

    ids = {new_job_id("deploytest-schedule") for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"deploytest-schedule-\d{14}-[0-9a-f]{6}", i) for i in ids)
    assert re.fullmatch(r"run-42-\d{14}-[0-9a-f]{6}", new_job_id("42 !"))


def test_task_states_are_the_tasks_that_run_not_the_dags_groups():
    """Vertex AI lists the root, exit-handler-1 and sub-pipelines in `taskDetails` too; the
    follower and the run's results report only the tasks that run an executor."""
    from deploytest.run.pipeline_job import task_states

    def row(name, state, schema):
        return {"taskName": name, "state": state, "execution": {"schemaTitle": schema}}

    job = {
        "jobDetail": {
            "taskDetails": [
                row("deploytest-20260101", "RUNNING", "system.Run"),
                row("exit-handler-1", "RUNNING", "system.DagExecution"),
                row("model-deploy", "SUCCEEDED", "system.ContainerExecution"),
                row("importer", "SUCCEEDED", "system.ImporterExecution"),
                {"taskName": "no-execution", "state": "FAILED"},
            ]
        }
    }
    assert set(task_states(job)) == {"model-deploy", "importer", "no-execution"}
