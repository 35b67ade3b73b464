"""The emulator's HTTPS front: what the proxy (emulator/proxy.py) hands the decrypted
requests for the Google hosts to, served by `Host`:

| host | served by |
| --- | --- |
| `oauth2.googleapis.com` | the token endpoint (emulator/auth.py) |
| `{location}-aiplatform.googleapis.com` | the Vertex AI app (emulator/app.py), in-process |
| `storage.googleapis.com` | the Cloud Storage emulator (emulator/gcs.py) |
| `artifactregistry.googleapis.com`, `{location}-kfp.pkg.dev` | emulator/registry.py |
| `pubsub.googleapis.com` | topics.publish only (emulator/pubsub.py) |

Every host but the token endpoint wants `Authorization: Bearer <token>` with a token this
emulator issued; otherwise 401 in the service's own error shape, so the clients raise
their real exceptions. The plain-HTTP `api_endpoint` path (anonymous) does not pass here.

Long-running operations: GCPC's launchers sleep 20 s before each poll of an operation that
is not done. A POST through the front whose answer is a pending operation is held until the
operation is done, for at most `hold_s`, and answered with the operation as it then is: a
deploy that finishes within the hold costs no poll interval. (Vertex AI, too, may answer
with an operation that is already done; how long it holds a request is not documented.)
"""

from __future__ import annotations

import json
import logging
import re
import time
from urllib.parse import parse_qsl, unquote

import httpx
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from emulator.auth import TokenAuthority, storage_unauthenticated_body, unauthenticated_body
from emulator.proxy import is_intercepted

log = logging.getLogger("emulator.front")

_TOKEN_BODY_LIMIT = 64 * 1024
# Bodies are read whole before they go to the storage emulator (which buffers them too);
# Cloud Storage takes up to 5 TiB per object, the emulator a bounded slice of that.
STORAGE_BODY_LIMIT = 2 * 1024**3
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
_STORAGE_PATH = re.compile(
    r"^/(?:download/|upload/)?storage/v1/b/(?P<bucket>[^/]+)(?:/o(?:/(?P<object>[^/]+))?)?"
)
_NO_HOLD = (":predict", ":rawPredict", ":streamRawPredict", "/chat/completions", ":cancel", ":wait")


def service_of(host: str) -> str | None:
    """'oauth2' | 'aiplatform' | 'storage' | 'pubsub' | 'registry' for an intercepted host,
    else None."""
    host = host.split(":", 1)[0].lower().rstrip(".")
    if not is_intercepted(host):
        return None
    if host == "oauth2.googleapis.com":
        return "oauth2"
    if host == "storage.googleapis.com":
        return "storage"
    if host == "pubsub.googleapis.com":
        return "pubsub"
    if host.endswith("-aiplatform.googleapis.com"):
        return "aiplatform"
    return "registry"


