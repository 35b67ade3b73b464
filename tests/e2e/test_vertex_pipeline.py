"""The production path offline: the `vertex` YAML that Cloud Build and the Scheduler submit,
run by the embedded Vertex AI Pipelines through the official SDK with only the emulator's
client environment (default hosts, no api_endpoint), with GCPC's own launchers creating and
deploying, Locust through the proxy, and the exit handler cleaning up."""

from __future__ import annotations

import functools
import time
import uuid
from pathlib import Path

import pytest

from deploytest.run.demo_model import ensure_demo_model, register_model
from emulator.launcher import EmulatorProcess
from pipelines.compile import compile_pipeline
from tests.pipeline_job_states import wait_for_job

pytestmark = pytest.mark.slow

PROJECT, LOCATION = "p", "us-central1"
LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An emulator, the compiled vertex YAML, the demo model registered, the locustfile in
    Cloud Storage and the pipeline root's bucket (what infra/ creates on Google Cloud)."""
    tmp = tmp_path_factory.mktemp("vertex")
    template = compile_pipeline(tmp / "vertex.yaml")
    model_dir = ensure_demo_model(tmp_path_factory.mktemp("cache"), "tiny", lambda _: None)
    with EmulatorProcess(tmp / "emulator") as emu:
        yield emu, template, model_dir


def sdk_for(emu, monkeypatch):
    """The SDK with `emu`'s client environment only, and the buckets infra/ creates."""
    from google.cloud import aiplatform, storage
    from google.cloud.aiplatform import initializer

    for key, value in emu.client_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(initializer, "global_config", initializer._Config())
    initializer.global_config.init(project=PROJECT, location=LOCATION, api_transport="rest")
    client = storage.Client()
    for bucket in ("pipeline-root", "tests"):
        if client.lookup_bucket(bucket) is None:
            client.create_bucket(bucket)
    client.bucket("tests").blob("locustfile.py").upload_from_filename(str(LOCUSTFILE))
    return aiplatform


@pytest.fixture
def sdk(world, monkeypatch):
    """The SDK with the emulator's environment only; after each test: no endpoint, no model
    server."""
    emu, template, model_dir = world
    aiplatform = sdk_for(emu, monkeypatch)
    model = register_model(PROJECT, LOCATION, "", model_dir, "tiny")
    yield aiplatform, emu, template, model
    assert aiplatform.Endpoint.list() == []
    assert emu.processes() == []


def submit(aiplatform, template, model, duration="3s", display_name="deploytest-manual"):
    job = aiplatform.PipelineJob(
        display_name=display_name,
        # The SDK's default id has one-second resolution: two submits in one second clash.
        job_id=f"deploytest-{uuid.uuid4().hex[:12]}",
        template_path=str(template),
        pipeline_root="gs://pipeline-root/runs",
        parameter_values={
            "project": PROJECT,
            "location": LOCATION,
            "model": model,
            "model_uri": f"https://{LOCATION}-aiplatform.googleapis.com/v1/{model}",
            "locustfile": "gs://tests/locustfile.py",
            "duration": duration,
            "users": 2,
            "spawn_rate": 2.0,
        },
        enable_caching=False,
    )
    job.submit()
    return job


wait = functools.partial(wait_for_job, timeout=240, poll_s=0.5)


def test_two_jobs_with_one_display_name_succeed_and_clean_up_only_their_own(sdk):
    """The vertex YAML runs to SUCCEEDED; each job's clean-up deletes its own endpoint only
    (with the run label from the display name, the short job's clean-up would delete the
    long job's endpoint during its load test, and the long job would fail)."""
    aiplatform, emu, template, model = sdk
    short = submit(aiplatform, template, model, duration="2s")
    long = submit(aiplatform, template, model, duration="12s")
    assert short.resource_name != long.resource_name
    for job in (short, long):
        state, by_task = wait(aiplatform, job.resource_name)
        assert state == "PIPELINE_STATE_SUCCEEDED", by_task
        assert set(by_task.values()) == {"SUCCEEDED"}, by_task
        assert {"endpoint-create", "model-deploy", "cleanup-endpoints"} <= set(by_task)
    # The run report is an object in each job's pipeline root.
    from google.cloud import storage

    names = [b.name for b in storage.Client().list_blobs("pipeline-root", prefix="runs/")]
    for job in (short, long):
        job_id = job.resource_name.rsplit("/", 1)[1]
        (report,) = [n for n in names if n == f"runs/{job_id}/record-run/report"]
        page = storage.Client().bucket("pipeline-root").blob(report).download_as_text()
        assert "<html" in page.lower() and job_id in page


