"""Model versions and updates through the official SDK (REST): `parent_model` uploads,
`@VERSION` and `@alias` names, `ModelRegistry`, `Model.update`, `Endpoint.update`; and the
Model Registry's own rules (aliases, the default version, update masks)."""

from __future__ import annotations

import os
import shutil
import subprocess

import httpx
import pytest
from google.api_core import exceptions as gexc

from emulator.client import error_status
from tests.emulator.conftest import LABELS, upload_fake


def _aliases(registry) -> dict[str, list[str]]:
    return {v.version_id: sorted(v.version_aliases) for v in registry.list_versions()}


def test_versions_aliases_and_the_default_version(aiplatform, emulator):
    v1 = upload_fake(aiplatform, display_name="versioned", model_id="my_model", labels=LABELS)
    name = v1.resource_name
    assert name.endswith("/models/my_model")  # `_` is a modelId character
    assert (v1.version_id, list(v1.version_aliases)) == ("1", ["default"])
    v2 = upload_fake(
        aiplatform,
        parent_model=name,
        version_aliases=["golden"],
        is_default_version=False,
        version_description="second",
    )
    assert (v2.resource_name, v2.version_id, list(v2.version_aliases)) == (name, "2", ["golden"])
    assert v2.versioned_resource_name == f"{name}@2"
    assert aiplatform.Model(name).version_id == "1"  # the default did not move
    assert aiplatform.Model(f"{name}@2").version_description == "second"
    assert aiplatform.Model(f"{name}@golden").version_id == "2"
    assert aiplatform.Model(name, version="golden").labels == LABELS  # the model's labels
    got = v1.api_client.get_model(name=f"{name}@golden")
    assert got.name == f"{name}@2" and got.model_source_info.source_type.name == "CUSTOM"
    for missing in ("@9", "@nope"):
        with pytest.raises(gexc.NotFound):
            aiplatform.Model(name + missing)

    registry = aiplatform.models.ModelRegistry(name)
    # is_default_version=True (the SDK's default) sends `default`: it moves, as `golden` does
    v3 = upload_fake(aiplatform, parent_model=name, version_aliases=["golden"])
    assert v3.version_id == "3"
    assert _aliases(registry) == {"1": [], "2": [], "3": ["default", "golden"]}
    assert registry.get_model().version_id == "3"
    assert registry.get_model(version="2").version_description == "second"

    registry.add_version_aliases(["default", "stable"], version="1")
    assert _aliases(registry) == {"1": ["default", "stable"], "2": [], "3": ["golden"]}
    registry.remove_version_aliases(["stable"], version="1")
    assert _aliases(registry) == {"1": ["default"], "2": [], "3": ["golden"]}
    with pytest.raises(gexc.BadRequest) as err:  # one version always has `default`
        registry.remove_version_aliases(["default"], version="1")
    assert error_status(err.value) == "FAILED_PRECONDITION"
    with pytest.raises(gexc.BadRequest) as err:
        registry.add_version_aliases(["1numeric"], version="2")
    assert error_status(err.value) == "INVALID_ARGUMENT"
    listed = httpx.get(f"{emulator.url}/v1/{name}:listVersions?readMask=versionId").json()
    assert listed == {"models": [{"versionId": "1"}, {"versionId": "2"}, {"versionId": "3"}]}
    assert [m.resource_name for m in aiplatform.Model.list()] == [name]  # one model

    # deleting the default version gives `default` to the newest one left (the alias docs)
    registry.delete_version("1")
    assert _aliases(registry) == {"2": [], "3": ["default", "golden"]}
    registry.delete_version("golden")
    with pytest.raises(gexc.BadRequest) as err:  # the last version: delete the model
        registry.delete_version("2")
    assert error_status(err.value) == "FAILED_PRECONDITION"
    assert upload_fake(aiplatform, parent_model=name).version_id == "4"  # ids are not reused

    with pytest.raises(gexc.NotFound):
        upload_fake(aiplatform, parent_model=name.replace("my_model", "nope"))
    for bad in ("1model", "-model", "Model", "m" * 64):
        with pytest.raises(gexc.BadRequest):
            upload_fake(aiplatform, model_id=bad)


