"""Vertex AI over gRPC, the SDK's default transport: every call answered by the REST front.

`aiplatform.init(project=..., location=...)` without `api_transport="rest"` talks gRPC to
`{location}-aiplatform.googleapis.com:443`. The proxy (emulator/proxy.py) terminates TLS
for that host offering ALPN `http/1.1` and `h2`, in that order of preference, so an
HTTP/1.1 client (requests, the SDK's REST transport) keeps getting the front, and only a
client that offers `h2` alone (gRPC offers `h2` and `grpc-exp`) gets HTTP/2; that
connection's plaintext is piped to this server, a grpcio server on 127.0.0.1 without TLS
of its own. (The proxy cannot pick a backend before the handshake without parsing the
ClientHello itself, and TLS again on loopback would protect nothing the plain-HTTP front on
the same loopback does not already expose; every call still needs a token, below.)

This server holds no rule of Vertex AI. It is a generic transcoder, for the services the
emulator emulates (ModelService, EndpointService, PredictionService, PipelineService) and
the `google.longrunning.Operations` mixin:

* the method table (path, request and response types, unary or server-streaming) is read
  from the SDK's own gRPC transports (`google.cloud.aiplatform_v1.services.*.transports.grpc`,
  generated from the protos), the mixin's from `google/longrunning/operations.proto`;
* each request is transcoded to verb, path, query and JSON body by the SDK's own REST
  transport helpers (`transports/rest_base.py`, generated from the methods'
  `google.api.http` rules; `google.api_core.path_template.transcode`), i.e. exactly the
  HTTP request that `api_transport="rest"` sends for the same call;
* that request goes to the emulator's HTTPS front (plain HTTP on loopback, `Host`
  `{location}-aiplatform.googleapis.com`) with the caller's `authorization` metadata, so
  the token check, the strict body parse, the long-running-operation hold, the bounds and
  every answer are the REST side's, one implementation;
* the JSON answer is parsed into the response type with `json_format.Parse(...,
  ignore_unknown_fields=False)` (an answer that does not parse is INTERNAL, naming the
  field: it would be a conformance bug of the REST side); long-running methods answer
  `google.longrunning.Operation`, so the SDK's `operation.result()` polls `GetOperation`
  on the same channel;
* an error answer `{"error": {"code", "message", "status", "details"}}` becomes that
  `status` as a `grpc.StatusCode` with its message, and the details as
  `grpc-status-details-bin` (a `google.rpc.Status`), so `google.api_core` raises the class
  of the canonical code (over gRPC `FailedPrecondition` and `InvalidArgument` are told
  apart, where REST gives `BadRequest` for both, as against Vertex AI);
* `google.api.HttpBody` (RawPredict, StreamRawPredict): the request's `http_body` is the
  raw HTTP body with its content type, and the answer's bytes and content type are the
  response `HttpBody`, one per chunk as the front relays it for a server-streaming
  method, the convention of google/api/httpbody.proto. A non-2xx answer that is not a
  Status JSON (the container's own error on rawPredict) becomes the canonical code of its
  HTTP status with the body as message: what Vertex AI answers there over gRPC is not
  documented.

An RPC of these services that the REST side does not route (e.g. `ExportModel`,
`ServerStreamingPredict`) is UNIMPLEMENTED, and so is every other service (grpcio's own
answer for a method it does not know), client- and bidi-streaming methods included.
Response metadata (REST's `X-Vertex-AI-Deployed-Model-Id` headers) is not sent: what
Vertex AI sends over gRPC there is not documented.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
from concurrent import futures
from dataclasses import dataclass

log = logging.getLogger("emulator.grpc")

# The aiplatform v1 services the emulator emulates (module names of the SDK's services).
SERVICES = ("model_service", "endpoint_service", "prediction_service", "pipeline_service")
_MIXIN = "google.longrunning.Operations"
_HTTP_BODY = "google.api.HttpBody"
# Request bodies: the REST front bounds the JSON (10485760 bytes, emulator/security.py);
# the binary proto of the same request is smaller, so that bound decides, not this one.
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_MAX_WORKERS = 16
_MAX_CONCURRENT_RPCS = 64
_DEFAULT_TIMEOUT_S = 600.0
_LOCATION = re.compile(r"/locations/([a-z0-9-]{1,63})(?:/|:|$)")


def is_vertex_host(host: str) -> bool:
    """True for `{location}-aiplatform.googleapis.com`, the hosts served over gRPC too."""
    from emulator.front import service_of

    return service_of(host) == "aiplatform"


@dataclass(frozen=True)
class Method:
    """One RPC: its gRPC path, request/response protobuf classes, streaming, HTTP rule."""

    path: str
    request: type
    response: type
    streaming: bool
    rest: type  # the SDK's `_Base{Rpc}` helper class of rest_base.py
    proto_plus: type | None  # the request's proto-plus class, when the SDK has one


class _Recorder:
    """A stand-in for a grpc channel that records what a GAPIC transport asks it for."""

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, path, request_serializer=None, response_deserializer=None, **_):
        return (self.kind, path, request_serializer, response_deserializer)


class _RecordingChannel:
    unary_unary = _Recorder("unary_unary")
    unary_stream = _Recorder("unary_stream")
    stream_unary = _Recorder("stream_unary")
    stream_stream = _Recorder("stream_stream")


def _pb_class(cls):
    """The protobuf class behind a proto-plus class (or the class itself)."""
    import proto

    return cls.pb() if isinstance(cls, proto.message.MessageMeta) else cls


def _stubs(transport_cls):
    """(kind, path, request serializer, response deserializer) of every RPC the SDK's gRPC
    transport class defines (its stub properties, read against a recording channel)."""
    transport = transport_cls.__new__(transport_cls)
    transport._stubs = {}
    transport._logged_channel = _RecordingChannel()
    for _, prop in inspect.getmembers(transport_cls, lambda m: isinstance(m, property)):
        try:
            stub = prop.fget(transport)
        except Exception:
            continue  # not a stub (host, grpc_channel, operations_client, ...)
        if isinstance(stub, tuple) and len(stub) == 4:
            yield stub


def method_table() -> dict[str, Method]:
    """gRPC path -> Method, for SERVICES and the long-running operations mixin."""
    from google.longrunning import operations_pb2
    from google.protobuf import message_factory

    table: dict[str, Method] = {}
    mixin_rest = None
    for module in SERVICES:
        base = f"google.cloud.aiplatform_v1.services.{module}.transports"
        camel = "".join(part.title() for part in module.split("_"))
        grpc_cls = getattr(importlib.import_module(base + ".grpc"), f"{camel}GrpcTransport")
        rest_base = getattr(
            importlib.import_module(base + ".rest_base"), f"_Base{camel}RestTransport"
        )
        mixin_rest = mixin_rest or rest_base
        for kind, path, serializer, deserializer in _stubs(grpc_cls):
            service, _, rpc = path.strip("/").rpartition("/")
            if not service.startswith("google.cloud.aiplatform.v1."):
                continue  # mixins (operations, locations, IAM): below, or not served
            if kind not in ("unary_unary", "unary_stream"):
                continue  # client streaming: REST has no such method
            rest = getattr(rest_base, f"_Base{rpc}", None)
            request_cls = getattr(serializer, "__self__", None)
            response_cls = getattr(deserializer, "__self__", None)
            if rest is None or request_cls is None or response_cls is None:
                continue  # no HTTP rule: nothing on the REST side could answer it
            table[path] = Method(
                path,
                _pb_class(request_cls),
                _pb_class(response_cls),
                kind == "unary_stream",
                rest,
                request_cls if request_cls is not _pb_class(request_cls) else None,
            )
    service = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
    for rpc in service.methods:
        rest = getattr(mixin_rest, f"_Base{rpc.name}", None)
        if rest is None:
            continue
        table[f"/{_MIXIN}/{rpc.name}"] = Method(
            f"/{_MIXIN}/{rpc.name}",
            message_factory.GetMessageClass(rpc.input_type),
            message_factory.GetMessageClass(rpc.output_type),
            rpc.server_streaming,
            rest,
            None,
        )
    return table


def _http_body_field(request_cls) -> str | None:
    """The name of the request's `google.api.HttpBody` field, if it has one."""
    for field in request_cls.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.full_name == _HTTP_BODY:
            return field.name
    return None


