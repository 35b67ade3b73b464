"""JSON shapes of the Vertex AI v1 resources the emulator serves (proto3 JSON, camelCase).

Every dict built here parses strictly (`ignore_unknown_fields=False`) into the matching
`google.cloud.aiplatform_v1` message; tests check that.
"""

from __future__ import annotations

import datetime as _dt
import secrets

from emulator.errors import invalid

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


def model_resource(
    name: str,
    body: dict,
    create_time: str,
    version_id: str = "1",
    aliases: list[str] | None = None,
) -> dict:
    """A `Model` (one version of it) from an upload request's `model` field (kept fields
    only). `modelSourceInfo` is CUSTOM: "uploaded by user or custom training pipeline"
    (ModelSourceInfo.ModelSourceType)."""
    spec = {
        k: body["containerSpec"][k] for k in _CONTAINER_KEYS if k in body.get("containerSpec", {})
    }
    model = {
        "name": name,
        "displayName": body.get("displayName", ""),
        "versionId": version_id,
        "versionAliases": list(aliases) if aliases is not None else ["default"],
        "versionCreateTime": create_time,
        "versionUpdateTime": create_time,
        "createTime": create_time,
        "updateTime": create_time,
        "etag": new_id(),
        "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
        "modelSourceInfo": {"sourceType": "CUSTOM"},
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
        dm["dedicatedResources"] = replica_counts(request["dedicatedResources"], dedicated=True)
    elif "automaticResources" in request:
        dm["automaticResources"] = replica_counts(request["automaticResources"], dedicated=False)
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


def replica_counts(resources: object, dedicated: bool) -> dict:
    """`dedicatedResources`/`automaticResources` with int32 replica counts (proto3 JSON
    accepts `"1"` for an int32, as GCPC's launchers send it; Vertex AI answers numbers).

    Dedicated: a missing `maxReplicaCount` is `minReplicaCount` (DedicatedResources' field
    docs); it may not be below the minimum. Automatic resources document no default for
    the maximum."""
    if not isinstance(resources, dict):
        raise invalid("deployed_model resources must be an object.")
    out = dict(resources)
    for key in ("minReplicaCount", "maxReplicaCount"):
        if key not in out:
            continue
        value = out[key]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            raise invalid(f"deployed_model.{key} must be a non-negative int32, not {value!r}.")
        out[key] = value
    if dedicated:
        # Documented as required (at least 1); a request without it has always been
        # deployed as one replica here (GCPC-shaped and raw callers omit it), so it stays 1.
        out["minReplicaCount"] = out.get("minReplicaCount") or 1
        if not out.get("maxReplicaCount"):  # unset (proto3: 0 is unset)
            out["maxReplicaCount"] = out["minReplicaCount"]
        if out["maxReplicaCount"] < out["minReplicaCount"]:
            raise invalid(
                "deployed_model.dedicated_resources.max_replica_count must be >= min_replica_count."
            )
    return out


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
