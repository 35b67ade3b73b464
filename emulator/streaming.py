"""`:streamRawPredict`: the request body goes to the deployed model's predict route as is, and
the model's answer comes back as it is produced, chunk by chunk, never buffered.

Vertex AI documents `endpoints.streamRawPredict` as taking an `HttpBody` and returning a
stream of `HttpBody` (REST v1 reference); Model Garden's vLLM containers answer it with the
server-sent events of `"stream": true`. How Vertex AI frames or flushes the relayed bytes is
not documented: this emulator forwards the container's bytes and content type unchanged, with
the same `X-Vertex-AI-*` headers as `:rawPredict` (an assumption, not a documented contract).
The SDK's `Endpoint.stream_raw_predict` docstring says that for a custom model it is "only
supported for dedicated endpoint" (the endpoint's own DNS name); the emulator serves it on
the shared path for every endpoint, which Vertex AI may refuse for a non-dedicated one.

`v1beta1/.../endpoints/E/chat/completions` (documented for Model Garden's vLLM and TGI
containers: an OpenAI chat body, `model: ""`) is relayed the same way, to the container's
`/v1/chat/completions`, the route vLLM's and TGI's OpenAI servers serve. Which route of the
container Vertex AI forwards it to is not documented: that is this emulator's choice.
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from emulator.errors import ApiError, status_for_http
from emulator.faults import FaultState
from emulator.service import Vertex

CHAT_ROUTE = "/v1/chat/completions"


async def stream_raw_predict(
    request: Request, vertex: Vertex, faults: FaultState, route: str | None = None
) -> Response:
    """Forward one `:streamRawPredict` call (or, with `route`, a chat completions call to
    that route); errors before the stream starts are Status JSON."""
    p = request.path_params
    name = f"projects/{p['project']}/locations/{p['location']}/endpoints/{p['endpoint']}"
    try:
        body = await request.body()
        row, model = await run_in_threadpool(vertex.predict_target, name)
        fault = faults.get()
        if fault.predict_latency_ms:
            await asyncio.sleep(fault.predict_latency_ms / 1000)
        code = faults.predict_error()
        if code is not None:
            raise ApiError(status_for_http(code), f"Injected predict fault (HTTP {code}).", code)
        proc = vertex.deployments.process_for(name, row.id)
        if proc is None:
            raise ApiError("UNAVAILABLE", f"DeployedModel {row.id} has no running server.")
        route = route or model.get("containerSpec", {}).get("predictRoute") or "/predict"
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        client: httpx.AsyncClient = request.app.state.http
        upstream = client.build_request(
            "POST", f"http://127.0.0.1:{proc.port}{route}", content=body, headers=headers
        )
        try:
            resp = await client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            raise ApiError(
                "UNAVAILABLE", f"Model server of DeployedModel {row.id} unreachable: {exc!r}"
            ) from None
    except ApiError as err:
        return JSONResponse(err.body(), status_code=err.http_code)
    ids = {
        "X-Vertex-AI-Deployed-Model-Id": row.id,
        "X-Vertex-AI-Model": row.data["model"],
        "X-Vertex-AI-Model-Display-Name": model.get("displayName", ""),
        "X-Vertex-AI-Model-Version-Id": row.data.get("modelVersionId", "1"),
        "Cache-Control": "no-cache",
    }

    async def relay():
        try:
            async for chunk in resp.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # the model server went away mid-stream: the client sees the stream end

    return StreamingResponse(
        relay(),
        resp.status_code,
        headers=ids,
        media_type=resp.headers.get("content-type", "application/json"),
        background=BackgroundTask(resp.aclose),
    )
