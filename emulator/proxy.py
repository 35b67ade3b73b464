"""The HTTPS proxy through which Google's clients reach the emulator unmodified.

Clients find it through `HTTPS_PROXY` (requests, and so google-auth's AuthorizedSession,
google-cloud-storage, kfp's RegistryClient and GCPC's launchers, honour it). For a
`CONNECT host:443` to an emulated Google host, the proxy answers 200, terminates TLS with
a certificate from the emulator's CA (trusted through `REQUESTS_CA_BUNDLE`), and pipes the
plaintext HTTP to the emulator's front (emulator/front.py), which serves it by `Host`.
Every other request, a CONNECT to any other host or a plain `GET http://...`, gets a 502
with a one-line reason, and the proxy never opens a connection anywhere but to the front on
127.0.0.1: nothing leaves the machine.

A tunnelled host (`tunnels`: Cloud Resource Manager's gRPC, emulator/resource_manager.py)
is not terminated here: its bytes go as they are to a loopback port whose server holds its
own certificate from the same CA (gRPC needs HTTP/2, which the front does not speak).

Vertex AI's hosts speak both: for them (`grpc`: a host test and a port) the TLS context
offers ALPN `http/1.1` first and `h2` second. OpenSSL takes the server's first protocol
that the client offers, so requests (HTTP/1.1), an h2-capable client that offers both, and
a client without ALPN get the front; only a client that offers `h2` and not `http/1.1`
(gRPC offers `h2` and `grpc-exp`) gets its plaintext piped to the gRPC server on loopback
(emulator/grpc_bridge.py), which answers every call through the front. No other host is
offered `h2`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Callable

log = logging.getLogger("emulator.proxy")

# The hosts the emulator answers; anything else is refused at CONNECT.
INTERCEPTED_HOSTS = (
    re.compile(r"^[a-z0-9-]+-aiplatform\.googleapis\.com$"),
    re.compile(r"^oauth2\.googleapis\.com$"),
    re.compile(r"^storage\.googleapis\.com$"),
    re.compile(r"^artifactregistry\.googleapis\.com$"),
    re.compile(r"^pubsub\.googleapis\.com$"),
    re.compile(r"^[a-z0-9-]+-kfp\.pkg\.dev$"),
)
_HEAD_LIMIT = 16 * 1024
_HEAD_TIMEOUT_S = 30.0


def is_intercepted(host: str) -> bool:
    """True for a host the emulator answers (case-insensitive, no port)."""
    host = host.lower().rstrip(".")
    return any(p.match(host) for p in INTERCEPTED_HOSTS)


def _refusal(status: str, reason: str) -> bytes:
    body = f"deploytest emulator proxy: {reason}\n".encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass


class InterceptingProxy:
    """CONNECT proxy on 127.0.0.1 that terminates TLS for the emulated Google hosts."""

    def __init__(
        self,
        tls: ssl.SSLContext,
        front_port: int,
        host: str = "127.0.0.1",
        tunnels: dict[str, int] | None = None,
        grpc: tuple[Callable[[str], bool], ssl.SSLContext, int] | None = None,
    ):
        self.tls = tls
        self.grpc = grpc  # (is a gRPC host, its TLS context with h2, the gRPC server's port)
        self.front_port = front_port
        self.tunnels = {h.lower(): p for h, p in (tunnels or {}).items()}
        self.host = host
        self.port: int | None = None
        self._server: asyncio.base_events.Server | None = None

    async def start(self, port: int = 0, sock=None) -> int:
        """Listen on `sock`, or on `port` (0: a free one); return the port."""
        if sock is not None:
            self._server = await asyncio.start_server(self._handle, sock=sock, limit=_HEAD_LIMIT)
        else:
            self._server = await asyncio.start_server(
                self._handle, self.host, port, limit=_HEAD_LIMIT
            )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and close open tunnels."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                self._server.close_clients()  # Python 3.13+
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            await self._serve(reader, writer)
        except (TimeoutError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass
        except (ConnectionError, ssl.SSLError) as exc:
            log.debug("proxy connection ended: %r", exc)
        except Exception:
            log.exception("proxy error")
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        target = rest.rsplit(" ", 1)[0]
        if method != "CONNECT":
            log.warning("proxy refused %s %s", method, target[:200])
            writer.write(
                _refusal(
                    "502 Bad Gateway",
                    f"refused {method} {target[:200]}: only HTTPS to the emulated Google hosts "
                    "is served, and nothing is forwarded to the internet.",
                )
            )
            await writer.drain()
            return
        host, _, port = target.rpartition(":")
        tunnel = self.tunnels.get(host.lower().rstrip(".")) if port == "443" else None
        if tunnel is None and (port != "443" or not is_intercepted(host)):
            log.warning("proxy refused CONNECT %s", target[:200])
            writer.write(
                _refusal(
                    "502 Bad Gateway",
                    f"refused CONNECT {target[:200]}: not a Google host the emulator serves "
                    "(aiplatform, oauth2, storage, artifactregistry, *-kfp.pkg.dev); nothing "
                    "is forwarded to the internet.",
                )
            )
            await writer.drain()
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        up_port = self.front_port if tunnel is None else tunnel
        if tunnel is None:
            grpc_host = self.grpc is not None and self.grpc[0](host)
            tls = self.grpc[1] if grpc_host else self.tls
            await writer.start_tls(tls, ssl_handshake_timeout=_HEAD_TIMEOUT_S)
            ssl_object = writer.get_extra_info("ssl_object")
            if grpc_host and ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                up_port = self.grpc[2]
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", up_port)
        # When either side closes (the front ends an idle keep-alive connection), close
        # the other: a client must not send its next request into a dead tunnel.
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
            with contextlib.suppress(Exception):
                up_writer.close()
