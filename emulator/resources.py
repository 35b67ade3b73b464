"""JSON shapes of the Vertex AI v1 resources the emulator serves (proto3 JSON, camelCase).

Every dict built here parses strictly (`ignore_unknown_fields=False`) into the matching
`google.cloud.aiplatform_v1` message; tests check that.
"""

from __future__ import annotations

import datetime as _dt
import secrets

TYPE_PREFIX = "type.googleapis.com/"
V1 = "google.cloud.aiplatform.v1."

# Operation metadata / response types, as Vertex AI names them.
UPLOAD_MODEL_METADATA = V1 + "UploadModelOperationMetadata"
UPLOAD_MODEL_RESPONSE = V1 + "UploadModelResponse"
CREATE_ENDPOINT_METADATA = V1 + "CreateEndpointOperationMetadata"
ENDPOINT = V1 + "Endpoint"
DEPLOY_MODEL_METADATA = V1 + "DeployModelOperationMetadata"
DEPLOY_MODEL_RESPONSE = V1 + "DeployModelResponse"
UNDEPLOY_MODEL_METADATA = V1 + "UndeployModelOperationMetadata"
UNDEPLOY_MODEL_RESPONSE = V1 + "UndeployModelResponse"
DELETE_METADATA = V1 + "DeleteOperationMetadata"
EMPTY = "google.protobuf.Empty"

DEFAULT_HEALTH_ROUTE = "/health"
DEFAULT_PREDICT_ROUTE = "/predict"


def now() -> str:
    """RFC 3339 UTC timestamp with microseconds, as Vertex AI writes them."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    """A numeric resource id like Vertex AI's (19 digits, no leading zero)."""
    return str(10**18 + secrets.randbelow(9 * 10**18))


def any_of(type_name: str, body: dict | None = None) -> dict:
    """A `google.protobuf.Any` in JSON: the message's fields plus `@type`."""
    return {"@type": TYPE_PREFIX + type_name, **(body or {})}


def generic_metadata(create_time: str, update_time: str | None = None) -> dict:
    """`GenericOperationMetadata` JSON."""
    return {"createTime": create_time, "updateTime": update_time or create_time}


_CONTAINER_KEYS = (
    "imageUri",
    "command",
    "args",
    "env",
    "ports",
    "predictRoute",
    "healthRoute",
    "deploymentTimeout",
    "sharedMemorySizeMb",
)


def model_resource(name: str, body: dict, create_time: str) -> dict:
    """A `Model` from an upload request's `model` field (kept fields only)."""
    spec = {
        k: body["containerSpec"][k] for k in _CONTAINER_KEYS if k in body.get("containerSpec", {})
    }
    model = {
        "name": name,
        "displayName": body.get("displayName", ""),
        "versionId": "1",
        "versionAliases": ["default"],
        "versionCreateTime": create_time,
        "versionUpdateTime": create_time,
        "createTime": create_time,
        "updateTime": create_time,
        "etag": new_id(),
        "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
    }
    for key in ("description", "versionDescription", "artifactUri", "labels", "metadataSchemaUri"):
        if body.get(key):
            model[key] = body[key]
    if spec:
        model["containerSpec"] = spec
    return model


def endpoint_resource(name: str, body: dict, create_time: str) -> dict:
    """An `Endpoint` (without deployed models) from a create request body."""
    endpoint = {
        "name": name,
        "displayName": body.get("displayName", ""),
        "createTime": create_time,
        "updateTime": create_time,
        "etag": new_id(),
    }
    for key in ("description", "labels"):
        if body.get(key):
            endpoint[key] = body[key]
    return endpoint


def deployed_model_resource(dm_id: str, model: dict, request: dict, create_time: str) -> dict:
    """A `DeployedModel` from a deployModel request's `deployedModel` and its `Model`."""
    dm = {
        "id": dm_id,
        "model": model["name"],
        "modelVersionId": model.get("versionId", "1"),
        "displayName": request.get("displayName") or model.get("displayName", ""),
        "createTime": create_time,
    }
    if "dedicatedResources" in request:
        dm["dedicatedResources"] = request["dedicatedResources"]
    elif "automaticResources" in request:
        dm["automaticResources"] = request["automaticResources"]
    else:
        dm["dedicatedResources"] = {
            "machineSpec": {"machineType": "n1-standard-2"},
            "minReplicaCount": 1,
            "maxReplicaCount": 1,
        }
    for key in ("serviceAccount", "disableContainerLogging", "enableAccessLogging"):
        if key in request:
            dm[key] = request[key]
    return dm


def machine_type(dm: dict) -> str:
    """The machine type a deployed model asked for ('' when automatic)."""
    return dm.get("dedicatedResources", {}).get("machineSpec", {}).get("machineType", "")


def operation(
    name: str,
    metadata_type: str,
    create_time: str,
    *,
    done: bool = False,
    response_type: str | None = None,
    response: dict | None = None,
    error: dict | None = None,
    update_time: str | None = None,
    extra_metadata: dict | None = None,
) -> dict:
    """A `google.longrunning.Operation` in JSON."""
    meta = {"genericMetadata": generic_metadata(create_time, update_time)}
    meta.update(extra_metadata or {})
    op = {"name": name, "metadata": any_of(metadata_type, meta), "done": done}
    if done and error is not None:
        op["error"] = error
    elif done:
        op["response"] = any_of(response_type or EMPTY, response)
    return op
