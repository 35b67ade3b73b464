"""Vertex AI semantics of the emulated v1 methods, independent of HTTP.

Each method takes names/bodies as the REST API does and returns the JSON to answer
(a resource, a list page or an operation), raising `ApiError` like Vertex AI would.
"""

from __future__ import annotations

import random
import re
import threading

from emulator import field_masks, filters
from emulator import resources as res
from emulator import validation as check
from emulator.deployments import PENDING_TRAFFIC, Deployments
from emulator.errors import ApiError, failed_precondition, invalid, not_found
from emulator.model_versions import ModelVersions, check_aliases, split_name
from emulator.operations import Operations
from emulator.store import DeployedRow, Store

_ENDPOINT_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# UploadModelRequest.model_id: "up to 63 characters, and valid characters are [a-z0-9_-].
# The first character cannot be a number or hyphen."
_MODEL_ID = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
# The ids Vertex AI assigns itself (as res.new_id makes them).
_ASSIGNED_ID = re.compile(r"^[1-9][0-9]{0,18}$")
# UpdateEndpoint: the fields the emulator keeps that the update mask may name.
ENDPOINT_UPDATE_PATHS = {"displayName", "description", "labels", "trafficSplit"}
# Bounds on model-server processes, so a burst of deploys cannot start an unbounded number
# of them. Vertex AI's own answers here are not documented: one deploy at a time per
# endpoint is answered FAILED_PRECONDITION and the emulator-wide bound RESOURCE_EXHAUSTED
# (as a quota would be), both unverified against the real service.
MAX_DEPLOYS_IN_FLIGHT_PER_ENDPOINT = 1
MAX_MODEL_SERVERS = 8


def strip_version(name: str) -> str:
    """`.../models/123@1` -> `.../models/123`."""
    return split_name(name)[0]


def check_traffic_split(split: object, deployed: set[str], field: str) -> dict[str, int]:
    """A traffic split as Endpoint.traffic_split documents it: percentages (ints 0-100) of
    deployed models that "must add up to 100, or map must be empty if the Endpoint is to
    not accept any traffic"; zeros are dropped."""
    if not isinstance(split, dict):
        raise invalid(f"{field} must be a map of DeployedModel ids to percentages.")
    out: dict[str, int] = {}
    for key, value in split.items():
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise invalid(f"{field}: the percentage of {str(key)[:70]!r} must be 0-100.")
        if value:
            out[str(key)] = value
    if out and sum(out.values()) != 100:
        raise invalid(f"{field}: the percentages must add up to 100, not {sum(out.values())}.")
    unknown = sorted(set(out) - deployed)
    if unknown:
        raise invalid(f"{field} names DeployedModel ids not deployed on the endpoint: {unknown}.")
    return out


def _public_dm(row: DeployedRow) -> dict:
    data = {k: v for k, v in row.data.items() if not k.startswith("_")}
    status = {"availableReplicaCount": 1 if row.state == "READY" else 0}
    if row.message:
        status["message"] = row.message
    data["status"] = status
    return data


