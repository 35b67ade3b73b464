"""Every kind of answer the emulator serves parses strictly (`ignore_unknown_fields=False`)
into its proto type from `google.cloud.aiplatform_v1`, google.longrunning or google.rpc
(issue 24, part C): what the official clients would parse, with no field they do not know.

Driven over HTTP against the module's emulator (tests/emulator/conftest.py), with one
cheap deploy of the fake model server and one short pipeline job.
"""

# No `from __future__ import annotations`: kfp reads the component's annotations.
import sys
import time

import httpx
import pytest
import yaml
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2, json_format, timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from kfp import compiler, dsl

from tests.emulator.conftest import FAKE_SERVER

P = "projects/p/locations/us-central1"
V1 = "v1/" + P
assert error_details_pb2.BadRequest  # registers google.rpc.BadRequest for `details`


def strict(resp: httpx.Response, message_cls, status: int = 200):
    """The answer parsed strictly into `message_cls` (proto-plus or _pb2)."""
    assert resp.status_code == status, resp.text
    pb = message_cls.pb()() if hasattr(message_cls, "pb") else message_cls()
    return json_format.Parse(resp.text, pb, ignore_unknown_fields=False)


def operation(resp: httpx.Response, metadata_cls, response_cls=None):
    """A google.longrunning.Operation whose metadata (and response) unpack strictly."""
    op = strict(resp, operations_pb2.Operation)
    meta = metadata_cls.pb()()
    assert op.metadata.Unpack(meta), op.metadata.type_url
    if response_cls is not None and op.done:
        out = response_cls.pb()() if hasattr(response_cls, "pb") else response_cls()
        assert op.response.Unpack(out), op.response.type_url
    return op


def error(resp: httpx.Response, http_code: int, status: str) -> status_pb2.Status:
    """Google's error envelope: `{"error": {code, message, status, details}}`, where all
    but `status` (a google.rpc.Code name) is a google.rpc.Status."""
    assert resp.status_code == http_code, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = dict(body["error"])
    assert set(err) <= {"code", "message", "status", "details"}, err
    assert err.pop("status") == status and status in code_pb2.Code.keys()
    assert err["code"] == http_code
    return json_format.ParseDict(err, status_pb2.Status(), ignore_unknown_fields=False)


def wait(url: str, op_name: str) -> httpx.Response:
    for _ in range(60):
        resp = httpx.post(f"{url}/v1/{op_name}:wait", json={"timeout": "2s"}, timeout=10)
        if resp.json().get("done"):
            return resp
    raise AssertionError(f"{op_name} never finished")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def hello(word: str, config: dict, metrics: dsl.Output[dsl.Metrics]) -> str:
    if word == "fail":
        raise RuntimeError("failed on purpose")
    metrics.log_metric("letters", len(word))
    return f"{config['job']}|{config['names'][0]}"


# Placeholders inside a dict (and a list in it): the KFP compiler leaves them for the
# backend to fill, as it does in a string parameter.
CONFIG = {
    "job": dsl.PIPELINE_JOB_RESOURCE_NAME_PLACEHOLDER,
    "names": [dsl.PIPELINE_JOB_NAME_PLACEHOLDER],
    "created": dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER,
}


@dsl.pipeline(name="inner")
def inner(word: str):
    hello(word=word, config=CONFIG)


@dsl.pipeline(name="conformance")
def tiny(word: str = "hi"):
    hello(word=word, config=CONFIG)
    inner(word=word)  # a task of the same name in a sub-pipeline: a row of its own


@pytest.fixture
def url(shared_emulator):
    yield shared_emulator.url
    for kind in ("endpoints", "models"):
        for item in httpx.get(f"{shared_emulator.url}/{V1}/{kind}").json().get(kind, []):
            for dm in item.get("deployedModels", []) if kind == "endpoints" else []:
                body = {"deployedModelId": dm["id"]}
                httpx.post(f"{shared_emulator.url}/v1/{item['name']}:undeployModel", json=body)
            httpx.delete(f"{shared_emulator.url}/v1/{item['name']}")
    assert shared_emulator.processes() == []


