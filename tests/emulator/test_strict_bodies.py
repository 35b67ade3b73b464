"""Request bodies are parsed strictly against aiplatform_v1's protos (issue 24, part A):
an unknown name or a wrongly typed value is 400 INVALID_ARGUMENT naming the field, and
nothing is stored; proto3 JSON's other spellings (proto names, int32s as strings) pass."""

from __future__ import annotations

import httpx
import pytest
from google.cloud import aiplatform_v1 as v1

from emulator.strict import problems

PARENT = "v1/projects/p/locations/us-central1"
MODEL = {
    "displayName": "m",
    "containerSpec": {"imageUri": "x", "command": ["python", "-c", "pass"]},
}


def _invalid(resp: httpx.Response, *needles: str) -> dict:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    for needle in needles:
        assert needle in error["message"], error["message"]
    (detail,) = error["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"]
    return error


def _names(url: str, kind: str) -> list[str]:
    resp = httpx.get(f"{url}/{PARENT}/{kind}")
    assert resp.status_code == 200, resp.text
    return [r["name"] for r in resp.json().get(kind, [])]


@pytest.fixture
def url(shared_emulator):
    yield shared_emulator.url
    for name in _names(shared_emulator.url, "endpoints"):
        httpx.delete(f"{shared_emulator.url}/v1/{name}")
    for name in _names(shared_emulator.url, "models"):
        httpx.delete(f"{shared_emulator.url}/v1/{name}")


def test_unknown_endpoint_field_is_refused_in_googles_words(url):
    resp = httpx.post(f"{url}/{PARENT}/endpoints", json={"displayName": "e", "notAField": 1})
    error = _invalid(resp)
    assert error["message"] == (
        "Invalid JSON payload received. Unknown name \"notAField\" at 'endpoint': "
        "Cannot find field."
    )
    assert error["details"][0]["fieldViolations"] == [
        {"field": "endpoint", "description": error["message"]}
    ]
    assert _names(url, "endpoints") == []


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"model": {**MODEL, "notAField": 1}}, "Unknown name \"notAField\" at 'model'"),
        ({"model": MODEL, "bogus": True}, 'Unknown name "bogus": Cannot find field.'),
        (
            {"model": {**MODEL, "containerSpec": {"imageUri": "x", "comand": ["a"]}}},
            "at 'model.container_spec'",
        ),
        ({"model": {**MODEL, "labels": {"k": 5}}}, "'model.labels[k]' (TYPE_STRING), 5"),
        ({"model": {**MODEL, "displayName": ["m"]}}, "Proto field is not repeating"),
        ({"model": {**MODEL, "createTime": "yesterday"}}, "timestamp"),
    ],
)
def test_bad_upload_bodies_store_nothing(url, body, needle):
    _invalid(httpx.post(f"{url}/{PARENT}/models:upload", json=body), needle)
    assert _names(url, "models") == []


def test_deploy_and_undeploy_bodies(url):
    model = httpx.post(f"{url}/{PARENT}/models:upload", json={"model": MODEL}).json()
    model_name = model["response"]["model"]
    endpoint = httpx.post(f"{url}/{PARENT}/endpoints", json={"displayName": "e"}).json()
    ep = endpoint["response"]["name"]
    resources = {"machineSpec": {"machineType": "n1-standard-2"}, "minReplicaCount": 1}
    cases = [
        # the machine type at the wrong level: not silently the default machine
        (
            {"deployedModel": {"model": model_name, "machineType": "g2-standard-8"}},
            "Unknown name \"machineType\" at 'deployed_model': Cannot find field.",
        ),
        (
            {
                "deployedModel": {
                    "model": model_name,
                    "dedicatedResources": {**resources, "maxReplicaCount": "x"},
                }
            },
            "Invalid value at 'deployed_model.dedicated_resources.max_replica_count' "
            '(TYPE_INT32), "x"',
        ),
        (
            {
                "deployedModel": {
                    "model": model_name,
                    "dedicatedResources": {
                        "machineSpec": {"machineType": "g2", "acceleratorType": "NVIDIA_NOPE"}
                    },
                }
            },
            "accelerator_type",
        ),
        ({"deployedModel": {"model": model_name}, "trafficSplit": {"0": "all"}}, "traffic_split"),
    ]
    for body, needle in cases:
        _invalid(httpx.post(f"{url}/v1/{ep}:deployModel", json=body), needle)
    got = httpx.get(f"{url}/v1/{ep}").json()
    assert "deployedModels" not in got, got
    _invalid(
        httpx.post(f"{url}/v1/{ep}:undeployModel", json={"deployedModelId": "1", "force": True}),
        'Unknown name "force"',
    )


