"""Vertex AI Pipelines in the emulator: the official SDK's PipelineJob runs a compiled
pipeline with an exit handler; failure, cancel and bad specs behave as on Vertex AI."""

# No `from __future__ import annotations`: kfp reads the components' annotations.
import json
import time
from typing import NamedTuple

import httpx
import pytest
from google.api_core import exceptions as gexc
from kfp import compiler, dsl

from tests.pipeline_job_states import GROUPS

PARENT = "projects/p/locations/us-central1"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def identity(out: dsl.OutputPath(str), job: str = dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER):
    with open(out, "w") as fh:
        fh.write(job)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def step(seconds: float, fail: bool) -> str:
    import time

    time.sleep(seconds)
    if fail:
        raise RuntimeError("step failed on purpose")
    return "done"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def after_all(marker: str, status: dsl.PipelineTaskFinalStatus):
    import dataclasses
    import json

    print(f"exit handler ran: {marker}")
    print("final status: " + json.dumps(dataclasses.asdict(status)), flush=True)


@dsl.pipeline(name="emulated-pipeline")
def graph(seconds: float = 0.0, fail: bool = False, count: int = 1):
    final = after_all(marker="bye")
    with dsl.ExitHandler(final):
        ident = identity()
        step(seconds=seconds, fail=fail).after(ident)


@pytest.fixture
def aiplatform(emulator, monkeypatch):
    """The official SDK with only the emulator's client environment: default hosts, the
    credentials file, REST transport; every test leaves no endpoint and no process."""
    from google.cloud import aiplatform as sdk
    from google.cloud.aiplatform import initializer

    for key, value in emulator.client_env().items():
        monkeypatch.setenv(key, value)
    # A fresh SDK configuration (no api_endpoint from other modules); `aiplatform.init` is
    # bound to the configuration of import time, so init the new one directly.
    monkeypatch.setattr(initializer, "global_config", initializer._Config())
    initializer.global_config.init(project="p", location="us-central1", api_transport="rest")
    from google.cloud import storage

    if storage.Client().lookup_bucket("bucket") is None:  # the pipeline root (infra/ on GCP)
        storage.Client().create_bucket("bucket")
    yield sdk
    assert emulator.processes() == []


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "pipeline.yaml"
    compiler.Compiler().compile(graph, str(path))
    return path


def wait_for(job_name, states, timeout=120):
    from google.cloud import aiplatform

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = aiplatform.PipelineJob.get(job_name)
        if job.state.name in states:
            return job
        time.sleep(0.3)
    raise AssertionError(f"{job_name} still {job.state.name}")


def tasks(job) -> dict:
    """{task name: state} of the tasks that run (not the rows of the DAG's groups)."""
    details = job.gca_resource.job_detail.task_details
    return {t.task_name: t.state.name for t in details if t.execution.schema_title not in GROUPS}


def final_status(job) -> dict:
    """The PipelineTaskFinalStatus the exit task printed (pipeline log); the emulator's URL
    from the client environment the `aiplatform` fixture set."""
    import os

    from emulator.client import EmulatorAdmin

    admin = EmulatorAdmin(os.environ["DEPLOYTEST_EMULATOR_URL"])
    log = admin.pipeline_log(job.resource_name.rsplit("/", 1)[1])
    (line,) = [x for x in log.decode().splitlines() if "final status: " in x]
    return json.loads(line.split("final status: ", 1)[1])


def submit(template, **values):
    from google.cloud import aiplatform

    job = aiplatform.PipelineJob(
        display_name="same-display-name",
        template_path=str(template),
        pipeline_root="gs://bucket/root",
        parameter_values=values,
        enable_caching=False,
    )
    job.submit()
    return job


def test_resource_manager_answers_the_sdks_bucket_ownership_check(aiplatform):
    from google.cloud import resourcemanager_v3, storage

    bucket = storage.Client().bucket("bucket")
    bucket.reload()
    project = resourcemanager_v3.ProjectsClient().get_project(name="projects/p")
    assert project.project_id == "p" and project.state.name == "ACTIVE"
    assert project.name == f"projects/{bucket.project_number}"


