"""httpbounds.discard_body: drains what is left of a body, within its bounds."""

from __future__ import annotations

import asyncio

from httpbounds import discard_body, worth_draining


def _receiver(chunks: list[bytes], delay_s: float = 0.0):
    """An ASGI receive that yields `chunks` (the last one ends the body), then hangs."""
    queue = list(chunks)
    taken = []

    async def receive():
        if not queue:
            await asyncio.sleep(3600)
        await asyncio.sleep(delay_s)
        chunk = queue.pop(0)
        taken.append(chunk)
        return {"type": "http.request", "body": chunk, "more_body": bool(queue)}

    return receive, taken


def test_drains_a_body_to_its_end():
    receive, taken = _receiver([b"a" * 10, b"b" * 10, b"c"])
    assert asyncio.run(discard_body(receive, max_bytes=100, max_seconds=5)) is True
    assert len(taken) == 3


def test_stops_past_the_byte_bound():
    receive, taken = _receiver([b"a" * 10] * 10)
    assert asyncio.run(discard_body(receive, max_bytes=25, max_seconds=5)) is False
    assert len(taken) == 3  # 30 bytes read: past 25, no more


def test_stops_at_the_deadline_when_the_client_stalls():
    receive, taken = _receiver([b"a", b"b"])  # "b" would end the body ...
    slow, _ = _receiver([b"a", b"b"], delay_s=3600)  # ... but never arrives

    async def first_then_stall():
        if not taken:
            return await receive()
        return await slow()

    async def run() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await discard_body(first_then_stall, max_bytes=100, max_seconds=0.2)
        return result, loop.time() - start

    result, waited = asyncio.run(run())
    assert result is False
    assert taken == [b"a"]
    assert 0.2 <= waited < 5


def test_a_disconnect_ends_the_drain():
    async def gone():
        return {"type": "http.disconnect"}

    assert asyncio.run(discard_body(gone, max_bytes=100, max_seconds=5)) is False


def test_which_refusals_are_worth_draining():
    assert worth_draining({"content-length": "11000000"})
    assert worth_draining({"transfer-encoding": "chunked"})
    assert not worth_draining({"content-length": "11000000", "expect": "100-continue"})
    assert not worth_draining({"content-length": str(200 * 1024 * 1024)})
    assert not worth_draining({"content-length": "nonsense"})
