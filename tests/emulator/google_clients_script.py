"""Google's own clients, unmodified, with their default hosts, against the emulator.

Run by tests/emulator/test_google_clients.py in a subprocess whose environment is only the
emulator's env file applied (no `api_endpoint`, no credentials in code):

    python google_clients_script.py MODEL_DIR LOCUSTFILE WORK_DIR

Prints one `step: ...` line per step and `ALL OK` at the end; any failure raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

PROJECT = os.environ["GOOGLE_CLOUD_PROJECT"]
LOCATION = "us-central1"
BUCKET = "deploytest-artifacts"
SERVE = [sys.executable, "-m", "serving"]


_START = time.monotonic()


def step(text: str) -> None:
    print(f"step: [{time.monotonic() - _START:6.1f} s] {text}", flush=True)


def upload_folder(bucket, folder: Path, prefix: str) -> list[str]:
    names = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = f"{prefix}/{path.relative_to(folder).as_posix()}"
        bucket.blob(name).upload_from_filename(str(path))
        names.append(name)
    return names


def gcpc(module: str, work: Path, name: str, payload: dict, outputs: dict) -> dict:
    """Run a GCPC launcher as its container command; return its executor output."""
    output_file = work / name / "executor_output.json"
    executor_input = {"outputs": {"artifacts": outputs, "outputFile": str(output_file)}}
    args = [
        sys.executable, "-u", "-m",
        f"google_cloud_pipeline_components.container.v1.endpoint.{module}.launcher",
        "--type", "".join(p.title() for p in module.split("_")),
        "--project", PROJECT, "--location", LOCATION,
        "--payload", json.dumps(payload),
        "--gcp_resources", str(work / name / "gcp_resources"),
        "--executor_input", json.dumps(executor_input),
    ]  # fmt: skip
    subprocess.run(args, check=True, timeout=300)
    return json.loads(output_file.read_text()) if output_file.exists() else {}


def main(model_dir: Path, locustfile: Path, work: Path) -> None:
    import requests
    from google.api_core import exceptions as gexc
    from google.cloud import aiplatform, storage
    from kfp.registry import RegistryClient

    step("cloud storage: bucket, model folder and locustfile uploaded")
    gcs = storage.Client()
    bucket = gcs.create_bucket(BUCKET)
    names = upload_folder(bucket, model_dir, "models/tiny")
    bucket.blob("loadtests/locustfile.py").upload_from_filename(str(locustfile))
    # a resumable upload in several chunks (what large model files take)
    payload = os.urandom(600 * 1024)
    bucket.blob("chunks/big.bin", chunk_size=256 * 1024).upload_from_string(payload)
    assert bucket.blob("chunks/big.bin").download_as_bytes() == payload
    bucket.blob("chunks/big.bin").delete()
    listed = {b.name for b in gcs.list_blobs(BUCKET)}
    assert set(names) | {"loadtests/locustfile.py"} == listed, listed
    text = bucket.blob("loadtests/locustfile.py").download_as_text()
    assert text == locustfile.read_text()
    try:
        bucket.blob("missing").download_as_bytes()
        raise AssertionError("a missing object downloaded")
    except gexc.NotFound:
        pass

    step("aiplatform: init with REST and no api_endpoint")
    aiplatform.init(project=PROJECT, location=LOCATION, api_transport="rest")
    common = dict(
        serving_container_image_uri="us-docker.pkg.dev/deploytest/serving:local",
        serving_container_command=SERVE,
        serving_container_health_route="/health",
        serving_container_predict_route="/predict",
        labels={"deploytest-managed": "true"},
    )
    step("Model.upload from a local folder (the SDK stages it in Cloud Storage)")
    staged = aiplatform.Model.upload(
        display_name="tiny-local", artifact_uri=str(model_dir), **common
    )
    assert staged.uri.startswith("gs://"), staged.uri
    step("Model.upload from gs://")
    model = aiplatform.Model.upload(
        display_name="tiny-gs", artifact_uri=f"gs://{BUCKET}/models/tiny", **common
    )

    step("Endpoint.create, Model.deploy, predict, raw_predict")
    endpoint = aiplatform.Endpoint.create(display_name="ep-sdk", labels={"deploytest-run": "s"})
    model.deploy(endpoint=endpoint, machine_type="n1-standard-4")
    prediction = endpoint.predict(instances=[{"text": "hello"}], parameters={"max_new_tokens": 4})
    assert prediction.predictions[0]["generated_text"], prediction
    raw = endpoint.raw_predict(
        body=json.dumps(
            {"instances": [{"text": "hi"}], "parameters": {"max_new_tokens": 4}}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["predictions"][0]["generated_text"], raw.text

    step("GCPC create_endpoint and deploy_model launchers")
    endpoint_output = {"name": "endpoint", "type": {"schemaTitle": "google.VertexEndpoint"}}
    out = gcpc(
        "create_endpoint", work, "create",
        {"display_name": "ep-gcpc", "labels": {"deploytest-run": "g"}},
        {"endpoint": {"artifacts": [endpoint_output]}},
    )  # fmt: skip
    gcpc_endpoint = out["artifacts"]["endpoint"]["artifacts"][0]["metadata"]["resourceName"]
    gcpc(
        "deploy_model", work, "deploy",
        {
            "endpoint": gcpc_endpoint,
            "traffic_split": {"0": 100},
            "deployed_model": {
                "model": model.resource_name,
                "dedicated_resources": {
                    "machine_spec": {"machine_type": "n1-standard-4"},
                    "min_replica_count": 1, "max_replica_count": 1,
                },
            },
        },
        {},
    )  # fmt: skip
    deployed = aiplatform.Endpoint(gcpc_endpoint)
    assert len(deployed.list_models()) == 1
    answer = deployed.predict(instances=[{"text": "x"}], parameters={"max_new_tokens": 2})
    assert answer.predictions[0]["generated_text"]

    step("kfp RegistryClient: upload, tags move, list, download by tag")
    host = f"https://{LOCATION}-kfp.pkg.dev/{PROJECT}/pipelines"
    client = RegistryClient(host=host)
    first = work / "p1.yaml"
    second = work / "p2.yaml"
    first.write_text("pipelineInfo:\n  name: deploytest\nroot: {}\nschemaVersion: 2.1.0\n")
    second.write_text("pipelineInfo:\n  name: deploytest\nroot: {dag: {}}\nschemaVersion: 2.1.0\n")
    package, v1 = client.upload_pipeline(str(first), tags=["v1", "prod"])
    assert package == "deploytest" and v1.startswith("sha256:")
    _, v2 = client.upload_pipeline(str(second), tags=["v2", "prod"])
    tags = {
        t["name"].rsplit("/", 1)[1]: t["version"].rsplit("/", 1)[1]
        for t in client.list_tags(package)
    }
    assert tags == {"v1": v1, "v2": v2, "prod": v2}, tags
    assert len(client.list_versions(package)) == 2
    client.update_tag(package, v1, "prod")  # re-applied: the tag moves back
    got = client.download_pipeline(package, tag="prod", file_name=str(work / "got.yaml"))
    assert Path(got).read_text() == first.read_text()
    cli = [sys.executable, "-m", "deploytest"]
    subprocess.run(
        [*cli, "upload-template", "--file", str(second), "--host", host, "--tag", "prod"],
        check=True, timeout=120,
    )  # fmt: skip
    assert client.get_tag(package, "prod")["version"].endswith(v2)
    try:
        client.download_pipeline(package, tag="nope", file_name=str(work / "nope.yaml"))
        raise AssertionError("an unknown tag downloaded")
    except requests.HTTPError as err:
        assert err.response.status_code == 404

    step("GCPC undeploy_model and delete_endpoint launchers")
    gcpc(
        "undeploy_model",
        work,
        "undeploy",
        {"endpoint": gcpc_endpoint, "model": model.resource_name},
        {},
    )
    assert deployed.list_models() == []
    gcpc("delete_endpoint", work, "delete", {"endpoint": gcpc_endpoint}, {})
    assert gcpc_endpoint not in {e.resource_name for e in aiplatform.Endpoint.list()}

    step("undeploy and delete everything")
    for ep in aiplatform.Endpoint.list():
        ep.undeploy_all()
        ep.delete()
    for m in aiplatform.Model.list():
        m.delete()
    assert aiplatform.Endpoint.list() == [] and aiplatform.Model.list() == []
    step("delete the template package and the buckets")
    client.delete_package(package)
    for b in gcs.list_buckets():
        for blob in gcs.list_blobs(b):
            blob.delete()
        b.delete()
    assert list(gcs.list_buckets()) == []
    print("ALL OK", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
