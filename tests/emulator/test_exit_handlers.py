"""Exit handlers as Vertex AI runs them, with the seed's pattern: GCPC's ModelUndeployOp and
EndpointDeleteOp as the exit task through a sub-pipeline that takes plain strings (an exit
task may not depend on tasks, kfp #10187), submitted with the official SDK and only the
emulator's client environment. Succeeded, failed, cancelled during the load and cancelled
during the clean-up: each leaves no endpoint and no model-server process. A task that the
runner kills is never SUCCEEDED, though it exits 0 on SIGTERM as GCPC's launchers do."""

# No `from __future__ import annotations`: kfp reads the components' annotations.
import functools
import time
import uuid
from typing import NamedTuple

import httpx
import psutil
import pytest
from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from google_cloud_pipeline_components.v1.endpoint import (
    EndpointCreateOp,
    EndpointDeleteOp,
    ModelDeployOp,
    ModelUndeployOp,
)
from kfp import compiler, dsl

from emulator.client import EmulatorAdmin
from tests.emulator.conftest import FAKE_SERVER, upload_fake
from tests.pipeline_job_states import TERMINAL, job_states, wait_for_job
from tests.processes import gone, processes_mentioning

PROJECT, LOCATION = "p", "us-central1"
CLEAN_UP = ("find-endpoint", "model-undeploy", "endpoint-delete")


# Exits 0 on SIGTERM, as GCPC's launchers do (their ExecutionContext calls os._exit(0)),
# and is its container's command itself (no shell around it that would die of the signal).
SIGTERM_EXITS_0 = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
time.sleep(float(sys.argv[1]))
if sys.argv[2].lower() == "true":
    raise RuntimeError("the load test failed on purpose")
"""


@dsl.container_component
def load(seconds: float, fail: bool):
    return dsl.ContainerSpec(
        image="python:3.11", command=["python3", "-c", SIGTERM_EXITS_0], args=[seconds, fail]
    )


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def find_endpoint(project: str, location: str, display_name: str, hold: str) -> NamedTuple(
    "Found", endpoint=str, model=str
):
    """The endpoint of this display name and its deployed model, by Google's default host.
    With `hold`, first waits until that file exists: the tests cancel while this runs."""
    import collections
    import os
    import time

    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    deadline = time.monotonic() + 60
    while hold and not os.path.exists(hold):
        assert time.monotonic() < deadline, f"{hold} never appeared"
        time.sleep(0.05)
    credentials, _ = google.auth.default()
    parent = f"projects/{project}/locations/{location}"
    resp = AuthorizedSession(credentials).get(
        f"https://{location}-aiplatform.googleapis.com/v1/{parent}/endpoints",
        params={"filter": f'display_name="{display_name}"'},
    )
    resp.raise_for_status()
    (endpoint,) = resp.json()["endpoints"]
    found = collections.namedtuple("Found", ["endpoint", "model"])
    return found(endpoint["name"], endpoint["deployedModels"][0]["model"])


@dsl.pipeline(name="undeploy-and-delete")
def undeploy_and_delete(project: str, location: str, display_name: str, hold: str):
    found = find_endpoint(project=project, location=location, display_name=display_name, hold=hold)
    endpoint = dsl.importer(
        artifact_uri=found.outputs["endpoint"],
        artifact_class=VertexEndpoint,
        metadata={"resourceName": found.outputs["endpoint"]},
    )
    model = dsl.importer(
        artifact_uri=found.outputs["model"],
        artifact_class=VertexModel,
        metadata={"resourceName": found.outputs["model"]},
    )
    undeploy = ModelUndeployOp(model=model.output, endpoint=endpoint.output)
    EndpointDeleteOp(endpoint=endpoint.output).after(undeploy)


@dsl.pipeline(name="seed-pattern")
def seed(
    project: str,
    location: str,
    display_name: str,
    model_name: str,
    model_uri: str,
    seconds: float = 0.0,
    fail: bool = False,
    hold: str = "",
):
    clean_up = undeploy_and_delete(
        project=project, location=location, display_name=display_name, hold=hold
    )
    with dsl.ExitHandler(clean_up):
        model = dsl.importer(
            artifact_uri=model_uri,
            artifact_class=VertexModel,
            metadata={"resourceName": model_name},
        )
        endpoint = EndpointCreateOp(project=project, location=location, display_name=display_name)
        deploy = ModelDeployOp(
            model=model.output,
            endpoint=endpoint.outputs["endpoint"],
            dedicated_resources_machine_type="n1-standard-2",
            dedicated_resources_min_replica_count=1,
            dedicated_resources_max_replica_count=1,
        )
        load(seconds=seconds, fail=fail).after(deploy)


@pytest.fixture(scope="module")
def world(emulator, tmp_path_factory):
    """The SDK with only the emulator's client environment (what the env file holds), the
    pipeline root's bucket, the fake model registered and the seed pattern compiled."""
    from google.cloud import aiplatform, storage
    from google.cloud.aiplatform import initializer

    template = tmp_path_factory.mktemp("seed") / "seed.yaml"
    compiler.Compiler().compile(seed, str(template))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in emulator.client_env().items():
            mp.setenv(key, value)
        mp.setattr(initializer, "global_config", initializer._Config())
        initializer.global_config.init(project=PROJECT, location=LOCATION, api_transport="rest")
        if storage.Client().lookup_bucket("bucket") is None:
            storage.Client().create_bucket("bucket")
        model = upload_fake(aiplatform, display_name="seed-model")
        yield aiplatform, template, model
        model.delete()