def test_updates_and_deploys_by_version(aiplatform, emulator):
    model = upload_fake(aiplatform, display_name="before", labels={"a": "b"})
    name = model.resource_name
    model.update(display_name="after", description="what it is", labels={"c": "d"})
    assert (model.display_name, model.description, model.labels) == (
        "after",
        "what it is",
        {"c": "d"},
    )
    assert model.uri == "gs://demo/models/fake"  # not in the mask: untouched
    url = f"{emulator.url}/v1/{name}"
    only_name = httpx.patch(
        url, params={"updateMask": "displayName"}, json={"displayName": "x", "description": ""}
    )
    assert only_name.status_code == 200 and only_name.json()["description"] == "what it is"
    for mask, status in (
        ("bogus", "INVALID_ARGUMENT"),
        ("artifactUri", "INVALID_ARGUMENT"),
        ("versionDescription", "FAILED_PRECONDITION"),  # a version's field, on the model
    ):
        resp = httpx.patch(url, params={"updateMask": mask}, json={})
        assert resp.json()["error"]["status"] == status, mask
    registry = aiplatform.models.ModelRegistry(model)
    registry.update_version("1", version_description="first")  # PATCH models/ID@1
    assert registry.get_version_info("1").version_description == "first"

    canary = upload_fake(aiplatform, parent_model=name, version_aliases=["canary"],
                         is_default_version=False)  # fmt: skip
    endpoint = aiplatform.Endpoint.create(display_name="ep-versions", labels=LABELS)
    endpoint.update(display_name="ep-renamed", description="d", labels={"k": "v"})
    assert (endpoint.display_name, endpoint.labels) == ("ep-renamed", {"k": "v"})
    aiplatform.Model(name, version="canary").deploy(endpoint, machine_type="n1-standard-2")
    model.deploy(endpoint, machine_type="n1-standard-2", traffic_percentage=0)
    by_version = {d.model_version_id: d for d in endpoint.list_models()}
    assert sorted(by_version) == ["1", "2"] and by_version["2"].model == name
    assert by_version["1"].dedicated_resources.max_replica_count == 1
    one, two = by_version["1"].id, by_version["2"].id
    assert endpoint.traffic_split == {two: 100}
    assert endpoint.predict(instances=[{"text": "v"}]).model_version_id == "2"
    refs = model.api_client.get_model(name=f"{name}@canary").deployed_models
    assert [r.deployed_model_id for r in refs] == [two]
    ops = httpx.get(f"{emulator.url}/v1/{endpoint.resource_name}/operations").json()
    stages = [o["metadata"].get("deploymentStage") for o in ops["operations"]]
    assert stages.count("SUCCESSFULLY_DEPLOYED") == 2  # not the stage it started in

    endpoint.update(traffic_split={one: 30, two: 70})
    assert aiplatform.Endpoint(endpoint.resource_name).traffic_split == {one: 30, two: 70}
    assert endpoint.display_name == "ep-renamed"  # not in the mask: untouched
    for split in ({one: 50, two: 40}, {"404": 100}):
        with pytest.raises(gexc.BadRequest):
            endpoint.update(traffic_split=split)
    resp = httpx.patch(f"{emulator.url}/v1/{endpoint.resource_name}?updateMask=etag", json={})
    assert resp.json()["error"]["status"] == "INVALID_ARGUMENT"
    with pytest.raises(gexc.BadRequest) as err:
        registry.delete_version("canary")  # deployed
    assert error_status(err.value) == "FAILED_PRECONDITION"
    assert canary.version_id == "2"


def test_versions_survive_a_new_store_and_an_older_one_row_model(tmp_path):
    """State is SQLite (as every resource's); a model an older emulator stored in one row
    is read as its one version and takes new versions."""
    from starlette.datastructures import QueryParams

    from emulator.deployments import Deployments
    from emulator.faults import FaultState
    from emulator.operations import Operations
    from emulator.service import Vertex
    from emulator.store import Store

    def vertex(store):
        ops = Operations(store)
        deployments = Deployments(store, ops, FaultState(), tmp_path, tmp_path / "gcs", 5)
        return Vertex(store, ops, deployments)

    parent = "projects/p/locations/l"
    old = {"name": f"{parent}/models/7", "displayName": "old", "versionId": "1",
           "versionAliases": ["default"], "containerSpec": {"imageUri": "i"}}  # fmt: skip
    store = Store(tmp_path / "state.sqlite3")
    store.put_resource("models", parent, old)
    body = {"parentModel": old["name"], "model": {"displayName": "new", "versionAliases": ["b2"]}}
    assert vertex(store).upload_model(parent, body)["response"]["modelVersionId"] == "2"
    store.close()
    reopened = vertex(Store(tmp_path / "state.sqlite3"))
    versions = reopened.list_model_versions(old["name"], QueryParams(""))["models"]
    assert [(v["name"], v["versionAliases"]) for v in versions] == [
        (f"{old['name']}@1", ["default"]),
        (f"{old['name']}@2", ["b2"]),
    ]
    assert reopened.get_model(f"{old['name']}@b2")["displayName"] == "old"  # the model's


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="the gcloud CLI is not installed")
def test_the_readmes_gcloud_parent_model_upload(aiplatform, emulator, tmp_path):
    """README "For ML engineers": `gcloud ai models upload ... --parent-model=...` adds a
    version; it becomes the default only with `--version-aliases=default`."""
    first = upload_fake(aiplatform, display_name="my-llm", model_id="my-llm")
    (tmp_path / "token").write_text("any")  # the plain-HTTP URL takes anonymous calls
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "CLOUDSDK_CORE_PROJECT": "p",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM": f"{emulator.url}/",
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(tmp_path / "token"),
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
    }
    upload = [
        "gcloud", "ai", "models", "upload", "--region=us-central1", "--display-name=my-llm",
        "--container-image-uri=us-central1-docker.pkg.dev/p/images/serving:main",
        "--container-ports=8080", "--container-health-route=/health",
        "--container-predict-route=/predict", "--labels=deploytest=enabled",
        f"--parent-model={first.resource_name}",
    ]  # fmt: skip
    for version, extra in (("2", []), ("3", ["--version-aliases=default"])):
        args = [*upload, f"--artifact-uri=gs://b/models/my-llm/v{version}", *extra]
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert aiplatform.Model(f"{first.resource_name}@{version}").uri.endswith(f"v{version}")
        default = aiplatform.Model(first.resource_name)
        assert default.version_id == ("1" if version == "2" else "3")
    assert aiplatform.Model(f"{first.resource_name}@3").labels == {"deploytest": "enabled"}