def test_models_and_versions(url):
    model = {
        "displayName": "m",
        "labels": {"k": "v"},
        "artifactUri": "gs://b/m",
        "containerSpec": {
            "imageUri": "x",
            "command": [sys.executable, FAKE_SERVER],
            "env": [{"name": "FAKE_LOAD_S", "value": "0.1"}],
            "ports": [{"containerPort": 8080}],
        },
    }
    up = operation(
        httpx.post(f"{url}/{V1}/models:upload", json={"model": model, "modelId": "m1"}),
        v1.UploadModelOperationMetadata,
        v1.UploadModelResponse,
    )
    assert up.done
    name = f"{P}/models/m1"
    strict(httpx.get(f"{url}/v1/{name}"), v1.Model)
    strict(httpx.get(f"{url}/v1/{name}@1"), v1.Model)
    strict(httpx.get(f"{url}/{V1}/models"), v1.ListModelsResponse)
    strict(httpx.get(f"{url}/{V1}/models", params={"pageSize": 1}), v1.ListModelsResponse)
    again = {"model": {**model, "displayName": "m"}, "parentModel": name}
    operation(
        httpx.post(f"{url}/{V1}/models:upload", json=again),
        v1.UploadModelOperationMetadata,
        v1.UploadModelResponse,
    )
    versions = strict(httpx.get(f"{url}/v1/{name}:listVersions"), v1.ListModelVersionsResponse)
    assert len(versions.models) == 2
    masked = httpx.get(f"{url}/v1/{name}:listVersions", params={"readMask": "versionId"})
    strict(masked, v1.ListModelVersionsResponse)
    resp = httpx.post(f"{url}/v1/{name}@2:mergeVersionAliases", json={"versionAliases": ["gold"]})
    strict(resp, v1.Model)
    resp = httpx.patch(
        f"{url}/v1/{name}", params={"updateMask": "description"}, json={"description": "d"}
    )
    strict(resp, v1.Model)
    operation(
        httpx.delete(f"{url}/v1/{name}@2:deleteVersion"),
        v1.DeleteOperationMetadata,
        empty_pb2.Empty,
    )
    operation(httpx.delete(f"{url}/v1/{name}"), v1.DeleteOperationMetadata, empty_pb2.Empty)


def test_endpoints_deploy_predict_and_operations(url, shared_emulator):
    model = {
        "displayName": "fake",
        "containerSpec": {
            "imageUri": "x",
            "command": [sys.executable, FAKE_SERVER],
            "env": [{"name": "FAKE_LOAD_S", "value": "0.1"}],
        },
    }
    up = httpx.post(f"{url}/{V1}/models:upload", json={"model": model}).json()
    model_name = up["response"]["model"]
    created = operation(
        httpx.post(f"{url}/{V1}/endpoints", json={"displayName": "e", "labels": {"a": "b"}}),
        v1.CreateEndpointOperationMetadata,
        v1.Endpoint,
    )
    ep = created.name.split("/operations/")[0]
    strict(httpx.get(f"{url}/v1/{ep}"), v1.Endpoint)
    strict(httpx.get(f"{url}/{V1}/endpoints"), v1.ListEndpointsResponse)
    resp = httpx.patch(f"{url}/v1/{ep}", params={"updateMask": "labels"}, json={"labels": {}})
    strict(resp, v1.Endpoint)
    body = {
        "deployedModel": {
            "model": model_name,
            "dedicatedResources": {
                "machineSpec": {"machineType": "n1-standard-2"},
                "minReplicaCount": "1",
            },
        },
        "trafficSplit": {"0": 100},
    }
    pending = operation(
        httpx.post(f"{url}/v1/{ep}:deployModel", json=body), v1.DeployModelOperationMetadata
    )
    strict(httpx.get(f"{url}/v1/{pending.name}"), operations_pb2.Operation)
    strict(httpx.get(f"{url}/v1/{ep}"), v1.Endpoint)  # deploying: status, no traffic yet
    done = operation(
        wait(url, pending.name), v1.DeployModelOperationMetadata, v1.DeployModelResponse
    )
    assert done.done and not done.HasField("error"), done
    endpoint = strict(httpx.get(f"{url}/v1/{ep}"), v1.Endpoint)
    (deployed,) = endpoint.deployed_models
    assert deployed.dedicated_resources.max_replica_count == 1
    strict(httpx.get(f"{url}/{V1}/endpoints"), v1.ListEndpointsResponse)
    predicted = strict(
        httpx.post(f"{url}/v1/{ep}:predict", json={"instances": [{"text": "hi"}]}, timeout=30),
        v1.PredictResponse,
    )
    assert predicted.deployed_model_id == deployed.id
    ops = strict(httpx.get(f"{url}/v1/{ep}/operations"), operations_pb2.ListOperationsResponse)
    assert ops.operations
    strict(httpx.post(f"{url}/v1/{pending.name}:cancel"), empty_pb2.Empty)  # done: no-op
    undeploy = httpx.post(f"{url}/v1/{ep}:undeployModel", json={"deployedModelId": deployed.id})
    operation(undeploy, v1.UndeployModelOperationMetadata, v1.UndeployModelResponse)
    # a failed deploy: the operation's error is a google.rpc.Status
    shared_emulator.set_faults({"deploy": "fail"})
    try:
        pending = operation(
            httpx.post(f"{url}/v1/{ep}:deployModel", json=body), v1.DeployModelOperationMetadata
        )
        failed = operation(wait(url, pending.name), v1.DeployModelOperationMetadata)
        assert failed.error.code == code_pb2.INTERNAL, failed
    finally:
        shared_emulator.clear_faults()
    operation(httpx.delete(f"{url}/v1/{ep}"), v1.DeleteOperationMetadata, empty_pb2.Empty)