def test_patch_bodies_are_strict_and_change_nothing(url):
    endpoint = httpx.post(f"{url}/{PARENT}/endpoints", json={"displayName": "e"}).json()
    ep = endpoint["response"]["name"]
    resp = httpx.patch(
        f"{url}/v1/{ep}?updateMask=displayName", json={"displayName": "f", "nope": 1}
    )
    _invalid(resp, "Unknown name \"nope\" at 'endpoint'")
    assert httpx.get(f"{url}/v1/{ep}").json()["displayName"] == "e"
    model = httpx.post(f"{url}/{PARENT}/models:upload", json={"model": MODEL}).json()
    name = model["response"]["model"]
    resp = httpx.patch(f"{url}/v1/{name}?updateMask=description", json={"description": 7})
    _invalid(resp, "Invalid value at 'model.description' (TYPE_STRING), 7")
    assert "description" not in httpx.get(f"{url}/v1/{name}").json()
    resp = httpx.post(f"{url}/v1/{name}@1:mergeVersionAliases", json={"versionAliases": "x"})
    _invalid(resp, "version_aliases")


def test_pipeline_job_and_cancel_bodies(url):
    resp = httpx.post(
        f"{url}/{PARENT}/pipelineJobs?pipelineJobId=j1",
        json={"displayName": "j", "pipelineSpec": {"any": ["json"]}, "runtimeConfg": {}},
    )
    _invalid(resp, "Unknown name \"runtimeConfg\" at 'pipeline_job'")
    assert f"{PARENT[3:]}/pipelineJobs/j1" not in _names(url, "pipelineJobs")
    resp = httpx.post(f"{url}/{PARENT}/pipelineJobs/j1:cancel", json={"why": "x"})
    _invalid(resp, 'Unknown name "why"')


def test_proto3_json_spellings_pass():
    # GCPC's deploy launcher body (proto names, counts as strings, after its
    # recursive_remove_empty), the SDK's camelCase, int64s as strings, enums by number
    gcpc = {
        "endpoint": "projects/p/locations/l/endpoints/1",
        "traffic_split": {"0": 100},
        "deployed_model": {
            "model": "projects/p/locations/l/models/2",
            "dedicated_resources": {
                "machine_spec": {"machine_type": "n1-standard-2"},
                "min_replica_count": "1",
                "max_replica_count": 1.0,
            },
            "explanation_spec": {"parameters": {}, "metadata": {}},
        },
    }
    assert problems(gcpc, v1.DeployModelRequest) == []
    spec = {"machineSpec": {"acceleratorType": 8, "acceleratorCount": "1"}}
    assert problems({"dedicatedResources": spec, "model": "m"}, v1.DeployedModel) == []
    job = {"pipelineSpec": {"x": [1, {"y": None}]}, "runtimeConfig": {"parameterValues": {"a": 1}}}
    assert problems(job, v1.PipelineJob, "pipeline_job") == []
    assert problems({"deployedModel": {"model": None}}, v1.DeployModelRequest) == []


def test_what_the_walk_leaves_to_the_parser_is_still_refused():
    # two members of one oneof, a malformed timestamp: json_format's own checks
    both = {"model": "m", "dedicatedResources": {}, "automaticResources": {}}
    ((path, text),) = problems({"deployedModel": both}, v1.DeployModelRequest)
    assert path == "" and "oneof" in text and text.startswith("Invalid JSON payload received.")
    ((path, text),) = problems({"createTime": "soon"}, v1.Endpoint, "endpoint")
    assert path == "endpoint" and "timestamp" in text


def test_the_admin_seed_makes_a_model_under_an_assigned_id_which_upload_refuses(url):
    """A model "that exists already" under an id Vertex AI assigned (digits): the admin seed
    makes it, with its alias; `models:upload` may not ask for such an id."""
    refused = httpx.post(f"{url}/{PARENT}/models:upload", json={"modelId": "123", "model": MODEL})
    assert refused.status_code == 400 and "not starting with a digit" in refused.text
    seed = f"{url}/deploytest/v1/models:seed"
    parent = PARENT.removeprefix("v1/")
    for bad, needle in (
        ({"parent": parent, "modelId": "abc", "model": MODEL}, "assigned model id"),
        ({"parent": parent, "modelId": "0123", "model": MODEL}, "assigned model id"),
        ({"parent": "nowhere", "modelId": "123", "model": MODEL}, "parent must be"),
        ({"parent": parent, "modelId": "123", "model": MODEL, "bogus": 1}, "Unknown name"),
    ):
        resp = httpx.post(seed, json=bad)
        assert resp.status_code == 400 and needle in resp.text, resp.text
    assert _names(url, "models") == []
    model = {**MODEL, "versionAliases": ["production"]}
    done = httpx.post(seed, json={"parent": parent, "modelId": "1234567890", "model": model})
    assert done.status_code == 200, done.text
    got = httpx.get(f"{url}/{PARENT}/models/1234567890@production").json()
    assert got["name"].endswith("/models/1234567890@1")  # a versioned name: its version
    assert "production" in got["versionAliases"]