def test_sdk_pipeline_job_runs_to_succeeded_with_the_exit_handler(aiplatform, emulator, template):
    job = aiplatform.PipelineJob(
        display_name="run-and-wait",
        template_path=str(template),
        pipeline_root="gs://bucket/root",
        parameter_values={"seconds": 0.1},
        enable_caching=False,
    )
    job.run()  # the SDK's own submit and wait: it raises unless the job SUCCEEDED
    done = wait_for(job.resource_name, {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED"})
    assert done.state.name == "PIPELINE_STATE_SUCCEEDED", tasks(done)
    assert tasks(done) == {"identity": "SUCCEEDED", "step": "SUCCEEDED", "after-all": "SUCCEEDED"}
    # the DAG's own groups have rows too: the root (named after the job id) and the exit
    # handler, each task under its DAG; the SDK's `task_details` reads them
    job_id = job.resource_name.rsplit("/", 1)[1]
    rows = {t.task_unique_name: t for t in done.task_details}
    assert set(rows) == {
        job_id, "exit-handler-1", "exit-handler-1.identity", "exit-handler-1.step", "after-all"
    }  # fmt: skip
    root, handler = rows[job_id], rows["exit-handler-1"]
    assert root.task_name == job_id and not root.parent_task_id
    assert handler.parent_task_id == root.task_id == rows["after-all"].parent_task_id
    assert rows["exit-handler-1.step"].parent_task_id == handler.task_id
    assert handler.state.name == root.state.name == "SUCCEEDED"
    assert root.execution.metadata["input:seconds"] == 0.1
    identity_row = rows["exit-handler-1.identity"]
    assert identity_row.execution.metadata["output:out"] == job.resource_name
    assert "vertex-ai-pipelines-run-billing-id" in done.labels
    # The task saw the job's resource name; its outputs are objects under the pipeline root.
    from google.cloud import storage

    blobs = [b.name for b in storage.Client().list_blobs("bucket", prefix="root/")]
    (out,) = [b for b in blobs if b.endswith("identity/out")]
    assert storage.Client().bucket("bucket").blob(out).download_as_text() == job.resource_name
    listed = httpx.get(f"{emulator.url}/v1/{PARENT}/pipelineJobs").json()["pipelineJobs"]
    assert job.resource_name in [j["name"] for j in listed]
    # no service account given: the Compute Engine default one (PipelineJob.service_account)
    from emulator.resource_manager import project_number

    sa = f"{project_number()}-compute@developer.gserviceaccount.com"
    assert done.gca_resource.service_account == sa
    # the SDK's simple view sends a readMask: only those fields come back
    (simple,) = [
        j for j in aiplatform.PipelineJob.list(enable_simple_view=True)
        if j.resource_name == job.resource_name
    ]  # fmt: skip
    listed_view = simple.gca_resource  # read before `.state`, which fetches the whole job
    assert listed_view.state.name == "PIPELINE_STATE_SUCCEEDED"
    assert not listed_view.service_account and set(listed_view.pipeline_spec) == {"pipelineInfo"}
    masked = httpx.get(f"{emulator.url}/v1/{PARENT}/pipelineJobs?readMask=name,state").json()
    assert {tuple(sorted(j)) for j in masked["pipelineJobs"]} == {("name", "state")}
    bad = httpx.get(f"{emulator.url}/v1/{PARENT}/pipelineJobs?readMask=bogus")
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    # The task log, whole or from a byte offset (what a follower has not seen yet).
    from emulator.client import EmulatorAdmin

    job_id = job.resource_name.rsplit("/", 1)[1]
    whole = EmulatorAdmin(emulator.url).pipeline_log(job_id)
    assert b"exit handler ran: bye" in whole
    # the exit task's final status, as Vertex AI fills it: the job's own resource name
    assert final_status(job) == {
        "state": "SUCCEEDED",
        "pipeline_job_resource_name": job.resource_name,
        "pipeline_task_name": "exit-handler-1",
        "error_code": None,
        "error_message": None,
    }
    assert EmulatorAdmin(emulator.url).pipeline_log(job_id, 10) == whole[10:]
    logs = f"{emulator.url}/deploytest/v1/pipeline-logs/{job_id}"
    assert httpx.get(f"{logs}?offset=-1").status_code == 400


def test_a_failing_task_fails_the_job_and_the_exit_handler_still_runs(aiplatform, template):
    job = submit(template, fail=True)
    done = wait_for(job.resource_name, {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED"})
    assert done.state.name == "PIPELINE_STATE_FAILED"
    assert tasks(done)["step"] == "FAILED" and tasks(done)["after-all"] == "SUCCEEDED"
    assert "step" in done.gca_resource.error.message
    # the failed task's row carries its error; so do the DAGs it failed
    rows = {t.task_unique_name: t for t in done.task_details}
    step_row, handler = rows["exit-handler-1.step"], rows["exit-handler-1"]
    assert step_row.error.message == "RuntimeError: step failed on purpose"
    assert step_row.pipeline_task_status[-1].state.name == "FAILED"
    assert handler.state.name == "FAILED" and "[step]" in handler.error.message
    assert rows[job.resource_name.rsplit("/", 1)[1]].state.name == "FAILED"
    # the exit task's PipelineTaskFinalStatus names the failed task and its error
    status = final_status(job)
    assert status["state"] == "FAILED" and status["error_code"] == 9
    assert "The failed tasks are: [step]" in status["error_message"]
    assert "step: RuntimeError: step failed on purpose" in status["error_message"]


def test_cancel_stops_the_running_task_then_runs_the_exit_handler(aiplatform, template):
    job = submit(template, seconds=120)
    wait_for(job.resource_name, {"PIPELINE_STATE_RUNNING"})
    deadline = time.monotonic() + 60
    while tasks(aiplatform.PipelineJob.get(job.resource_name)).get("step") != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    started = time.monotonic()
    job.cancel()
    assert aiplatform.PipelineJob.get(job.resource_name).state.name in (
        "PIPELINE_STATE_CANCELLING",
        "PIPELINE_STATE_CANCELLED",
    )
    done = wait_for(job.resource_name, {"PIPELINE_STATE_CANCELLED", "PIPELINE_STATE_FAILED"})
    took = time.monotonic() - started
    assert done.state.name == "PIPELINE_STATE_CANCELLED"
    assert tasks(done)["step"] == "CANCELLED" and tasks(done)["after-all"] == "SUCCEEDED"
    assert took < 15, took
    rows = {t.task_unique_name: t for t in done.task_details}
    assert rows["exit-handler-1.step"].error.code == 1
    assert rows["exit-handler-1"].state.name == "CANCELLED"
    assert [s.state.name for s in rows["exit-handler-1.step"].pipeline_task_status] == [
        "RUNNING", "CANCELLED"
    ]  # fmt: skip
    status = final_status(job)
    assert status["state"] == "CANCELLED" and status["error_code"] == 1, status
    with pytest.raises(gexc.BadRequest, match="cannot be cancelled"):
        job.cancel()


def _spec(template) -> dict:
    import yaml

    return yaml.safe_load(template.read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s, v: s["deploymentSpec"]["executors"]["exec-step"]["container"].update(
                image="docker.io/evil/image:1"
            ),
            "unknown image",
        ),  # fmt: skip
        (lambda s, v: v.update(seconds="slow"), "must be NUMBER_DOUBLE"),
        (lambda s, v: v.update(nope=1), "unknown parameters"),
        (
            lambda s, v: s["root"]["inputDefinitions"]["parameters"].update(
                seconds={"parameterType": "NUMBER_DOUBLE"}
            ),
            "no value and no default",
        ),  # fmt: skip
        (
            lambda s, v: s["deploymentSpec"]["executors"]["exec-step"].update({"resolver": {}}),
            "only container and importer",
        ),  # fmt: skip
    ],
)
def test_bad_specs_are_invalid_argument_and_nothing_starts(
    aiplatform, emulator, template, change, message
):
    spec, values = _spec(template), {}
    change(spec, values)
    body = {
        "displayName": "bad",
        "pipelineSpec": spec,
        "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/bad", "parameterValues": values},
    }
    resp = httpx.post(f"{emulator.url}/v1/{PARENT}/pipelineJobs?pipelineJobId=bad-one", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert message in resp.json()["error"]["message"]
    get = httpx.get(f"{emulator.url}/v1/{PARENT}/pipelineJobs/bad-one")
    assert get.status_code == 404
    assert not (emulator.state_dir / "pipelines" / "bad-one").exists()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def two_lists() -> NamedTuple("Lists", items=list[float], more=list[float]):
    import collections

    return collections.namedtuple("Lists", ["items", "more"])([1.0], [2.0])


@dsl.pipeline(name="loop-over-a-named-output")
def loop_over_a_named_output():
    with dsl.ParallelFor(two_lists().outputs["items"]) as item:
        step(seconds=item, fail=False)


def _loop_spec(tmp_path) -> dict:
    path = tmp_path / "loop.yaml"
    compiler.Compiler().compile(loop_over_a_named_output, str(path))
    return _spec(path)


def _json_escape(spec, runtime, tmp_path):
    container = spec["deploymentSpec"]["executors"]["exec-step"]["container"]
    container["args"] = [*container["args"], "{{$.json_escape[1]}}"]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s, r, t: r.update(inputArtifacts={"model": {"artifactId": "1"}}),
            "runtimeConfig.inputArtifacts",
        ),  # fmt: skip
        (
            lambda s, r, t: s["root"]["inputDefinitions"].update(
                artifacts={"model": {"artifactType": {"schemaTitle": "system.Model"}}}
            ),
            "pipeline input artifacts ['model']",
        ),  # fmt: skip
        (
            lambda s, r, t: r.update(failurePolicy="PIPELINE_FAILURE_POLICY_FAIL_FAST"),
            "PIPELINE_FAILURE_POLICY_FAIL_FAST",
        ),  # fmt: skip
        (lambda s, r, t: r.update(failurePolicy=2), "PIPELINE_FAILURE_POLICY_FAIL_FAST"),
        (lambda s, r, t: r.update(parameters={"seconds": {"doubleValue": 1}}), "parameters"),
        (_json_escape, "exec-step': a json_escape placeholder"),
        (
            lambda s, r, t: s.clear() or s.update(_loop_spec(t)),
            "a ParallelFor over the output 'items' of task 'two-lists'",
        ),  # fmt: skip
    ],
)
def test_what_the_runner_cannot_do_is_refused_at_create(
    aiplatform, emulator, template, tmp_path, change, message
):
    """Refused with INVALID_ARGUMENT naming it, before anything runs: not accepted and
    failed (or silently ignored) once the job runs."""
    spec, runtime = _spec(template), {"gcsOutputDirectory": "gs://bucket/bad"}
    change(spec, runtime, tmp_path)
    body = {"displayName": "bad", "pipelineSpec": spec, "runtimeConfig": runtime}
    resp = httpx.post(f"{emulator.url}/v1/{PARENT}/pipelineJobs?pipelineJobId=cannot", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and message in error["message"], error
    assert "cannot run this job" in error["message"]
    assert httpx.get(f"{emulator.url}/v1/{PARENT}/pipelineJobs/cannot").status_code == 404
    assert not (emulator.state_dir / "pipelines" / "cannot").exists()


def test_a_running_job_cannot_be_deleted_and_a_finished_one_can(aiplatform, emulator, template):
    job = submit(template, seconds=30)
    wait_for(job.resource_name, {"PIPELINE_STATE_RUNNING"})
    url = f"{emulator.url}/v1/{job.resource_name}"
    assert httpx.delete(url).json()["error"]["status"] == "FAILED_PRECONDITION"
    job.cancel()
    wait_for(job.resource_name, {"PIPELINE_STATE_CANCELLED"})
    assert httpx.delete(url).status_code == 200
    assert httpx.get(url).status_code == 404
    assert json.loads(httpx.get(f"{emulator.url}/deploytest/v1/healthz").text)["status"] == "ok"


def test_template_uri_from_artifact_registry_and_list_filter(aiplatform, emulator, template):
    from kfp.registry import RegistryClient

    RegistryClient(host="https://us-central1-kfp.pkg.dev/p/pipelines").upload_pipeline(
        file_name=str(template), tags=["v1"]
    )
    uri = "https://us-central1-kfp.pkg.dev/p/pipelines/emulated-pipeline/v1"
    body = {
        "displayName": "from-the-registry",
        "templateUri": uri,
        "runtimeConfig": {"gcsOutputDirectory": "gs://bucket/reg", "parameterValues": {}},
    }
    url = f"{emulator.url}/v1/{PARENT}/pipelineJobs"
    created = httpx.post(f"{url}?pipelineJobId=from-registry", json=body)
    assert created.status_code == 200, created.text
    done = wait_for(created.json()["name"], {"PIPELINE_STATE_SUCCEEDED", "PIPELINE_STATE_FAILED"})
    assert done.state.name == "PIPELINE_STATE_SUCCEEDED", tasks(done)
    flt = 'display_name="from-the-registry"'
    listed = httpx.get(url, params={"filter": flt}).json()["pipelineJobs"]
    assert [j["name"] for j in listed] == [created.json()["name"]]
    assert "jobDetail" not in listed[0]  # the list view
    missing = {**body, "templateUri": uri.replace("/v1", "/v9")}
    resp = httpx.post(f"{url}?pipelineJobId=no-such-tag", json=missing)
    assert resp.status_code == 400 and "v9" in resp.json()["error"]["message"]


def test_emulator_killed_mid_job_stops_the_job_and_a_restart_fails_it(tmp_path, monkeypatch):
    """SIGKILL of the emulator: the job's runner and tasks end within seconds (owner pipe);
    the restarted emulator reports the job FAILED with the reason."""
    import psutil

    from emulator.launcher import EmulatorProcess
    from tests.processes import processes_mentioning

    emu = EmulatorProcess(tmp_path / "emu").start()
    try:
        env = emu.client_env()
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        from google.cloud import storage

        storage.Client().create_bucket("bucket")
        spec = _spec_of_module_graph(tmp_path)
        body = {
            "displayName": "doomed",
            "pipelineSpec": spec,
            "runtimeConfig": {
                "gcsOutputDirectory": "gs://bucket/root",
                "parameterValues": {"seconds": 300.0},
            },
        }
        url = f"{emu.url}/v1/{PARENT}/pipelineJobs"
        name = httpx.post(f"{url}?pipelineJobId=doomed", json=body).json()["name"]
        job_dir = str(tmp_path / "emu" / "pipelines" / "doomed")
        deadline = time.monotonic() + 60
        while "step" not in str(httpx.get(f"{emu.url}/v1/{name}").json().get("jobDetail")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert processes_mentioning(job_dir)
        emu.crash()
        deadline = time.monotonic() + 15
        while (left := processes_mentioning(job_dir)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in left if p.status() != psutil.STATUS_ZOMBIE], left
    finally:
        emu.stop(check=False)
    with EmulatorProcess(tmp_path / "emu") as again:
        job = httpx.get(f"{again.url}/v1/{name}").json()
        assert job["state"] == "PIPELINE_STATE_FAILED"
        assert "restarted" in job["error"]["message"]


def _spec_of_module_graph(tmp_path) -> dict:
    path = tmp_path / "graph.yaml"
    compiler.Compiler().compile(graph, str(path))
    return _spec(path)
