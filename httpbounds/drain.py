"""Refusing a request body the client is still sending, so that the client reads the refusal.

A server that answers an oversized body early and closes the socket while the client is
still uploading makes the kernel answer the rest of the upload with a TCP reset, and the
reset throws away the answer the client had not read yet: the client sees "connection
reset" instead of the error (issue 17). Most clients (httpx, requests, the Google SDKs)
only read the answer once they have sent the whole body.

uvicorn closes the transport as soon as the response is complete and hands the ASGI app
no more of the body after that, so the lingering close nginx does (answer, then read and
drop what still arrives) cannot be done from ASGI. We do the other documented remedy:
read and drop the rest of the body first, bounded in bytes and in time, then answer.
What is read is dropped chunk by chunk (uvicorn's flow control keeps each chunk small),
so memory stays bounded whatever the client sends. Past either bound the refusal is sent
anyway, and such a client may see a reset, as it would from nginx past its
`lingering_time`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

# Drain at most this much of a refused body before answering: a few times the largest
# limit we enforce (the emulator's 10 MiB), far below what would cost memory or time.
DRAIN_MAX_BYTES = 64 * 1024 * 1024
# ... and for at most this long, so a slow client cannot hold the connection open
# (nginx's `lingering_time` default is 30 s; a loopback upload of 64 MiB takes well under
# one second).
DRAIN_MAX_SECONDS = 5.0


def worth_draining(headers: Mapping[str, str], max_bytes: int = DRAIN_MAX_BYTES) -> bool:
    """Whether to drain a refused body before answering, from its (lowercased) headers.

    Not when the client waits for `100 Continue` (it has sent no body and sends none once
    it reads our answer) nor when it declared more than `max_bytes` (draining that would
    not end within the bounds anyway)."""
    if headers.get("expect", "").lower() == "100-continue":
        return False
    try:
        declared = int(headers.get("content-length", "0"))
    except ValueError:
        return False
    return declared <= max_bytes


async def discard_body(
    receive: Callable[[], Awaitable[dict]],
    max_bytes: int = DRAIN_MAX_BYTES,
    max_seconds: float = DRAIN_MAX_SECONDS,
) -> bool:
    """Read and drop the rest of a request body from the ASGI `receive`.

    Returns True once the client has sent all of it (the answer can then be read), False
    when a bound was reached or the client went away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    drained = 0
    while drained <= max_bytes:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            return False
        if message["type"] != "http.request":
            return False  # http.disconnect
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False
