"""A client that uploads a whole request body before it reads a byte of the answer, as
httpx, requests and the Google SDKs do, over a plain socket so nothing retries or hides
a connection reset (issue 17)."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit


def upload_then_read(
    url: str, size: int, chunked: bool = False, timeout_s: float = 30.0
) -> tuple[int, dict]:
    """POST `size` bytes of JSON-ish body to `url` in full, then read the answer.

    Returns the status code and the JSON answer. A server that closes while the body is
    still arriving makes this raise ConnectionResetError or BrokenPipeError."""
    parts = urlsplit(url)
    head = [
        f"POST {parts.path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}",
        "",
        "",
    ]
    piece = b"x" * 65536
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        sock.sendall("\r\n".join(head).encode())
        sent = 0
        while sent < size:
            chunk = piece[: size - sent]
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
            sent += len(chunk)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        answer = b""
        while data := sock.recv(65536):
            answer += data
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_bytes.split(b" ", 2)[1])
    return status, json.loads(body)
