"""HTTP routes: Vertex AI REST v1 paths (`/v1/projects/*/locations/*/...`, also under `/ui/`)
and the admin API.

Admin (not Vertex AI): `GET|PUT /deploytest/v1/faults`, `GET /deploytest/v1/processes`,
`GET /deploytest/v1/healthz`, `GET /deploytest/v1/client-env` (the `--env-file` variables),
`GET /deploytest/v1/pipeline-logs/{job id}[?offset=BYTES]` (a pipeline job's task log).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.errors import ApiError, invalid, not_found, status_for_http
from emulator.faults import FaultState
from emulator.pipeline_jobs import PipelineJobs
from emulator.protojson import camel_case_fields
from emulator.security import RequestGuard
from emulator.service import Vertex
from emulator.strict import check_body

log = logging.getLogger("emulator.app")

_LOC = r"projects/[^/:]+/locations/[^/:]+"
_PARENT = f"(?P<parent>{_LOC})"
_EP = _PARENT + r"/endpoints/(?P<endpoint>[^/:]+)"
_MODEL = f"(?P<name>{_LOC}/models/[^/:]+)"
_OP = f"(?P<name>{_LOC}(?:/[^/:]+/[^/:]+)*/operations/[^/:]+)"
_OP_PARENT = f"(?P<parent>{_LOC}(?:/[^/:]+/[^/:]+)*)/operations"
_JOB = f"(?P<name>{_LOC}/pipelineJobs/[^/:]+)"


def _json(request_body: bytes) -> dict:
    if not request_body:
        return {}
    try:
        body = json.loads(request_body)
    except ValueError:
        raise invalid("Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    return body


_SEED_PARENT = re.compile(r"projects/[a-z0-9-]{1,63}/locations/[a-z0-9-]{1,63}")


def _message(name: str):
    """A request message class by name: `aiplatform_v1`'s, or google.longrunning's."""
    if name in ("CancelOperationRequest", "WaitOperationRequest"):
        from google.longrunning import operations_pb2

        return getattr(operations_pb2, name)
    from google.cloud import aiplatform_v1

    return getattr(aiplatform_v1, name)


def normalize_numbers(value):
    """Integral floats -> ints, recursively.

    The SDK sends `instances`/`parameters` as `google.protobuf.Value`s, whose JSON prints
    every number as a double (`8` becomes `8.0`); Vertex AI's front end re-serialises the
    request for the container and writes integral numbers without a fraction. Do the same
    so containers see `{"max_new_tokens": 8}` as they would on Vertex AI.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [normalize_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize_numbers(v) for k, v in value.items()}
    return value


