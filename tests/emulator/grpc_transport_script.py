"""Client side of test_grpc_transport.py: the official SDK with its default transport (gRPC),
run with only the emulator's env file applied. Prints one JSON line of observations last.

usage: grpc_transport_script.py FAKE_SERVER PIPELINE_TEMPLATE
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx
from google.api import httpbody_pb2
from google.api_core import exceptions
from google.cloud import aiplatform, storage
from google.cloud.aiplatform_v1 import types
from google.longrunning import operations_pb2
from google.oauth2.credentials import Credentials

FAKE_SERVER, TEMPLATE = sys.argv[1:3]
ADMIN = os.environ["DEPLOYTEST_EMULATOR_URL"] + "/deploytest/v1"
out: dict = {}


def error_of(call) -> list:
    """[exception class, the google.rpc details' type names] of a call that must fail."""
    try:
        call()
    except exceptions.GoogleAPICallError as exc:
        return [type(exc).__name__, [type(d).__name__ for d in exc.details]]
    raise AssertionError("no error")


aiplatform.init(project="p", location="us-central1")  # no api_transport: gRPC

# Models: upload, a second version, list, get; the clients talk gRPC.
model = aiplatform.Model.upload(
    display_name="grpc-model",
    artifact_uri="gs://none/fake",
    serving_container_image_uri="local",
    serving_container_command=[sys.executable, FAKE_SERVER],
    serving_container_environment_variables={"FAKE_LOAD_S": "0.2", "FAKE_STREAM_GAP_S": "0.4"},
    labels={"deploytest-managed": "true"},
)
version = aiplatform.Model.upload(
    parent_model=model.resource_name,
    is_default_version=False,
    version_aliases=["candidate"],
    artifact_uri="gs://none/fake",
    serving_container_image_uri="local",
    serving_container_command=[sys.executable, FAKE_SERVER],
)
out["transport"] = type(model.api_client._transport).__name__
out["versions"] = [model.version_id, version.version_id, list(version.version_aliases)]
out["listed"] = [m.display_name for m in aiplatform.Model.list()]
out["get"] = aiplatform.Model(f"{model.resource_name}@candidate").version_id

# Endpoints: create, deploy, predict, rawPredict and streamRawPredict over gRPC.
endpoint = aiplatform.Endpoint.create(display_name="grpc-endpoint")
endpoint.deploy(model, machine_type="n1-standard-2")
prediction = endpoint.predict(instances=[{"text": "hi"}], parameters={"max_new_tokens": 3})
out["predict"] = [prediction.predictions[0]["generated_text"], prediction.deployed_model_id]
out["deployed_id"] = endpoint.list_models()[0].id
client = endpoint._prediction_client
body = json.dumps({"instances": [{"text": "raw"}]}).encode()
raw = client.raw_predict(
    endpoint=endpoint.resource_name,
    http_body=httpbody_pb2.HttpBody(content_type="application/json", data=body),
)
out["raw"] = [raw.content_type, json.loads(raw.data)["predictions"][0]["generated_text"]]
stream_body = json.dumps({"instances": [], "stream": True}).encode()
arrivals, chunks = [], []
for part in client.stream_raw_predict(
    request={
        "endpoint": endpoint.resource_name,
        "http_body": {"content_type": "application/json", "data": stream_body},
    }
):
    arrivals.append(time.monotonic())
    chunks.append(part.data.decode())
out["stream"] = ["".join(chunks).count("data: "), arrivals[-1] - arrivals[0], part.content_type]

# Errors: the class of the canonical code, as REST's (InvalidArgument and FailedPrecondition
# are BadRequest subclasses), with the google.rpc details.
out["not_found"] = error_of(
    lambda: aiplatform.Model("projects/p/locations/us-central1/models/nope").display_name
)
out["unknown_field"] = error_of(
    lambda: model.api_client.update_model(
        model=types.Model(name=model.resource_name, display_name="x"),
        update_mask={"paths": ["not_a_field"]},
    )
)
out["bad_label"] = error_of(
    lambda: aiplatform.Endpoint.create(display_name="bad", labels={"Bad Key": "x"})
)
out["delete_deployed"] = error_of(endpoint.delete)
out["not_emulated"] = error_of(
    lambda: model.api_client.export_model(name=model.resource_name, output_config={})
)
# Long-running operations (google.longrunning.Operations on the same channel).
api = endpoint.api_client
ops = api.list_operations(request={"name": endpoint.resource_name}).operations
out["ops"] = [len(ops), all(o.done for o in ops)]
out["get_op"] = api.get_operation(request={"name": ops[0].name}).name == ops[0].name
# The SDK's gRPC transport has no deserializer for WaitOperation: it returns the bytes.
waited = api.wait_operation(request={"name": ops[0].name, "timeout": {"seconds": 1}})
out["wait_op"] = operations_pb2.Operation.FromString(waited).done
api.delete_operation(request={"name": ops[0].name})
out["deleted_op"] = error_of(lambda: api.get_operation(request={"name": ops[0].name}))[0]

# A deploy that hangs, cancelled through the gRPC operations client (over REST,
# api_core's Operation.cancel() fails in the client: emulator/README.md).
httpx.put(f"{ADMIN}/faults", json={"deploy": "hang"}).raise_for_status()
lro = api.deploy_model(
    endpoint=endpoint.resource_name,
    deployed_model=types.DeployedModel(
        model=version.resource_name,
        dedicated_resources=types.DedicatedResources(
            machine_spec=types.MachineSpec(machine_type="n1-standard-2"), min_replica_count=1
        ),
    ),
)
httpx.put(f"{ADMIN}/faults", json={"deploy": None}).raise_for_status()
pending = not lro.done()
lro.cancel()
try:
    lro.result(timeout=30)
    out["cancelled_deploy"] = [pending, "succeeded"]
except exceptions.Cancelled:
    out["cancelled_deploy"] = [pending, "Cancelled"]

# What Google's test_model_upload.py does after its (container) deploy: update, a second
# deployed model, a traffic split.
model = model.update(display_name="new_name", description="d", labels={"my_label": "updated"})
out["updated"] = [model.display_name, model.description, dict(model.labels)]
endpoint.deploy(version, traffic_percentage=100, machine_type="n1-standard-2")
split = {deployed.id: 50 for deployed in endpoint.list_models()}
endpoint.update(traffic_split=split)
out["traffic"] = [len(split), endpoint.traffic_split == split]

endpoint.undeploy_all()
endpoint.delete()
version.versioning_registry.delete_version(version.version_id)
model.delete()
out["left"] = [len(aiplatform.Endpoint.list()), len(aiplatform.Model.list())]

# Vertex AI Pipelines: submit, run to the end, and a cancel.
if storage.Client().lookup_bucket("grpc-bucket") is None:
    storage.Client().create_bucket("grpc-bucket")


def finished(job) -> str:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = aiplatform.PipelineJob.get(job.resource_name).state.name
        if state in (
            "PIPELINE_STATE_SUCCEEDED",
            "PIPELINE_STATE_FAILED",
            "PIPELINE_STATE_CANCELLED",
        ):
            return state
        time.sleep(0.3)
    raise AssertionError(f"{job.resource_name} did not finish")


jobs = {
    word: aiplatform.PipelineJob(
        display_name="grpc-pipeline",
        job_id=f"grpc-{word}",
        template_path=TEMPLATE,
        pipeline_root="gs://grpc-bucket/root",
        parameter_values={"seconds": seconds},
        enable_caching=False,
    )
    for word, seconds in (("run", 0.0), ("cancel", 60.0))
}
for job in jobs.values():
    job.submit()
jobs["cancel"].cancel()
out["pipelines"] = {word: finished(job) for word, job in jobs.items()}
out["listed_jobs"] = len(aiplatform.PipelineJob.list())
for job in jobs.values():
    job.delete()

# A token this emulator did not issue: UNAUTHENTICATED, as over REST.
# (`init` without `project` would switch the SDK to REST: its initializer does that.)
aiplatform.init(project="p", credentials=Credentials(token="not-a-token"))
out["bad_token"] = error_of(aiplatform.Model.list)[0]
print(json.dumps(out))
