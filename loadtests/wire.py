"""The locustfile's hot path on the wire: one POST on a keep-alive connection of the user's
FastHttpSession, its body read as it arrives.

Locust's `FastHttpSession.post` goes through geventhttpclient's `UserAgent` (a request object,
URL parsing, cookie jar, header merging, redirect and retry loops, a response wrapper, a
context manager) and `HTTPClient.request` (the request head built, its header names and values
checked against regular expressions, on every call). For a load generator that sends the same
few bodies millions of times that is most of its CPU. Here the request head is built once
per body length (by geventhttpclient's own `_build_request`: what it would send), and the
connection, the TLS and the CONNECT proxy tunnel are those of the user's own
`FastHttpSession`: its pool, timeouts, SSL context and proxy (`FastHttpUser`'s class settings).
The caller times the request and fires Locust's request event itself.

What `UserAgent` does and this does not: redirects (a predict endpoint answers, it does not
redirect: a 3xx is a failure, "HTTP 302"), cookies, retries (Locust's default is none; a POST
is not retried anyway) and compressed answers (we ask for `identity`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from geventhttpclient.client import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPSocketPoolResponse
from geventhttpclient.url import URL


class Wire:
    """POSTs to one URL over the connection pool of a Locust `FastHttpSession`."""

    def __init__(self, session, path: str, content_type: str = "application/json"):
        self.path = path
        self.url = session.base_url.rstrip("/") + path
        # The session's UserAgent made this client (and its pool) with the user's settings.
        self._client: HTTPClient = session.client.clientpool.get_client(URL(self.url))
        self._pool = self._client._connection_pool
        self._block_size = self._client.block_size
        self._headers_type = self._client.headers_type
        self._target = urlsplit(self.url).path or "/"
        self._headers = {"Content-Type": content_type, "Accept-Encoding": "identity"}
        if session.auth_header:  # user:password@ in the host URL
            self._headers["Authorization"] = session.auth_header
        self._authorization: str | None = None
        self._heads: dict[int, bytes] = {}

    def request_bytes(self, body: str, authorization: str | None = None) -> bytes:
        """The whole request: its head (built once per body length and kept) and `body`."""
        if authorization != self._authorization:  # a refreshed token: new heads
            self._authorization, self._heads = authorization, {}
        payload = body.encode()
        head = self._heads.get(len(payload))
        if head is None:  # only Content-Length tells bodies apart in the head
            headers = dict(self._headers)
            if authorization is not None:
                headers["Authorization"] = authorization
            text = self._client._build_request("POST", self._target, payload, headers)
            head = self._heads[len(payload)] = text.encode("latin-1")
        return head + payload

    def send(self, data: bytes) -> HTTPSocketPoolResponse:
        """Send one request and read the answer's head; raises what the network raises.

        The answer holds the connection until its body is read to the end (then it goes back
        to the pool) or `release()` closes it; call `release()` when done either way.
        """
        pool = self._pool
        sock = pool.get_socket()
        try:
            # One send() is the whole request almost always; sendall() would first ask the
            # kernel for the socket's buffer size (a system call) on every request.
            sent = sock.send(data)
            while sent < len(data):
                sent += sock.send(memoryview(data)[sent:])
        except BaseException:
            pool.release_socket(sock)
            raise
        # Reads the status line and headers; releases the socket itself if that fails.
        return HTTPSocketPoolResponse(
            sock,
            pool,
            block_size=self._block_size,
            method="POST",
            headers_type=self._headers_type,
        )


def body_reader(response: HTTPSocketPoolResponse):
    """A function that returns the next piece of `response`'s (decoded, de-chunked) body as
    soon as any of it is there: whatever one read of the socket brought, b"" at the end."""
    buffer = response._body_buffer  # the parser appends the body's bytes here

    def read() -> bytes:
        while not buffer:
            if response.message_complete:
                return b""
            sock = response._sock
            if sock is None:
                raise HTTPConnectionClosed("connection closed.")
            data = sock.recv(response.block_size)
            response.feed(data)
            if not data and not response.message_complete:
                raise HTTPConnectionClosed("connection closed before the end of the body")
        piece = bytes(buffer)
        del buffer[:]
        return piece

    return read