class Vertex:
    """The emulated Model Registry, endpoints and operations."""

    def __init__(
        self,
        store: Store,
        ops: Operations,
        deployments: Deployments,
        max_model_servers: int = MAX_MODEL_SERVERS,
        max_deploys_per_endpoint: int = MAX_DEPLOYS_IN_FLIGHT_PER_ENDPOINT,
    ):
        self.store = store
        self.ops = ops
        self.deployments = deployments
        self.models = ModelVersions(store)
        self.max_model_servers = max_model_servers
        self.max_deploys_per_endpoint = max_deploys_per_endpoint

    def stored_problems(self) -> list[str]:
        """Stored models and endpoints that break today's rules (older state): each is
        still listable and deletable; this says which and why."""
        out = []
        for resource in self.store.all_resources():
            for problem in check.stored_problems(resource):
                out.append(f"{resource.get('name')}: {problem}")
        return out

    # -- models ---------------------------------------------------------------------------
    def upload_model(self, parent: str, body: dict, assigned_id: bool = False) -> dict:
        """`models:upload`: register a model; answer a done operation (UploadModelResponse).

        `assigned_id` (the admin API's seed only): `modelId` is an id as Vertex AI assigns
        them (digits), which no `models:upload` may ask for; for a model that "exists
        already" under the name a team's settings give it."""
        model_body = body.get("model")
        if not isinstance(model_body, dict):
            raise invalid("model is required.")
        check.check_display_name(model_body.get("displayName"), "model.display_name")
        check.check_labels(model_body.get("labels"), "model.labels")
        check.check_container_spec(model_body.get("containerSpec"))
        aliases = check_aliases(model_body.get("versionAliases"), "model.version_aliases")
        parent_model = body.get("parentModel")
        if parent_model:
            if not isinstance(parent_model, str) or not parent_model.startswith(
                f"{parent}/models/"
            ):
                raise invalid(
                    f"parent_model {str(parent_model)[:300]!r} is not a model of {parent}."
                )
            if "@" in parent_model:
                raise invalid("parent_model names a model, not a version: drop the @VERSION.")
            if body.get("modelId") and body["modelId"] != parent_model.rsplit("/", 1)[-1]:
                raise invalid("model_id and parent_model name different models.")
            with self.store.lock:
                version_id = self.models.add_version(parent_model, model_body, aliases)
            name = parent_model
        else:
            model_id = body.get("modelId")
            if model_id is None or model_id == "":
                model_id = res.new_id()  # Vertex AI's own ids are numeric
            elif assigned_id:
                if not isinstance(model_id, str) or not _ASSIGNED_ID.match(model_id):
                    raise invalid(f"Invalid assigned model id {str(model_id)[:100]!r}: digits.")
            elif not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
                raise invalid(
                    f"Invalid modelId {str(model_id)[:100]!r}: up to 63 characters of "
                    "[a-z0-9_-], not starting with a digit or hyphen."
                )
            name = f"{parent}/models/{model_id}"
            with self.store.lock:
                if self.store.get_resource(name) is not None:
                    raise ApiError("ALREADY_EXISTS", f"Model {name} already exists.")
                version_id = self.models.create(name, model_body, aliases)
        return self.ops.done(
            name,
            res.UPLOAD_MODEL_METADATA,
            res.UPLOAD_MODEL_RESPONSE,
            {"model": name, "modelVersionId": version_id},
        )

    def _model(self, name: str) -> dict:
        """The version `name` names (`@N`, `@alias` or the default one), as answered."""
        return self.models.deployable(name)

    def _refs(self, doc: dict) -> dict:
        refs = [
            {"endpoint": row.endpoint, "deployedModelId": row.id}
            for row in self.store.list_deployed()
            if strip_version(row.data.get("model", "")) == strip_version(doc["name"])
            and row.data.get("modelVersionId", "1") == doc.get("versionId", "1")
        ]
        if refs:
            doc["deployedModels"] = refs
        return doc

    def get_model(self, name: str) -> dict:
        """The Model version `name` names, with its `deployedModels` references."""
        with self.store.lock:
            return self._refs(self.models.get(name))

    def list_models(self, parent: str, query) -> dict:
        """`models` list (`filter`, `orderBy`, pages: emulator/filters.py): each model as
        its default version."""
        with self.store.lock:
            models = self.models.list_models(parent)
        return filters.select(models, "models", "models", query, parent)

    def list_model_versions(self, name: str, query) -> dict:
        """`:listVersions` with `filter`, `orderBy`, `readMask`, pages."""
        from google.cloud.aiplatform_v1.types import model as model_pb

        paths = field_masks.paths_of(query, "readMask")
        field_masks.check_paths(paths, model_pb.Model, "read_mask")
        with self.store.lock:
            docs = [self._refs(d) for d in self.models.list_versions(name)]
        page = filters.select(docs, "models", "modelVersions", query, name)
        page["models"] = [field_masks.apply_read_mask(d, paths) for d in page["models"]]
        return page

    def merge_version_aliases(self, name: str, body: dict) -> dict:
        """`:mergeVersionAliases`: the version with its aliases merged."""
        with self.store.lock:
            return self._refs(self.models.merge_aliases(name, body.get("versionAliases")))

    def update_model(self, name: str, body: dict, query) -> dict:
        """UpdateModel (PATCH) with `updateMask`."""
        from google.cloud.aiplatform_v1.types import model as model_pb

        paths = field_masks.paths_of(query, "updateMask")
        field_masks.check_paths(paths, model_pb.Model, "update_mask")
        with self.store.lock:
            return self._refs(self.models.update(name, body, paths))

    def _deployed_versions(self, base: str) -> dict[str, list[str]]:
        """version id -> endpoints it is deployed (or being deployed) on."""
        out: dict[str, list[str]] = {}
        for row in self.store.list_deployed():
            if strip_version(row.data.get("model", "")) == base:
                out.setdefault(row.data.get("modelVersionId", "1"), []).append(row.endpoint)
        return out

    def delete_model(self, name: str) -> dict:
        """Delete a model and its versions; FAILED_PRECONDITION while any is deployed."""
        base, version = split_name(name)
        if version:
            raise invalid(
                f"DeleteModel deletes a whole model: {base}, not {name}; delete one version "
                f"with {name}:deleteVersion."
            )
        with self.store.lock:
            self.models.resolve(base)
            where = sorted({e for es in self._deployed_versions(base).values() for e in es})
            if where:
                raise failed_precondition(
                    f'The Model "{base}" is deployed or being deployed at the '
                    f"following Endpoint(s): {', '.join(where)}."
                )
            self.models.delete(base)
        return self.ops.done(base, res.DELETE_METADATA, res.EMPTY)

    def delete_model_version(self, name: str) -> dict:
        """`:deleteVersion`: one version (named by id or alias); a done operation."""
        base = strip_version(name)
        with self.store.lock:
            self.models.delete_version(name, set(self._deployed_versions(base)))
        return self.ops.done(base, res.DELETE_METADATA, res.EMPTY)

    # -- endpoints ------------------------------------------------------------------------
    def create_endpoint(self, parent: str, body: dict, endpoint_id: str | None) -> dict:
        """Create an endpoint (honours `endpointId`); answer a done operation (Endpoint)."""
        check.check_display_name(body.get("displayName"), "endpoint.display_name")
        check.check_labels(body.get("labels"), "endpoint.labels")
        if endpoint_id is not None and not _ENDPOINT_ID.match(endpoint_id):
            raise invalid(f"Invalid endpointId {endpoint_id!r}.")
        name = f"{parent}/endpoints/{endpoint_id or res.new_id()}"
        with self.store.lock:
            if self.store.get_resource(name) is not None:
                raise ApiError("ALREADY_EXISTS", f"Endpoint {name} already exists.")
            endpoint = res.endpoint_resource(name, body, res.now())
            self.store.put_resource("endpoints", parent, endpoint)
        return self.ops.done(name, res.CREATE_ENDPOINT_METADATA, res.ENDPOINT, endpoint)

    def _endpoint(self, name: str) -> dict:
        endpoint = self.store.get_resource(name)
        if endpoint is None or "/endpoints/" not in name:
            raise not_found(f"Endpoint {name}")
        return endpoint

    def render_endpoint(self, endpoint: dict) -> dict:
        """An endpoint document with its `deployedModels`."""
        rows = self.store.list_deployed(endpoint["name"])
        out = check.renderable(dict(endpoint))
        if rows:
            out["deployedModels"] = [_public_dm(r) for r in rows]
        return out

    def get_endpoint(self, name: str) -> dict:
        """The Endpoint."""
        with self.store.lock:
            return self.render_endpoint(self._endpoint(name))

    def list_endpoints(self, parent: str, query) -> dict:
        """`endpoints` list (`filter`, e.g. `labels.k="v" AND labels.k2="v2"`, `orderBy`,
        pages: emulator/filters.py)."""
        with self.store.lock:
            items = [
                self.render_endpoint(e) for e in self.store.list_resources("endpoints", parent)
            ]
        return filters.select(items, "endpoints", "endpoints", query, parent)

    def update_endpoint(self, name: str, body: dict, query) -> dict:
        """UpdateEndpoint (PATCH) with `updateMask`: the fields in the mask, no others."""
        from google.cloud.aiplatform_v1.types import endpoint as endpoint_pb

        paths = field_masks.paths_of(query, "updateMask")
        if not paths:
            raise invalid("update_mask is required.")
        field_masks.check_paths(paths, endpoint_pb.Endpoint, "update_mask")
        for path in paths:
            if path not in ENDPOINT_UPDATE_PATHS:
                raise invalid(
                    f"update_mask path {path!r} cannot be updated by the emulator's "
                    f"UpdateEndpoint (only {', '.join(sorted(ENDPOINT_UPDATE_PATHS))})."
                )
        if "displayName" in paths:
            check.check_display_name(body.get("displayName"), "endpoint.display_name")
        if "labels" in paths:
            check.check_labels(body.get("labels"), "endpoint.labels")
        if "description" in paths and len(body.get("description") or "") > 10000:
            # a string: the body was parsed as an Endpoint (emulator/strict.py)
            raise invalid("endpoint.description is at most 10000 characters (emulator's bound).")
        with self.store.lock:
            endpoint = self._endpoint(name)
            for path in paths:
                value = body.get(path)
                if path == "trafficSplit":
                    deployed = {r.id for r in self.store.list_deployed(name)}
                    value = check_traffic_split(value or {}, deployed, "endpoint.traffic_split")
                if value in (None, "", {}):
                    endpoint.pop(path, None)  # in the mask and unset: cleared
                else:
                    endpoint[path] = value
            endpoint["updateTime"] = res.now()
            endpoint["etag"] = res.new_id()
            self.store.put_resource("endpoints", name.rsplit("/endpoints/", 1)[0], endpoint)
            return self.render_endpoint(endpoint)

    def delete_endpoint(self, name: str) -> dict:
        """Delete an endpoint; FAILED_PRECONDITION while models are deployed on it."""
        with self.store.lock:
            self._endpoint(name)
            if self.store.list_deployed(name):
                raise failed_precondition(
                    f"Endpoint `{name}` has deployed or being deployed DeployedModel(s)."
                )
            self.store.delete_resource(name)
        return self.ops.done(name, res.DELETE_METADATA, res.EMPTY)

    def deploy_model(self, endpoint_name: str, body: dict) -> dict:
        """`:deployModel`: record the deployed model (visible at once), start it, answer the LRO."""
        request = body.get("deployedModel")
        # JSON types were checked against DeployModelRequest already (emulator/strict.py)
        if not isinstance(request, dict) or not request.get("model"):
            raise invalid("deployedModel.model is required.")
        with self.store.lock:
            endpoint = self._endpoint(endpoint_name)
            # `models/ID`, `models/ID@N` or `models/ID@alias` (DeployedModel.model); the
            # deployed model records the model's name and the version it resolved to.
            model = self._model(request["model"])
            if not model.get("containerSpec", {}).get("command"):
                raise invalid(
                    "The emulator runs containerSpec.command as a local process; this model "
                    "has no command (container images are not pulled)."
                )
            existing = {r.id for r in self.store.list_deployed(endpoint_name)}
            # "0" is the model being deployed (DeployModelRequest.traffic_split)
            traffic = check_traffic_split(
                body.get("trafficSplit") or {}, existing | {"0"}, "traffic_split"
            )
            dm_id = str(request.get("id") or res.new_id())
            if dm_id in existing:
                raise ApiError("ALREADY_EXISTS", f"DeployedModel {dm_id} already exists.")
            self._check_capacity(endpoint_name)
            dm = res.deployed_model_resource(dm_id, model, request, res.now())
            if traffic:
                dm[PENDING_TRAFFIC] = traffic
            op = self.ops.create(
                endpoint["name"],
                res.DEPLOY_MODEL_METADATA,
                extra_metadata={"deploymentStage": "STARTING_MODEL_SERVER"},
            )
            self.store.add_deployed(endpoint_name, dm, op["name"])
        self.deployments.begin(endpoint_name, dm_id, op["name"])
        return op

    def _check_capacity(self, endpoint_name: str) -> None:
        rows = self.store.list_deployed()
        in_flight = [r for r in rows if r.endpoint == endpoint_name and r.state == "DEPLOYING"]
        if len(in_flight) >= self.max_deploys_per_endpoint:
            raise failed_precondition(
                f"Endpoint `{endpoint_name}` has a deployment in progress "
                f"(DeployedModel {in_flight[0].id}); wait for its operation to finish."
            )
        live = [r for r in rows if r.state in ("DEPLOYING", "READY")]
        if len(live) >= self.max_model_servers:
            raise ApiError(
                "RESOURCE_EXHAUSTED",
                f"Quota exceeded: this emulator runs at most {self.max_model_servers} deployed "
                "models at once; undeploy one first.",
            )

    def undeploy_model(self, endpoint_name: str, body: dict) -> dict:
        """`:undeployModel`: abort an in-flight deploy or stop the process, then forget it."""
        dm_id = str(body.get("deployedModelId") or "")
        self._endpoint(endpoint_name)
        row = self.store.get_deployed(endpoint_name, dm_id)
        if row is None:
            raise not_found(f"DeployedModel {dm_id} of Endpoint {endpoint_name}")
        self.deployments.stop(endpoint_name, dm_id, "undeploy")
        with self.store.lock:
            self.store.delete_deployed(endpoint_name, dm_id)
            endpoint = self.store.get_resource(endpoint_name)
            if endpoint is not None:
                split = body.get("trafficSplit") or endpoint.get("trafficSplit", {})
                split = {k: int(v) for k, v in split.items() if k != dm_id and int(v) > 0}
                if not self.store.list_deployed(endpoint_name):
                    split = {}
                endpoint["trafficSplit"] = split
                if not split:
                    endpoint.pop("trafficSplit")
                endpoint["updateTime"] = res.now()
                self.store.put_resource("endpoints", endpoint_name.rsplit("/", 2)[0], endpoint)
        return self.ops.done(
            endpoint_name, res.UNDEPLOY_MODEL_METADATA, res.UNDEPLOY_MODEL_RESPONSE
        )

    def undeploy_everything(self) -> None:
        """Undeploy every deployed model (in parallel: each stop may take a grace period)."""
        rows = self.store.list_deployed()
        threads = [
            threading.Thread(
                target=self._undeploy_quietly, args=(row.endpoint, row.id), daemon=True
            )
            for row in rows
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)

    def _undeploy_quietly(self, endpoint: str, dm_id: str) -> None:
        try:
            self.undeploy_model(endpoint, {"deployedModelId": dm_id})
        except ApiError:
            pass  # already gone

    def predict_target(self, endpoint_name: str) -> tuple[DeployedRow, dict]:
        """Pick the deployed model a prediction goes to, by traffic split; and its Model."""
        with self.store.lock:
            endpoint = self._endpoint(endpoint_name)
            rows = {r.id: r for r in self.store.list_deployed(endpoint_name)}
            split = {k: v for k, v in endpoint.get("trafficSplit", {}).items() if v > 0}
        if not rows:
            raise failed_precondition(f"Endpoint {endpoint_name} has no deployed models.")
        if not split:
            raise failed_precondition(f"Endpoint {endpoint_name} has no traffic split.")
        dm_id = random.choices(list(split), weights=list(split.values()))[0]
        row = rows.get(dm_id)
        if row is None or row.state != "READY":
            state = row.state if row else "missing"
            raise ApiError("UNAVAILABLE", f"DeployedModel {dm_id} is not ready ({state}).")
        return row, self.models.version_doc(row.data["model"], row.data.get("modelVersionId")) or {}

    # -- operations -----------------------------------------------------------------------
    def get_operation(self, name: str) -> dict:
        """An operation, as the SDK polls it."""
        op = self.ops.get(name)
        if op is None:
            raise not_found(f"Operation {name}")
        return op

    def list_operations(self, parent: str) -> dict:
        """Operations under a resource."""
        return {"operations": self.store.list_operations(parent)}

    def delete_operation(self, name: str) -> dict:
        """Forget an operation."""
        self.get_operation(name)
        self.store.delete_operation(name)
        return {}

    def cancel_operation(self, name: str) -> dict:
        """Cancel: a pending deploy is aborted (operation error CANCELLED) and removed."""
        op = self.get_operation(name)
        if op.get("done"):
            return {}
        for row in self.store.list_deployed():
            if row.operation == name and row.state == "DEPLOYING":
                self.deployments.stop(row.endpoint, row.id, "cancel")
                self.store.delete_deployed(row.endpoint, row.id)
                self.ops.fail(
                    name,
                    "CANCELLED",
                    "Operation cancelled.",
                    metadata={"deploymentStage": "DEPLOYMENT_TERMINATED"},
                )
        return {}
