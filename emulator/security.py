"""The emulator's front door: refuse what a web page could send, bound what anyone sends.

Deploying a model runs its `containerSpec.command` as the current user, so a request that
reaches `models:upload` + `endpoints` + `:deployModel` can run a command on this machine.
Only loopback callers can reach the emulator (it binds 127.0.0.1), but a web page the
developer visits can make the *browser* send requests to 127.0.0.1. This middleware
refuses every request a browser could send on a foreign page's behalf:

- a present `Origin` that is not the emulator's own (browsers send it on every
  cross-origin request and on every POST);
- `Sec-Fetch-Site` other than `same-origin` or `none` (browsers send it on every request);
- a `Host` that is not a loopback name or an intercepted Google host (DNS rebinding:
  a page whose domain resolves to 127.0.0.1 sends its own domain as `Host`);
- a mutating request (POST, PUT, PATCH) whose body is not declared JSON (a cross-site
  form or `fetch(..., {mode: "no-cors"})` can only send `text/plain`, form encodings and
  multipart without a CORS preflight, which the emulator never grants).

Programs (the SDK, GCPC's launchers, curl) send no `Origin` and declare JSON, so the
anonymous `api_endpoint="http://127.0.0.1:PORT"` path keeps working.

It also bounds request bodies before they are buffered: Google's API front end refuses
payloads over 10485760 bytes ("Request payload size exceeds the limit: 10485760 bytes.",
INVALID_ARGUMENT, as seen in public reports against several googleapis services), and
Vertex AI online prediction documents a 1.5 MB request limit.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emulator.errors import ApiError
from httpbounds import DRAIN_MAX_BYTES, discard_body, is_json, worth_draining

# Google's API front end (observed, not documented for Vertex AI specifically).
MAX_API_BODY_BYTES = 10_485_760
# Vertex AI online prediction: "Each prediction request is limited to 1.5 MB".
MAX_PREDICT_BODY_BYTES = 1_500_000

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Hosts the HTTPS front (issue 7) terminates and forwards here.
_GOOGLE_HOST_SUFFIXES = (".googleapis.com", ".pkg.dev")
_MUTATING = {"POST", "PUT", "PATCH"}
_ALLOWED_FETCH_SITES = {"same-origin", "none"}
_PREDICT_SUFFIXES = (":predict", ":rawPredict", ":streamRawPredict", "/chat/completions")


def _host_name(host: str) -> str:
    """`127.0.0.1:8080` -> `127.0.0.1`; `[::1]:80` -> `[::1]`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def allowed_host(host: str) -> bool:
    """True for loopback names and the Google hosts the emulator stands in for."""
    name = _host_name(host)
    return name in _LOOPBACK_HOSTS or name.endswith(_GOOGLE_HOST_SUFFIXES)


def refusal(headers: dict[str, str], method: str, own_origins: set[str]) -> ApiError | None:
    """Why a request with these (lowercased) headers is refused, or None to let it in."""
    origin = headers.get("origin")
    if origin is not None and origin.rstrip("/").lower() not in own_origins:
        return ApiError(
            "PERMISSION_DENIED",
            f"Cross-origin request refused (Origin: {origin[:200]}): the emulator only "
            "serves programs on this machine, never web pages.",
        )
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _ALLOWED_FETCH_SITES:
        return ApiError(
            "PERMISSION_DENIED",
            f"Request refused (Sec-Fetch-Site: {site[:50]}): the emulator never serves "
            "requests that a browser sends on another site's behalf.",
        )
    host = headers.get("host", "")
    if host and not allowed_host(host):
        return ApiError(
            "PERMISSION_DENIED",
            f"Request refused (Host: {host[:200]}): only loopback names are served.",
        )
    if method in _MUTATING:
        content_type = headers.get("content-type", "")
        empty = headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
        if not is_json(content_type) and not (empty and not content_type):
            return ApiError(
                "INVALID_ARGUMENT",
                f"Unsupported Content-Type {content_type[:100]!r}: send application/json.",
                http_code=415,
            )
    return None


def body_limit(path: str) -> int:
    """The request-body limit for a path."""
    return MAX_PREDICT_BODY_BYTES if path.endswith(_PREDICT_SUFFIXES) else MAX_API_BODY_BYTES


def too_large(limit: int) -> ApiError:
    """Google's answer to an oversized payload."""
    return ApiError("INVALID_ARGUMENT", f"Request payload size exceeds the limit: {limit} bytes.")


async def _answer(send: Send, err: ApiError) -> None:
    body = json.dumps(err.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.http_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: the cross-site refusals and body limits described above."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        server = scope.get("server") or ("127.0.0.1", 0)
        own = {f"http://{name}:{server[1]}" for name in ("127.0.0.1", "localhost", "[::1]")}
        err = refusal(headers, scope["method"], own)
        if err is not None:
            await _answer(send, err)
            return
        limit = body_limit(scope["path"])
        try:
            declared = int(headers.get("content-length", "0"))
        except ValueError:
            declared = 0
        if declared > limit:
            # Drain first (bounded), so that a client still uploading reads the 400
            # instead of a connection reset (httpbounds/drain.py).
            if worth_draining(headers):
                await discard_body(receive)
            await _answer(send, too_large(limit))
            return
        # Read the whole body here, bounded, before the app sees it: an oversized body is
        # refused after at most `limit` bytes were buffered, whatever the app does.
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            more = message.get("more_body", False)
            if received > limit:
                if more and worth_draining(headers):
                    await discard_body(receive, DRAIN_MAX_BYTES - received)
                await _answer(send, too_large(limit))
                return
            chunks.append(chunk)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