def transcode(method: Method, request) -> tuple[str, str, list, bytes | None, str]:
    """(verb, path, query pairs, body, content type): the HTTP request the SDK's REST
    transport sends for `request`, by its own helpers."""
    from google.api_core import rest_helpers

    rest = method.rest
    body_field = _http_body_field(method.request)
    message = method.proto_plus.wrap(request) if method.proto_plus is not None else request
    transcoded = rest._get_transcoded_request(rest._get_http_options(), message)
    query = rest._get_query_params_json(transcoded)
    content_type = "application/json"
    body: bytes | None = None
    if body_field is not None:
        # google/api/httpbody.proto: the HttpBody field is the raw HTTP body.
        http_body = getattr(request, body_field)
        body, content_type = http_body.data, http_body.content_type or content_type
        for key in (body_field, _camel(body_field)):
            query.pop(key, None)
    elif "body" in transcoded and hasattr(rest, "_get_request_body_json"):
        body = rest._get_request_body_json(transcoded).encode()
    pairs = rest_helpers.flatten_query_params(query, strict=True)
    return transcoded["method"].upper(), transcoded["uri"], pairs, body, content_type


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def rest_error(status_code: int, content: bytes):
    """(grpc.StatusCode, message, google.rpc.Status or None) of a REST error answer."""
    import grpc
    from google.protobuf import json_format
    from google.rpc import error_details_pb2, status_pb2  # noqa: F401 (details' types)

    from emulator.errors import CODES, status_for_http

    try:
        error = json.loads(content)["error"]
        name = error["status"] if error.get("status") in CODES else status_for_http(status_code)
        message = str(error.get("message", ""))
        details = error.get("details") or []
    except (ValueError, KeyError, TypeError):
        name = status_for_http(status_code)
        message = content.decode("utf-8", "replace")[:4000]
        details = []
    code = getattr(grpc.StatusCode, name)
    status = None
    if details:
        try:
            status = json_format.ParseDict(
                {"code": CODES[name][0], "message": message, "details": details},
                status_pb2.Status(),
            )
        except json_format.ParseError:
            log.warning("error details that are no google.rpc.Status: %.300r", details)
    return code, message, status