def build_app(
    vertex: Vertex, faults: FaultState, pipelines: PipelineJobs | None = None
) -> Starlette:
    """The Starlette application for one emulator (with Vertex AI Pipelines if given)."""
    routes: list[tuple[str, re.Pattern, Callable, tuple[str, str] | None]] = []

    def route(method: str, pattern: str, body: tuple[str, str] | None = None):
        """`body`: (request message of `aiplatform_v1`, the request field the HTTP body
        maps to, '' for `body: "*"`): the body is parsed strictly against it first
        (emulator/strict.py), so nothing a proto3 JSON parser refuses is ever stored."""

        def register(fn):
            routes.append((method, re.compile(pattern + r"$"), fn, body))
            return fn

        return register

    # Vertex paths are matched below `/v1/`; the order matters (`:verb` forms first).
    @route("POST", _PARENT + r"/models:upload", ("UploadModelRequest", ""))
    def upload(req, body, m):
        return vertex.upload_model(m["parent"], body)

    @route("GET", _PARENT + r"/models")
    def list_models(req, body, m):
        return vertex.list_models(m["parent"], req.query_params)

    @route("GET", _MODEL + r":listVersions")
    def list_model_versions(req, body, m):
        return vertex.list_model_versions(m["name"], req.query_params)

    @route("POST", _MODEL + r":mergeVersionAliases", ("MergeVersionAliasesRequest", ""))
    def merge_version_aliases(req, body, m):
        return vertex.merge_version_aliases(m["name"], body)

    @route("DELETE", _MODEL + r":deleteVersion")
    def delete_model_version(req, body, m):
        return vertex.delete_model_version(m["name"])

    @route("GET", _MODEL)
    def get_model(req, body, m):
        return vertex.get_model(m["name"])

    @route("PATCH", _MODEL, ("Model", "model"))
    def update_model(req, body, m):
        return vertex.update_model(m["name"], body, req.query_params)

    @route("DELETE", _MODEL)
    def delete_model(req, body, m):
        return vertex.delete_model(m["name"])

    @route("POST", _PARENT + r"/endpoints", ("Endpoint", "endpoint"))
    def create_endpoint(req, body, m):
        return vertex.create_endpoint(m["parent"], body, req.query_params.get("endpointId"))

    @route("GET", _PARENT + r"/endpoints")
    def list_endpoints(req, body, m):
        return vertex.list_endpoints(m["parent"], req.query_params)

    @route("GET", _EP)
    def get_endpoint(req, body, m):
        return vertex.get_endpoint(f"{m['parent']}/endpoints/{m['endpoint']}")

    @route("PATCH", _EP, ("Endpoint", "endpoint"))
    def update_endpoint(req, body, m):
        return vertex.update_endpoint(
            f"{m['parent']}/endpoints/{m['endpoint']}", body, req.query_params
        )

    @route("DELETE", _EP)
    def delete_endpoint(req, body, m):
        return vertex.delete_endpoint(f"{m['parent']}/endpoints/{m['endpoint']}")

    @route("POST", _EP + r":deployModel", ("DeployModelRequest", ""))
    def deploy(req, body, m):
        return vertex.deploy_model(f"{m['parent']}/endpoints/{m['endpoint']}", body)

    @route("POST", _EP + r":undeployModel", ("UndeployModelRequest", ""))
    def undeploy(req, body, m):
        return vertex.undeploy_model(f"{m['parent']}/endpoints/{m['endpoint']}", body)

    @route("GET", _OP)
    def get_operation(req, body, m):
        return vertex.get_operation(m["name"])

    @route("DELETE", _OP)
    def delete_operation(req, body, m):
        return vertex.delete_operation(m["name"])

    @route("POST", _OP + r":cancel", ("CancelOperationRequest", ""))
    def cancel_operation(req, body, m):
        return vertex.cancel_operation(m["name"])

    @route("POST", _OP + r":wait", ("WaitOperationRequest", ""))
    def wait_operation(req, body, m):
        import time

        timeout = str(body.get("timeout") or req.query_params.get("timeout") or "0s")
        try:
            seconds = min(float(timeout.rstrip("s") or 0), 60.0)
        except ValueError:
            raise invalid(f"Bad timeout {timeout!r}.") from None
        deadline = time.monotonic() + seconds
        while True:
            op = vertex.get_operation(m["name"])
            if op.get("done") or time.monotonic() >= deadline:
                return op
            time.sleep(0.1)

    @route("GET", _OP_PARENT)
    def list_operations(req, body, m):
        return vertex.list_operations(m["parent"])

    if pipelines is not None:

        @route("POST", _PARENT + r"/pipelineJobs", ("PipelineJob", "pipeline_job"))
        def create_pipeline_job(req, body, m):
            return pipelines.create(m["parent"], body, req.query_params.get("pipelineJobId"))

        @route("GET", _PARENT + r"/pipelineJobs")
        def list_pipeline_jobs(req, body, m):
            return pipelines.list(m["parent"], req.query_params)

        @route("GET", _JOB)
        def get_pipeline_job(req, body, m):
            return pipelines.get(m["name"])

        @route("POST", _JOB + r":cancel", ("CancelPipelineJobRequest", ""))
        def cancel_pipeline_job(req, body, m):
            return pipelines.cancel(m["name"])

        @route("DELETE", _JOB)
        def delete_pipeline_job(req, body, m):
            return pipelines.delete(m["name"])

    async def dispatch(request: Request) -> Response:
        path = request.path_params["path"]
        try:
            has_body = request.method in ("POST", "PUT", "PATCH")
            body = _json(await request.body()) if has_body else {}
            for method, pattern, fn, body_type in routes:
                match = pattern.match(path)
                if match and method == request.method:
                    if body_type is not None:
                        check_body(body, _message(body_type[0]), body_type[1])
                    body = camel_case_fields(body)  # proto3 JSON: `display_name` too
                    result = await run_in_threadpool(fn, request, body, match.groupdict())
                    return JSONResponse(result)
            raise not_found(f"Method {request.method} {request.url.path}")
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.http_code)
        except Exception as exc:
            log.exception("error on %s %s", request.method, request.url.path)
            err = ApiError("INTERNAL", f"Emulator error: {exc!r}")
            return JSONResponse(err.body(), status_code=err.http_code)

    async def predict(request: Request) -> Response:
        return await _forward(request, raw=False)

    async def raw_predict(request: Request) -> Response:
        return await _forward(request, raw=True)

    async def stream_raw_predict(request: Request) -> Response:
        from emulator.streaming import stream_raw_predict as forward_stream

        return await forward_stream(request, vertex, faults)

    async def chat_completions(request: Request) -> Response:
        from emulator.streaming import CHAT_ROUTE
        from emulator.streaming import stream_raw_predict as forward_stream

        return await forward_stream(request, vertex, faults, route=CHAT_ROUTE)

    async def _forward(request: Request, raw: bool) -> Response:
        p = request.path_params
        name = f"projects/{p['project']}/locations/{p['location']}/endpoints/{p['endpoint']}"
        try:
            body = await request.body()
            if not raw:
                parsed = _json(body)
                if not isinstance(parsed.get("instances"), list):
                    raise invalid("`instances` must be a list.")
                body = json.dumps(normalize_numbers(parsed)).encode()
            row, model = await run_in_threadpool(vertex.predict_target, name)
            f = faults.get()
            if f.predict_latency_ms:
                await asyncio.sleep(f.predict_latency_ms / 1000)
            code = faults.predict_error()
            if code is not None:
                raise ApiError(
                    status_for_http(code), f"Injected predict fault (HTTP {code}).", code
                )
            proc = vertex.deployments.process_for(name, row.id)
            if proc is None:
                raise ApiError("UNAVAILABLE", f"DeployedModel {row.id} has no running server.")
            spec = model.get("containerSpec", {})
            url = f"http://127.0.0.1:{proc.port}{spec.get('predictRoute') or '/predict'}"
            headers = {"content-type": request.headers.get("content-type", "application/json")}
            try:
                resp = await request.app.state.http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ApiError(
                    "UNAVAILABLE", f"Model server of DeployedModel {row.id} unreachable: {exc!r}"
                ) from None
            ids = {
                "X-Vertex-AI-Deployed-Model-Id": row.id,
                "X-Vertex-AI-Model": row.data["model"],
                "X-Vertex-AI-Model-Display-Name": model.get("displayName", ""),
                "X-Vertex-AI-Model-Version-Id": row.data.get("modelVersionId", "1"),
            }
            if raw:
                media = resp.headers.get("content-type", "application/json")
                return Response(resp.content, resp.status_code, headers=ids, media_type=media)
            if resp.status_code != 200:
                raise ApiError(
                    status_for_http(resp.status_code), resp.text[:4000], resp.status_code
                )
            try:
                predictions = resp.json()["predictions"]
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    "INTERNAL", f"Model server answered without `predictions`: {resp.text[:500]}"
                ) from None
            return JSONResponse(
                {
                    "predictions": predictions,
                    "deployedModelId": row.id,
                    "model": row.data["model"],
                    "modelDisplayName": model.get("displayName", ""),
                    "modelVersionId": row.data.get("modelVersionId", "1"),
                }
            )
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.http_code)

    # -- admin API ------------------------------------------------------------------------
    async def admin_faults(request: Request) -> Response:
        try:
            if request.method == "PUT":
                faults.update(_json(await request.body()))
            return JSONResponse(faults.get().to_json())
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.http_code)

    async def admin_processes(request: Request) -> Response:
        return JSONResponse({"processes": vertex.deployments.running()})

    async def admin_client_env(request: Request) -> Response:
        # What `--env-file` writes (paths on this machine, no secret: the credentials file
        # is 0600 and the CA's key is never named), for a runner sharing this emulator.
        env = pipelines.task_env if pipelines is not None else {}
        return JSONResponse({"env": env})

    async def admin_pipeline_log(request: Request) -> Response:
        # A pipeline job's task log (kfp.local's) from byte `offset` on: a follower asks only
        # for what it has not seen; `deploytest run` keeps the whole log in its run folder.
        job_id = request.path_params["job_id"]
        path = pipelines.log_path(job_id) if pipelines is not None else None
        if path is None or not path.is_file():
            return JSONResponse(not_found(f"pipeline job log {job_id}").body(), status_code=404)
        offset = request.query_params.get("offset", "0")
        if not offset.isdigit():
            return JSONResponse(invalid(f"offset {offset!r}: not a byte count").body(), 400)
        with open(path, "rb") as log:
            log.seek(int(offset))
            return Response(log.read(), media_type="text/plain; charset=utf-8")

    async def admin_seed_model(request: Request) -> Response:
        # A model that exists already under an id Vertex AI assigned (digits), which no
        # `models:upload` may ask for: {"parent": "projects/P/locations/L", and the fields of
        # an UploadModelRequest}. For tests and demos whose settings name such a model.
        try:
            body = _json(await request.body())
            parent = body.pop("parent", None) if isinstance(body, dict) else None
            if not isinstance(parent, str) or not _SEED_PARENT.fullmatch(parent):
                raise invalid("parent must be projects/P/locations/L.")
            check_body(body, _message("UploadModelRequest"))
            body = camel_case_fields(body)
            result = await run_in_threadpool(vertex.upload_model, parent, body, True)
            return JSONResponse(result)
        except ApiError as err:
            return JSONResponse(err.body(), status_code=err.http_code)

    async def admin_healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "recovering": vertex.deployments.recovering})

    @asynccontextmanager
    async def lifespan(app):
        timeout = httpx.Timeout(600.0, connect=5.0)
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            app.state.http = client
            yield

    ep = r"/v1/projects/{project}/locations/{location}/endpoints/{endpoint}"
    app = Starlette(
        routes=[
            Route(ep + ":predict", predict, methods=["POST"]),
            Route(ep + ":rawPredict", raw_predict, methods=["POST"]),
            Route(ep + ":streamRawPredict", stream_raw_predict, methods=["POST"]),
            Route("/v1beta1" + ep[3:] + "/chat/completions", chat_completions, methods=["POST"]),
            Route("/deploytest/v1/faults", admin_faults, methods=["GET", "PUT"]),
            Route("/deploytest/v1/processes", admin_processes, methods=["GET"]),
            Route("/deploytest/v1/healthz", admin_healthz, methods=["GET"]),
            Route("/deploytest/v1/models:seed", admin_seed_model, methods=["POST"]),
            Route("/deploytest/v1/client-env", admin_client_env, methods=["GET"]),
            Route("/deploytest/v1/pipeline-logs/{job_id}", admin_pipeline_log, methods=["GET"]),
            # The SDK's REST operations client polls `/ui/{name=.../operations/*}` (the first
            # of its http rules); Vertex AI serves both prefixes.
            Route("/v1/{path:path}", dispatch, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]),
            Route("/ui/{path:path}", dispatch, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]),
        ],
        lifespan=lifespan,
        # Outermost: nothing a web page could send reaches a route (see emulator/security.py).
        middleware=[Middleware(RequestGuard)],
    )

    def serves(method: str, path: str) -> bool:
        """Whether a Vertex AI route answers `method path` (the gRPC bridge asks, so that
        an RPC without one is UNIMPLEMENTED there rather than this app's NOT_FOUND)."""
        from starlette.routing import Match

        scope = {"type": "http", "method": method, "path": path}
        for candidate in app.router.routes:
            if candidate.matches(scope)[0] is not Match.FULL:
                continue
            if getattr(candidate, "endpoint", None) is not dispatch:
                return True
            rest = path.split("/", 2)[2]
            return any(m == method and p.match(rest) for m, p, _, _ in routes)
        return False

    app.state.serves = serves
    return app
