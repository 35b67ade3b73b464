"""The official SDK (REST, anonymous credentials) against the emulator, with a stand-in container.

The stand-in model server (`fake_model_server.py`) replaces only the *container*; the
emulator and the SDK are the real ones.
"""

from __future__ import annotations

import json
import urllib.request

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.cloud.aiplatform_v1.types import endpoint_service, model_service

from emulator.client import error_status
from tests.emulator.conftest import LABELS, upload_fake


def _env_of(emulator, endpoint) -> dict:
    (proc,) = [p for p in emulator.processes() if p["endpoint"] == endpoint.resource_name]
    with urllib.request.urlopen(f"http://127.0.0.1:{proc['port']}/env", timeout=5) as resp:
        return json.load(resp)


def test_lifecycle_create_deploy_predict_cleanup(aiplatform, emulator):
    model = upload_fake(aiplatform, labels={"team": "ml"})
    assert model.labels == {"team": "ml"}
    assert model.uri == "gs://demo/models/fake"
    endpoint = aiplatform.Endpoint.create(display_name="ep-life", labels=LABELS)
    found = aiplatform.Endpoint.list(filter='labels.deploytest-run="r1"')
    assert [e.resource_name for e in found] == [endpoint.resource_name]

    model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
    (deployed,) = endpoint.list_models()
    assert endpoint.traffic_split == {deployed.id: 100}
    assert deployed.dedicated_resources.machine_spec.machine_type == "n1-standard-4"

    env = _env_of(emulator, endpoint)
    assert env["AIP_DEPLOYED_MODEL_ID"] == deployed.id
    assert env["AIP_ENDPOINT_ID"] == endpoint.name
    assert env["AIP_MACHINE_TYPE"] == "n1-standard-4"
    assert env["AIP_HEALTH_ROUTE"] == "/health" and env["AIP_PREDICT_ROUTE"] == "/predict"
    # as on Vertex AI, a gs:// URI, which the container reads through Cloud Storage
    assert env["AIP_STORAGE_URI"] == env["AIP_MODEL_DIR"] == "gs://demo/models/fake"
    assert env["FAKE_LOAD_S"] == "0.3"

    prediction = endpoint.predict(instances=[{"text": "hello"}], parameters={"max_new_tokens": 8})
    assert prediction.predictions[0]["generated_text"] == "echo: hello"
    assert prediction.deployed_model_id == deployed.id
    assert prediction.model_resource_name == model.resource_name

    # Vertex answers HTTP 400 FAILED_PRECONDITION; over REST api_core raises BadRequest.
    with pytest.raises(gexc.BadRequest) as err:
        endpoint.delete()
    assert error_status(err.value) == "FAILED_PRECONDITION"
    assert "has deployed or being deployed" in str(err.value)

    endpoint.undeploy_all()
    assert emulator.processes() == []
    endpoint.delete()
    with pytest.raises(gexc.NotFound):
        _ = aiplatform.Endpoint(endpoint.resource_name).display_name  # the getter is lazy


def test_operations_unpack_with_types(aiplatform, emulator):
    """LRO metadata/response carry @types the SDK unpacks; both poll paths answer."""
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="ep-ops")
    client = endpoint.api_client
    lro = client.deploy_model(
        endpoint=endpoint.resource_name,
        deployed_model={
            "model": model.resource_name,
            "dedicated_resources": {
                "machine_spec": {"machine_type": "n1-standard-2"},
                "min_replica_count": 1,
            },
        },
        traffic_split={"0": 100},
    )
    assert isinstance(lro.metadata, endpoint_service.DeployModelOperationMetadata)
    assert lro.operation.name.startswith(endpoint.resource_name + "/operations/")
    result = lro.result(timeout=30)
    assert isinstance(result, endpoint_service.DeployModelResponse)
    assert result.deployed_model.model == model.resource_name
    # The operations client the SDK polls with (GET /ui/{name}); /v1 answers the same.
    op = client._transport.operations_client.get_operation(lro.operation.name)
    assert op.done and op.response.type_url.endswith("DeployModelResponse")
    v1 = httpx.get(f"{emulator.url}/v1/{lro.operation.name}").json()
    assert v1["done"] and v1["response"]["deployedModel"]["id"] == result.deployed_model.id

    undeploy = client.undeploy_model(
        endpoint=endpoint.resource_name, deployed_model_id=result.deployed_model.id
    )
    assert isinstance(undeploy.result(timeout=30), endpoint_service.UndeployModelResponse)
    assert isinstance(undeploy.metadata, endpoint_service.UndeployModelOperationMetadata)
    delete = model.api_client.delete_model(name=model.resource_name)
    delete.result(timeout=30)  # google.protobuf.Empty
    assert delete.done()
    upload = model.api_client.upload_model(
        parent=model.resource_name.rsplit("/models/", 1)[0],
        model={"display_name": "raw", "container_spec": {"image_uri": "x", "command": ["true"]}},
    )
    assert isinstance(upload.result(timeout=30), model_service.UploadModelResponse)
    assert isinstance(upload.metadata, model_service.UploadModelOperationMetadata)
    listed = httpx.get(f"{emulator.url}/v1/{endpoint.resource_name}/operations").json()
    assert len(listed["operations"]) == 3  # create, deploy, undeploy


