"""The Starlette app: health, predict and stats routes over a `ServerState`.

Every error answer has the shape `{"error": {"code": N, "message": "..."}}`, so a client
(Vertex AI, Locust, the emulator) never has to parse an HTML or plain-text error page.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from serving.batching import Batcher
from serving.config import STATS_ROUTE, Settings
from serving.generation import GenParams, RequestError, parse_predict_body
from serving.http_limits import read_json_body
from serving.streaming import MEDIA_TYPE, TokenStream, pop_stream_flag


@dataclass
class ServerState:
    """What the routes see of the model: loading → ready, or loading → failed."""

    status: str = "loading"
    error: str | None = None
    batcher: Batcher | None = None
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ready(self, batcher: Batcher) -> None:
        """The model is loaded and the batcher runs: health turns 200."""
        with self.lock:
            self.batcher, self.status = batcher, "ready"

    def failed(self, error: str) -> None:
        """Loading failed: health keeps answering 503 with `error`."""
        with self.lock:
            self.error, self.status = error, "failed"


def error_response(code: int, message: str) -> JSONResponse:
    """The one error shape every route answers with."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=code)


def create_app(settings: Settings, state: ServerState) -> Starlette:
    """Build the app for `settings`; `state` is filled in by the loader thread."""

    async def health(request: Request) -> JSONResponse:
        if state.status == "ready":
            return JSONResponse({"status": "ready"})
        body: dict[str, Any] = {"status": state.status}
        if state.error:
            body["error"] = state.error
        return JSONResponse(body, status_code=503)

    async def predict(request: Request) -> JSONResponse:
        batcher = state.batcher
        if state.status != "ready" or batcher is None:
            return error_response(503, f"model is not ready ({state.status})")
        arrival = batcher.announce()
        try:
            try:
                body = await read_json_body(request, settings.read_timeout_s)
                stream = pop_stream_flag(body)
                items = parse_predict_body(body, settings.max_new_tokens_cap)
            except (HTTPException, RequestError) as exc:
                with state.lock:
                    state.rejected += 1
                if isinstance(exc, HTTPException):
                    return error_response(exc.status_code, exc.detail)
                return error_response(400, str(exc))
            # Instances with the same settings travel together; others form their own job.
            groups: dict[GenParams, list[int]] = {}
            for index, (_, params) in enumerate(items):
                groups.setdefault(params, []).append(index)
            tokens = TokenStream(len(items), settings.model_uri) if stream else None
            try:
                futures = batcher.submit(
                    [([items[i][0] for i in idx], params) for params, idx in groups.items()],
                    arrival,
                    [[tokens.sink(i) for i in idx] for idx in groups.values()] if tokens else None,
                )
            except RuntimeError as exc:  # the batcher stopped: the server is going away
                return error_response(503, str(exc))
        finally:
            batcher.withdraw(arrival)  # no-op once submitted
        if tokens is not None:  # serving/streaming.py: SSE, one chunk per token
            tokens.watch(futures)
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return StreamingResponse(tokens.events(), media_type=MEDIA_TYPE, headers=headers)
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        predictions: list[dict[str, Any]] = [{}] * len(items)
        for indices, rows in zip(groups.values(), results, strict=True):
            for index, row in zip(indices, rows, strict=True):
                predictions[index] = {
                    "generated_text": row.generated_text,
                    "output_tokens": row.output_tokens,
                }
        return JSONResponse({"predictions": predictions})

    async def stats(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"status": state.status, "rejected": state.rejected}
        if state.batcher is not None:
            body.update(state.batcher.stats())
        return JSONResponse(body)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, exc.detail)

    async def disconnected(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return error_response(400, "client disconnected")

    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    return Starlette(
        routes=[
            Route(settings.health_route, health, methods=["GET"]),
            Route(settings.predict_route, predict, methods=["POST"]),
            Route(STATS_ROUTE, stats, methods=["GET"]),
        ],
        exception_handlers={
            HTTPException: http_error,
            ClientDisconnect: disconnected,
            Exception: internal_error,
        },
    )