def test_error_bodies_are_google_rpc_status(url):
    error(httpx.get(f"{url}/{V1}/endpoints/404"), 404, "NOT_FOUND")
    error(httpx.get(f"{url}/{V1}/endpoints", params={"pageSize": -1}), 400, "INVALID_ARGUMENT")
    bad = error(
        httpx.post(f"{url}/{V1}/endpoints", json={"displayName": "e", "x": 1}),
        400,
        "INVALID_ARGUMENT",
    )
    violations = error_details_pb2.BadRequest()
    assert bad.details[0].Unpack(violations) and violations.field_violations[0].field
    httpx.post(f"{url}/{V1}/endpoints?endpointId=dup", json={"displayName": "e"})
    resp = httpx.post(f"{url}/{V1}/endpoints?endpointId=dup", json={"displayName": "e"})
    error(resp, 409, "ALREADY_EXISTS")
    error(httpx.get(f"{url}/v1/{P}/nothing-here"), 404, "NOT_FOUND")
    big = b'{"displayName": "' + b"x" * 10_500_000 + b'"}'
    headers = {"content-type": "application/json"}
    error(
        httpx.post(f"{url}/{V1}/endpoints", content=big, headers=headers), 400, "INVALID_ARGUMENT"
    )
    cross_site = {"origin": "https://evil.example"}
    error(httpx.get(f"{url}/{V1}/endpoints", headers=cross_site), 403, "PERMISSION_DENIED")