@pytest.fixture
def seed_run(world, emulator, tmp_path):
    """Submits the seed pattern; afterwards no endpoint and no model server is left: by the
    API, by the emulator's process list, and by ps (the fake server's command line). What a
    failed test leaves is cleaned up after the check, so the next test starts empty."""
    aiplatform, template, model = world
    seen: set[int] = set()
    jobs: list[str] = []
    hold = tmp_path / "release"  # find-endpoint waits for it with `hold_clean_up`

    def submit(hold_clean_up: bool = False, **values) -> tuple[str, str]:
        name = f"seed-{uuid.uuid4().hex[:8]}"
        job = aiplatform.PipelineJob(
            display_name=name,
            job_id=name,
            template_path=str(template),
            pipeline_root="gs://bucket/root",
            parameter_values={
                "project": PROJECT,
                "location": LOCATION,
                "display_name": name,
                "model_name": model.resource_name,
                "model_uri": f"https://{LOCATION}-aiplatform.googleapis.com/v1/"
                + model.resource_name,
                "hold": str(hold) if hold_clean_up else "",
                **values,
            },
            enable_caching=False,
        )
        job.submit()
        jobs.append(job.resource_name)
        return job.resource_name, name

    def servers() -> list[dict]:
        found = emulator.processes()
        seen.update(p["pid"] for p in found)
        return found

    yield aiplatform, submit, servers, hold
    hold.touch()
    for name in jobs:  # a failed test's job: ended before the check
        job = aiplatform.PipelineJob.get(name)
        if job.state.name not in TERMINAL and job.state.name != "PIPELINE_STATE_CANCELLING":
            job.cancel()
        wait(aiplatform, name)
    left, running = aiplatform.Endpoint.list(), servers()
    for endpoint in left:
        endpoint.undeploy_all()
        endpoint.delete()
    assert left == []
    assert running == []
    assert [p for p in seen if not gone(p)] == []
    assert processes_mentioning(FAKE_SERVER) == []


# The whole module waits briefly and fails as soon as a job ends otherwise than awaited.
wait = functools.partial(wait_for_job, timeout=120, poll_s=0.2, fail_if_ended=True)


def wait_log(emulator, job_id, text, timeout=30) -> None:
    """Until the job's runner logged `text`: it has handled the cancel."""
    admin = EmulatorAdmin(emulator.url)
    deadline = time.monotonic() + timeout
    while text.encode() not in admin.pipeline_log(job_id):
        assert time.monotonic() < deadline, f"{job_id}: no {text!r} in the log"
        time.sleep(0.1)