class Front:
    """ASGI app of the HTTPS front (see the module docstring)."""

    def __init__(
        self,
        vertex_app,
        vertex,
        authority: TokenAuthority,
        storage_url: str,
        registry_app,
        hold_s: float = 30.0,
        pubsub=None,
    ):
        self.vertex_app = vertex_app
        self.vertex = vertex
        self.authority = authority
        self.storage_url = storage_url.rstrip("/")
        self.registry_app = registry_app
        self.hold_s = hold_s
        self.pubsub = pubsub
        self.http: httpx.AsyncClient | None = None
        self.stopping = False  # set on stop: a held request is answered at once

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        service = service_of(request.headers.get("host", ""))
        if service is None:
            body = {"error": {"code": 404, "message": "Unknown host.", "status": "NOT_FOUND"}}
            return await JSONResponse(body, 404)(scope, receive, send)
        if service == "oauth2":
            return await (await self._token(request))(scope, receive, send)
        if not self.authority.verify_header(request.headers.get("authorization")):
            shape = (
                storage_unauthenticated_body() if service == "storage" else unauthenticated_body()
            )
            headers = {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'}
            return await JSONResponse(shape, 401, headers=headers)(scope, receive, send)
        if service == "aiplatform":
            return await self._vertex(scope, receive, send)
        if service == "storage":
            return await (await self._storage(request))(scope, receive, send)
        if service == "pubsub" and self.pubsub is not None:
            return await (await self.pubsub(request))(scope, receive, send)
        return await self.registry_app(scope, receive, send)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                timeout = httpx.Timeout(600.0, connect=5.0)
                self.http = httpx.AsyncClient(timeout=timeout, trust_env=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.http is not None:
                    await self.http.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _token(self, request: Request) -> Response:
        if request.method != "POST" or request.url.path != "/token":
            body = {"error": "invalid_request", "error_description": "Not found"}
            return JSONResponse(body, 404)
        raw = await request.body()
        if len(raw) > _TOKEN_BODY_LIMIT:
            return JSONResponse({"error": "invalid_request"}, 413)
        form = dict(parse_qsl(raw.decode("utf-8", "replace")))
        status, body = self.authority.token_response(form)
        return JSONResponse(body, status, headers={"Cache-Control": "no-store"})

    async def _vertex(self, scope, receive, send):
        if scope["method"] != "POST" or scope["path"].endswith(_NO_HOLD) or self.hold_s <= 0:
            return await self.vertex_app(scope, receive, send)
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.vertex_app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            try:
                op = json.loads(body)
            except ValueError:
                op = None
            if (
                isinstance(op, dict)
                and "/operations/" in str(op.get("name"))
                and not op.get("done")
            ):
                op = await run_in_threadpool(self._hold, op)
                body = json.dumps(op).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": start.get("status", 500), "headers": headers}
        )
        await send({"type": "http.response.body", "body": body})

    def _hold(self, op: dict) -> dict:
        deadline = time.monotonic() + self.hold_s
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)
            try:
                latest = self.vertex.get_operation(op["name"])
            except Exception:
                return op
            if latest.get("done"):
                return latest
            op = latest
        return op

    async def _storage_not_found(self, path: str) -> dict:
        """Cloud Storage's 404 body for `path` (a missing bucket, else a missing object)."""
        match = _STORAGE_PATH.match(path)
        message = "Not Found"
        if match:
            bucket, name = match["bucket"], unquote(match["object"] or "")
            assert self.http is not None
            exists = await self.http.get(f"{self.storage_url}/storage/v1/b/{bucket}")
            if exists.status_code == 404:
                message = "The specified bucket does not exist."
            elif name:
                message = f"No such object: {unquote(bucket)}/{name}"
        error = {"message": message, "domain": "global", "reason": "notFound"}
        return {"error": {"code": 404, "message": message, "errors": [error]}}

    async def _storage(self, request: Request) -> Response:
        assert self.http is not None
        try:
            declared = int(request.headers.get("content-length") or 0)
        except ValueError:
            declared = -1
        if declared < 0 or declared > STORAGE_BODY_LIMIT:
            message = f"Request body over the emulator's limit of {STORAGE_BODY_LIMIT} bytes."
            return JSONResponse({"error": {"code": 413, "message": message}}, 413)
        url = self.storage_url + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        headers = [
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in _HOP_HEADERS and k.lower() != "authorization"
        ]
        # The storage emulator builds upload and media URLs from `Host`; they are made https
        # again below, so a client never gets a plain-http Google URL.
        headers.append(("host", "storage.googleapis.com"))
        try:
            resp = await self.http.request(
                request.method, url, headers=headers, content=await request.body()
            )
        except httpx.HTTPError as exc:
            body = {"error": {"code": 503, "message": f"Cloud Storage emulator: {exc!r}"}}
            return JSONResponse(body, 503)
        out = {
            k: v.replace("http://storage.googleapis.com", "https://storage.googleapis.com")
            for k, v in resp.headers.items()
            if k.lower() not in _HOP_HEADERS and k.lower() != "content-encoding"
        }
        content = resp.content
        if resp.status_code == 404 and not content:
            # gcp-storage-emulator answers a missing bucket or object with an empty 404;
            # Cloud Storage sends a JSON error that names what is missing.
            raw_path = request.scope.get("raw_path") or request.url.path.encode()
            body = await self._storage_not_found(raw_path.decode("latin-1"))
            return JSONResponse(body, 404)
        if "json" in resp.headers.get("content-type", ""):
            content = content.replace(
                b"http://storage.googleapis.com", b"https://storage.googleapis.com"
            )
        return Response(content, resp.status_code, headers=out)