def test_pipeline_jobs(url, shared_emulator, monkeypatch, tmp_path):
    from google.cloud import storage

    for key, value in shared_emulator.client_env().items():
        monkeypatch.setenv(key, value)
    if storage.Client().lookup_bucket("conformance") is None:
        storage.Client().create_bucket("conformance")
    path = tmp_path / "tiny.yaml"
    compiler.Compiler().compile(tiny, str(path))
    body = {
        "displayName": "tiny",
        "pipelineSpec": yaml.safe_load(path.read_text()),
        "runtimeConfig": {"gcsOutputDirectory": "gs://conformance/root"},
    }
    for job_id, word in (("tiny-1", "hi"), ("tiny-2", "fail")):
        runtime = {**body["runtimeConfig"], "parameterValues": {"word": word}}
        created = httpx.post(
            f"{url}/{V1}/pipelineJobs?pipelineJobId={job_id}",
            json={**body, "runtimeConfig": runtime},
        )
        strict(created, v1.PipelineJob)
    name = f"{P}/pipelineJobs/tiny-1"
    job = _finished(url, name)
    assert job.state == v1.PipelineState.PIPELINE_STATE_SUCCEEDED, job.error
    _check_task_details(job, name)
    failed = _finished(url, f"{P}/pipelineJobs/tiny-2")
    assert failed.state == v1.PipelineState.PIPELINE_STATE_FAILED and failed.error.code
    rows = {t.task_unique_name: t for t in failed.job_detail.task_details}
    State = v1.PipelineTaskDetail.State
    assert {n: t.state for n, t in rows.items()} == {
        "tiny-2": State.FAILED, "hello": State.FAILED, "inner": State.FAILED,
        "inner.hello": State.FAILED,
    }  # fmt: skip
    assert rows["hello"].error.code and "RuntimeError: failed on purpose" in (
        rows["hello"].error.message
    )
    assert "The failed tasks are: [hello]" in rows["inner"].error.message
    assert not rows["hello"].outputs  # a failed task wrote none
    strict(httpx.get(f"{url}/{V1}/pipelineJobs"), v1.ListPipelineJobsResponse)
    listed = httpx.get(
        f"{url}/{V1}/pipelineJobs",
        params={"filter": "state=PIPELINE_STATE_SUCCEEDED", "readMask": "name,state"},
    )
    assert len(strict(listed, v1.ListPipelineJobsResponse).pipeline_jobs) == 1
    error(httpx.post(f"{url}/v1/{name}:cancel", json={}), 400, "FAILED_PRECONDITION")
    for job_id in ("tiny-1", "tiny-2"):
        deleted = httpx.delete(f"{url}/v1/{P}/pipelineJobs/{job_id}")
        operation(deleted, v1.DeleteOperationMetadata, empty_pb2.Empty)


def _check_task_details(job, name: str) -> None:
    """The rows of a SUCCEEDED run of `tiny`: the root (named after the job's id, as the
    SDK looks it up), the sub-pipeline, and `hello` twice, each in its own DAG, with
    their parents, state history, executions and output artifacts."""
    State = v1.PipelineTaskDetail.State
    rows = {t.task_unique_name: t for t in job.job_detail.task_details}
    assert set(rows) == {"tiny-1", "hello", "inner", "inner.hello"}
    assert all(t.state == State.SUCCEEDED for t in rows.values())
    root = rows["tiny-1"]
    assert root.task_name == "tiny-1" and not root.parent_task_id
    assert root.execution.schema_title == "system.Run"
    assert root.execution.metadata["input:word"] == "hi"
    assert rows["hello"].parent_task_id == root.task_id
    assert rows["inner"].parent_task_id == root.task_id
    assert rows["inner.hello"].parent_task_id == rows["inner"].task_id
    assert rows["inner.hello"].task_name == "hello"
    assert rows["inner"].execution.schema_title == "system.DagExecution"
    assert len({t.task_id for t in rows.values()}) == 4
    for task in (rows["hello"], rows["inner.hello"]):
        assert task.execution.schema_title == "system.ContainerExecution"
        assert task.execution.state == v1.Execution.State.COMPLETE
        assert [s.state for s in task.pipeline_task_status] == [State.RUNNING, State.SUCCEEDED]
        assert task.end_time.ToDatetime() >= task.start_time.ToDatetime()
        # the dict parameter's placeholders were filled (the display name is "tiny")
        assert task.execution.metadata["output:Output"] == f"{name}|tiny"
        assert task.execution.metadata["input:word"] == "hi"
        config = task.execution.metadata["input:config"]
        assert config["job"] == name
        assert json_format.Parse(f'"{config["created"]}"', timestamp_pb2.Timestamp()) == (
            job.create_time
        )
        (metrics,) = task.outputs["metrics"].artifacts
        assert metrics.schema_title == "system.Metrics"
        assert metrics.uri.startswith("gs://conformance/root/tiny-1/")
        assert dict(metrics.metadata) == {"letters": 2.0}
    assert rows["hello"].outputs["metrics"].artifacts[0].uri != (
        rows["inner.hello"].outputs["metrics"].artifacts[0].uri
    )


def _finished(url: str, name: str):
    deadline = time.monotonic() + 60
    while True:
        job = strict(httpx.get(f"{url}/v1/{name}"), v1.PipelineJob)
        if job.state in (v1.PipelineState.PIPELINE_STATE_SUCCEEDED,
                         v1.PipelineState.PIPELINE_STATE_FAILED):  # fmt: skip
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