class GrpcBridge:
    """The gRPC server (start/stop); `port` once started. `serves(verb, path)` tells
    whether the REST app routes a request (from emulator/app.py)."""

    def __init__(self, front_port: int, serves, host: str = "127.0.0.1"):
        self.front_url = f"http://127.0.0.1:{front_port}"
        self.serves = serves
        self.host = host
        self.port: int | None = None
        self._server = None
        self._http = None

    # -- one call --------------------------------------------------------------------------
    def _send(self, method: Method, request, context, stream: bool):
        import grpc

        verb, path, query, body, content_type = transcode(method, request)
        if not self.serves(verb, path):
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{method.path.rsplit('/', 1)[1]} is not emulated ({verb} {path}).",
            )
        match = _LOCATION.search(path)
        headers = {
            # The front serves Vertex AI by `Host`; every `{location}-aiplatform` host is
            # the same app, so the location of the path names it.
            "host": f"{match[1] if match else 'us-central1'}-aiplatform.googleapis.com",
            "content-type": content_type,
        }
        metadata = dict(context.invocation_metadata())
        if metadata.get("authorization"):
            headers["authorization"] = metadata["authorization"]
        remaining = context.time_remaining()
        # No deadline reads as None or as a huge number of seconds (grpcio's "infinite").
        timeout = min(_DEFAULT_TIMEOUT_S, remaining if remaining is not None else 1e9)
        timeout = max(timeout, 0.001)
        http_request = self._http.build_request(
            verb, self.front_url + path, params=query, content=body, headers=headers,
            timeout=timeout,
        )  # fmt: skip
        return self._http.send(http_request, stream=stream)

    def _abort_with(self, context, response, content: bytes):
        from grpc_status import rpc_status

        code, message, status = rest_error(response.status_code, content)
        if status is not None:
            context.abort_with_status(rpc_status.to_status(status))
        context.abort(code, message)

    def _parse(self, method: Method, content: bytes, content_type: str):
        import grpc
        from google.protobuf import json_format

        if method.response.DESCRIPTOR.full_name == _HTTP_BODY:
            return method.response(content_type=content_type, data=content)
        try:
            return json_format.Parse(
                content or b"{}", method.response(), ignore_unknown_fields=False
            )
        except json_format.ParseError as exc:
            log.error("%s: answer does not parse as %s: %s", method.path, method.response, exc)
            raise _Internal(
                grpc.StatusCode.INTERNAL, f"Emulator answer does not parse: {exc}"
            ) from None

    def unary(self, method: Method):
        import grpc
        import httpx

        def handler(request, context):
            try:
                response = self._send(method, request, context, stream=False)
            except httpx.TimeoutException:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline exceeded.")
            except httpx.HTTPError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"Emulator front: {exc!r}")
            if response.status_code >= 300:
                self._abort_with(context, response, response.content)
            try:
                return self._parse(
                    method, response.content, response.headers.get("content-type", "")
                )
            except _Internal as exc:
                context.abort(exc.code, exc.message)

        return handler

    def server_stream(self, method: Method):
        import grpc
        import httpx

        def handler(request, context):
            try:
                response = self._send(method, request, context, stream=True)
            except httpx.TimeoutException:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline exceeded.")
            except httpx.HTTPError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE, f"Emulator front: {exc!r}")
            context.add_callback(response.close)  # the client went away: stop reading
            try:
                if response.status_code >= 300:
                    self._abort_with(context, response, response.read())
                content_type = response.headers.get("content-type", "")
                if method.response.DESCRIPTOR.full_name != _HTTP_BODY:
                    # A JSON stream of messages: none of the emulated methods has one
                    # (REST's `?alt=sse` / JSON-array framing would go here).
                    yield self._parse(method, response.read(), content_type)
                    return
                for chunk in response.iter_raw():
                    if not context.is_active():
                        return
                    if chunk:
                        yield method.response(content_type=content_type, data=chunk)
            except httpx.HTTPError:
                return  # the front's relay ended: the stream ends, as over REST
            finally:
                response.close()

        return handler

    # -- server ----------------------------------------------------------------------------
    def start(self) -> int:
        """Listen on a free loopback port (plaintext HTTP/2: the proxy holds the TLS)."""
        import google.cloud.aiplatform_v1  # noqa: F401 (operation metadata types for Any)
        import grpc
        import httpx

        self._http = httpx.Client(
            trust_env=False,
            limits=httpx.Limits(max_connections=_MAX_CONCURRENT_RPCS),
            timeout=httpx.Timeout(_DEFAULT_TIMEOUT_S, connect=5.0),
        )
        by_service: dict[str, dict] = {}
        for path, method in method_table().items():
            service, _, rpc = path.strip("/").rpartition("/")
            factory = grpc.unary_stream_rpc_method_handler
            make = self.server_stream
            if not method.streaming:
                factory, make = grpc.unary_unary_rpc_method_handler, self.unary
            by_service.setdefault(service, {})[rpc] = factory(
                make(method),
                request_deserializer=method.request.FromString,
                response_serializer=method.response.SerializeToString,
            )
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=_MAX_WORKERS, thread_name_prefix="grpc"),
            maximum_concurrent_rpcs=_MAX_CONCURRENT_RPCS,
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(s, h) for s, h in by_service.items()]
        )
        self.port = self._server.add_insecure_port(f"{self.host}:0")
        self._server.start()
        count = sum(len(h) for h in by_service.values())
        log.info(
            "Vertex AI gRPC (%d methods) on %s:%s, behind the proxy", count, self.host, self.port
        )
        return self.port

    def stop(self) -> None:
        """Stop serving (in-flight calls get a second); idempotent."""
        if self._server is not None:
            self._server.stop(grace=1).wait(5)
            self._server = None
        if self._http is not None:
            self._http.close()
            self._http = None


class _Internal(Exception):
    def __init__(self, code, message: str):
        super().__init__(message)
        self.code, self.message = code, message