def test_cancel_during_the_load_test_runs_the_clean_up(sdk):
    aiplatform, emu, template, model = sdk
    job = submit(aiplatform, template, model, duration="120s")
    wait(aiplatform, job.resource_name, until=lambda s, t: t.get("locust-load-test") == "RUNNING")
    assert len(aiplatform.Endpoint.list()) == 1 and len(emu.processes()) == 1
    started = time.monotonic()
    job.cancel()
    state, by_task = wait(aiplatform, job.resource_name, timeout=60)
    took = time.monotonic() - started
    assert state == "PIPELINE_STATE_CANCELLED", by_task
    assert by_task["locust-load-test"] == "CANCELLED"
    assert by_task["cleanup-endpoints"] == "SUCCEEDED"
    assert "slo-gate" not in by_task or by_task["slo-gate"] == "CANCELLED"
    assert took < 15, f"cancel to CANCELLED took {took:.1f} s"


def test_an_emulator_killed_mid_job_fails_it_and_the_janitor_removes_its_endpoint(
    world, tmp_path, monkeypatch
):
    """SIGKILL of the emulator during the load test: the job's runner and tasks end with it
    (the exit handler cannot run), the restarted emulator reports the job FAILED with the
    reason, the endpoint the job created is left, and the janitor takes it down with its
    model server: no process is orphaned."""
    import httpx

    from components.janitor import clean_expired
    from tests.processes import processes_mentioning

    _, template, model_dir = world
    state = tmp_path / "emulator"
    emu = EmulatorProcess(state).start()
    try:
        aiplatform = sdk_for(emu, monkeypatch)
        model = register_model(PROJECT, LOCATION, "", model_dir, "tiny")
        job = submit(aiplatform, template, model, duration="120s")
        wait(
            aiplatform, job.resource_name, until=lambda s, t: t.get("locust-load-test") == "RUNNING"
        )
        job_dir = str(state / "pipelines" / job.resource_name.rsplit("/", 1)[1])
        assert processes_mentioning(job_dir)
        emu.crash()
        deadline = time.monotonic() + 15
        while processes_mentioning(job_dir) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert processes_mentioning(job_dir) == []
    finally:
        emu.stop(check=False)
    with EmulatorProcess(state) as again:
        job = httpx.get(f"{again.url}/v1/{job.resource_name}").json()
        assert job["state"] == "PIPELINE_STATE_FAILED"
        assert "restarted" in job["error"]["message"]
        endpoints = httpx.get(f"{again.url}/v1/projects/{PROJECT}/locations/{LOCATION}/endpoints")
        assert len(endpoints.json().get("endpoints", [])) == 1  # the exit handler never ran
        # the janitor's run after the endpoint's expiry
        expired, record = clean_expired(
            PROJECT, LOCATION, api_endpoint=again.url, now=time.time() + 7 * 24 * 3600
        )
        assert len(expired) == 1 and record.left == [] and record.endpoints[0].deleted
        endpoints = httpx.get(f"{again.url}/v1/projects/{PROJECT}/locations/{LOCATION}/endpoints")
        assert endpoints.json().get("endpoints", []) == []
        assert again.processes() == []
    # no model server of the demo model outlived the two emulators
    assert [
        p for p in processes_mentioning(str(model_dir)) if "-m serving" in " ".join(p.cmdline())
    ] == []


def test_a_hung_deploy_of_a_job_nobody_waits_for_is_ended_by_the_janitor(sdk):
    """A job from Cloud Scheduler has no waiter to keep the deploy timeout, and GCPC's deploy
    launcher waits for its operation without a bound. The janitor does: once the endpoint's
    expiry has passed it cancels the deploy in flight and deletes the endpoint; the deploy
    task then fails and the exit handler runs."""
    from components.janitor import clean_expired

    aiplatform, emu, template, model = sdk
    emu.set_faults({"deploy": "hang"})
    try:
        job = submit(aiplatform, template, model)
        wait(aiplatform, job.resource_name, until=lambda s, t: t.get("model-deploy") == "RUNNING")
        time.sleep(2)  # the launcher is polling its deploy operation
        expired, record = clean_expired(
            PROJECT, LOCATION, api_endpoint=emu.url, now=time.time() + 7 * 24 * 3600
        )
        assert len(expired) == 1 and record.left == [], record
        state, by_task = wait(aiplatform, job.resource_name, timeout=60)
    finally:
        emu.clear_faults()
    assert state == "PIPELINE_STATE_FAILED", by_task
    assert by_task["model-deploy"] == "FAILED" and "locust-load-test" not in by_task
    assert by_task["cleanup-endpoints"] == "SUCCEEDED"