def _cmd(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def cancel(aiplatform, name) -> None:
    """The SDK's cancel: it raises unless the emulator answers 200."""
    aiplatform.PipelineJob.get(name).cancel()


def test_succeeded_runs_the_exit_sub_pipeline(seed_run):
    aiplatform, submit, servers, _ = seed_run
    name, _ = submit(seconds=0.0)
    job_state, tasks = wait(aiplatform, name)
    assert job_state == "PIPELINE_STATE_SUCCEEDED", tasks
    assert {t: tasks[t] for t in ("endpoint-create", "model-deploy", "load", *CLEAN_UP)} == {
        t: "SUCCEEDED" for t in ("endpoint-create", "model-deploy", "load", *CLEAN_UP)
    }


def test_a_failing_task_fails_the_job_and_the_exit_sub_pipeline_cleans_up(seed_run):
    aiplatform, submit, servers, _ = seed_run
    name, _ = submit(fail=True)
    job_state, tasks = wait(aiplatform, name)
    assert job_state == "PIPELINE_STATE_FAILED", tasks
    assert tasks["load"] == "FAILED"
    assert [tasks[t] for t in CLEAN_UP] == ["SUCCEEDED"] * 3, tasks


def test_cancel_during_the_load_runs_the_exit_sub_pipeline_and_a_second_cancel_spares_it(
    seed_run, emulator
):
    """The load task exits 0 on SIGTERM and is still CANCELLED; every task of the exit
    sub-pipeline runs; a second cancel while it runs is answered {} and stops nothing."""
    aiplatform, submit, servers, hold = seed_run
    name, job_id = submit(hold_clean_up=True, seconds=120.0)
    wait(aiplatform, name, until=lambda s, t: t.get("load") == "RUNNING")
    assert len(servers()) == 1
    cancel(aiplatform, name)
    wait(aiplatform, name, until=lambda s, t: t.get("find-endpoint") == "RUNNING")
    assert job_states(aiplatform, name)[0] == "PIPELINE_STATE_CANCELLING"
    cancel(aiplatform, name)
    wait_log(emulator, job_id, "cancel again: ignored")
    hold.touch()
    job_state, tasks = wait(aiplatform, name)
    assert job_state == "PIPELINE_STATE_CANCELLED", tasks
    assert tasks["load"] == "CANCELLED"
    assert [tasks[t] for t in CLEAN_UP] == ["SUCCEEDED"] * 3, tasks
    assert aiplatform.PipelineJob.get(name).gca_resource.error.code == 1


def test_a_cancel_while_the_exit_sub_pipeline_runs_does_not_stop_it(seed_run, emulator):
    aiplatform, submit, servers, hold = seed_run
    name, job_id = submit(hold_clean_up=True, seconds=0.0)
    wait(aiplatform, name, until=lambda s, t: t.get("find-endpoint") == "RUNNING")
    deadline = time.monotonic() + 30  # the state is written just before the process starts
    while not (procs := [p for p in processes_mentioning(job_id) if "find_endpoint" in _cmd(p)]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancel(aiplatform, name)
    wait_log(emulator, job_id, "cancel: stopping 0 running task(s)")
    assert [p for p in procs if not p.is_running() or p.status() == psutil.STATUS_ZOMBIE] == []
    hold.touch()
    job_state, tasks = wait(aiplatform, name)
    assert job_state == "PIPELINE_STATE_CANCELLED", tasks
    assert tasks["load"] == "SUCCEEDED"
    assert [tasks[t] for t in CLEAN_UP] == ["SUCCEEDED"] * 3, tasks


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def exit_step(item: int):
    print(f"exit step {item} ran")


@dsl.pipeline(name="fan-out")
def fan_out():
    with dsl.ParallelFor([1, 2]) as item:
        exit_step(item=item)


@dsl.pipeline(name="parallel-clean-up")
def parallel_clean_up():
    with dsl.ExitHandler(fan_out()):
        load(seconds=120.0, fail=False)


def test_a_parallel_for_in_the_exit_sub_pipeline_runs_on_cancel(world, emulator, tmp_path):
    """kfp.local runs ParallelFor iterations in a thread pool: they are still in the exit
    handler's subtree."""
    aiplatform, _, _ = world
    path = tmp_path / "parallel.yaml"
    compiler.Compiler().compile(parallel_clean_up, str(path))
    job = aiplatform.PipelineJob(
        display_name="parallel", template_path=str(path), pipeline_root="gs://bucket/root"
    )
    job.submit()
    wait(aiplatform, job.resource_name, until=lambda s, t: t.get("load") == "RUNNING")
    cancel(aiplatform, job.resource_name)
    job_state, tasks = wait(aiplatform, job.resource_name)
    assert job_state == "PIPELINE_STATE_CANCELLED", tasks
    assert tasks == {"load": "CANCELLED", "exit-step": "SUCCEEDED"}
    # rows for the exit sub-pipeline, its loop and each iteration, each task under its own
    details = aiplatform.PipelineJob.get(job.resource_name).task_details
    rows = {t.task_unique_name: t for t in details}
    loop = rows["fan-out.for-loop-2"]
    assert loop.parent_task_id == rows["fan-out"].task_id
    for i in (0, 1):
        iteration = rows[f"fan-out.for-loop-2.for-loop-2-iteration-{i}"]
        assert iteration.parent_task_id == loop.task_id
        step = rows[f"fan-out.for-loop-2.for-loop-2-iteration-{i}.exit-step"]
        assert step.parent_task_id == iteration.task_id and step.state.name == "SUCCEEDED"
        assert step.execution.metadata["input:item"] == i + 1
    assert rows["exit-handler-1"].state.name == "CANCELLED"
    assert rows["fan-out"].state.name == "SUCCEEDED"
    log = EmulatorAdmin(emulator.url).pipeline_log(job.resource_name.rsplit("/", 1)[1])
    assert b"exit step 1 ran" in log and b"exit step 2 ran" in log


@dsl.pipeline(name="stopped-while-cleaning-up")
def stopped_while_cleaning_up():
    final = load(seconds=60.0, fail=False)
    with dsl.ExitHandler(final):
        load(seconds=0.0, fail=False)


def test_a_task_the_emulator_stops_is_failed_though_it_exits_0(tmp_path, monkeypatch):
    """The emulator stops while the exit task runs: the task, which exits 0 on SIGTERM, is
    FAILED (not SUCCEEDED) in the job the restarted emulator reports, and nothing is left."""
    import yaml

    from emulator.launcher import EmulatorProcess

    path = tmp_path / "stopped.yaml"
    compiler.Compiler().compile(stopped_while_cleaning_up, str(path))
    body = {
        "displayName": "stopped",
        "pipelineSpec": yaml.safe_load(path.read_text()),
        "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/root", "parameterValues": {}},
    }
    state_dir = tmp_path / "emu"
    emu = EmulatorProcess(state_dir).start()
    try:
        for key, value in emu.client_env().items():
            monkeypatch.setenv(key, value)
        from google.cloud import storage

        storage.Client().create_bucket("bucket")
        url = f"{emu.url}/v1/projects/{PROJECT}/locations/{LOCATION}/pipelineJobs"
        name = httpx.post(f"{url}?pipelineJobId=stopped", json=body).json()["name"]
        deadline = time.monotonic() + 60
        while _task(emu.url, name, "load").get("state") != "RUNNING":
            assert time.monotonic() < deadline, httpx.get(f"{emu.url}/v1/{name}").json()
            time.sleep(0.1)
        emu.stop()  # raises if a process it started outlived it
    finally:
        emu.stop(check=False)
    assert processes_mentioning(str(state_dir / "pipelines" / "stopped")) == []
    with EmulatorProcess(state_dir) as again:
        job = httpx.get(f"{again.url}/v1/{name}").json()
        assert job["state"] == "PIPELINE_STATE_FAILED", job
        assert "stopped" in job["error"]["message"]
        assert _task(again.url, name, "load")["state"] == "FAILED"
        assert _task(again.url, name, "load-2")["state"] == "SUCCEEDED"


def _task(url: str, name: str, task: str) -> dict:
    """The task's row in the job's `jobDetail.taskDetails` (REST, as the SDK reads it)."""
    details = httpx.get(f"{url}/v1/{name}").json().get("jobDetail", {}).get("taskDetails", [])
    return next((t for t in details if t["taskName"] == task), {})