def test_models_list_filter_get_delete(aiplatform):
    a = upload_fake(aiplatform, display_name="model-a", labels={"k": "v"})
    b = upload_fake(aiplatform, display_name="model-b", labels={"k": "w"})
    names = lambda ms: sorted(m.resource_name for m in ms)  # noqa: E731
    assert names(aiplatform.Model.list(filter='display_name="model-a"')) == [a.resource_name]
    assert names(aiplatform.Model.list(filter='labels.k="w"')) == [b.resource_name]
    assert names(aiplatform.Model.list()) == sorted([a.resource_name, b.resource_name])
    got = aiplatform.Model(a.resource_name)
    assert got.display_name == "model-a"
    assert got.gca_resource.container_spec.command[-1].endswith("fake_model_server.py")

    endpoint = aiplatform.Endpoint.create(display_name="ep-models")
    a.deploy(endpoint=endpoint, machine_type="n1-standard-2")
    with pytest.raises(gexc.BadRequest) as err:
        a.delete()
    assert error_status(err.value) == "FAILED_PRECONDITION"
    endpoint.undeploy_all()
    a.delete()
    with pytest.raises(gexc.NotFound):
        aiplatform.Model(a.resource_name)
    assert names(aiplatform.Model.list()) == [b.resource_name]


def test_endpoint_ids_and_label_filters(aiplatform):
    mine = aiplatform.Endpoint.create(display_name="mine", labels=LABELS, endpoint_id="my-ep-1")
    assert mine.resource_name.endswith("/endpoints/my-ep-1")
    aiplatform.Endpoint.create(
        display_name="other", labels={"deploytest-run": "r2", "deploytest-managed": "true"}
    )
    with pytest.raises(gexc.Conflict):
        aiplatform.Endpoint.create(display_name="dup", endpoint_id="my-ep-1")

    def names(flt):
        return sorted(e.display_name for e in aiplatform.Endpoint.list(filter=flt))

    assert names('labels.deploytest-managed="true"') == ["mine", "other"]
    assert names('labels.deploytest-run="r1" AND labels.deploytest-managed="true"') == ["mine"]
    assert names('labels.deploytest-run="r2" AND labels.deploytest-managed="false"') == []
    assert names('display_name="other"') == ["other"]
    assert names('labels.deploytest-run="r2" OR display_name="mine"') == ["mine", "other"]
    with pytest.raises(gexc.BadRequest):  # negation is not documented for ListEndpoints
        aiplatform.Endpoint.list(filter='NOT labels.a="b"')


def test_traffic_split_two_models_and_raw_predict(aiplatform, emulator):
    model = upload_fake(aiplatform)
    endpoint = aiplatform.Endpoint.create(display_name="ep-split")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-2")
    model.deploy(endpoint=endpoint, machine_type="n1-standard-2", traffic_percentage=50)
    split = endpoint.traffic_split
    assert sorted(split.values()) == [50, 50] and len(emulator.processes()) == 2
    seen = {endpoint.predict(instances=[{"text": "x"}]).deployed_model_id for _ in range(30)}
    assert seen == set(split)

    url = f"{emulator.url}/v1/{endpoint.resource_name}:rawPredict"
    raw = httpx.post(url, json={"instances": [{"text": "raw"}]})
    assert raw.status_code == 200 and raw.json()["predictions"][0]["generated_text"] == "echo: raw"
    assert raw.headers["X-Vertex-AI-Deployed-Model-Id"] in split
    assert raw.headers["X-Vertex-AI-Model"] == model.resource_name
    bad = httpx.post(url, content=b"not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400  # the container's own answer, passed through

    first = sorted(split)[0]
    endpoint.undeploy(first)
    assert list(endpoint.traffic_split.values()) == [100] and first not in endpoint.traffic_split
    assert len(emulator.processes()) == 1


def test_errors_are_rpc_status_json(emulator, aiplatform):
    resp = httpx.get(f"{emulator.url}/v1/projects/p/locations/us-central1/endpoints/404404")
    assert resp.status_code == 404
    assert resp.json()["error"]["status"] == "NOT_FOUND"
    resp = httpx.post(f"{emulator.url}/v1/projects/p/locations/us-central1/endpoints:nope")
    assert resp.status_code == 404
    resp = httpx.post(
        f"{emulator.url}/v1/projects/p/locations/us-central1/endpoints",
        content=b"{bad",
        headers={"content-type": "application/json"},
    )
    assert resp.status_code == 400 and resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    endpoint = aiplatform.Endpoint.create(display_name="empty")
    with pytest.raises(gexc.BadRequest):
        endpoint.predict(instances=[{"text": "no model"}])
