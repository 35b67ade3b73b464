"""Token streaming: `"stream": true` answers server-sent events in the OpenAI completions
chunk shape that vLLM serves (and Vertex AI relays through `:streamRawPredict`):

    data: {"id": "cmpl-…", "object": "text_completion", "created": 1764000000, "model": "…",
           "choices": [{"index": 0, "text": " the", "logprobs": null, "finish_reason": null}]}
    …
    data: {… "choices": [{"index": 0, "text": "", "finish_reason": "length"}],
           "usage": {"prompt_tokens": null, "completion_tokens": 16, "total_tokens": null}}
    data: [DONE]

One chunk per generated token (its text may be empty while a multi-byte character is
incomplete), so a client can count tokens by chunks; the last token's chunk carries the
`finish_reason` ("stop" at EOS, "length" at the token limit). After the last row a usage chunk
(empty `choices`, as OpenAI's `stream_options.include_usage`) gives the completion tokens.
A failure after the stream started cannot change the HTTP status any more: it is sent as
`data: {"error": {...}}` and the stream ends without `[DONE]`.

Dynamic batching stays: streaming jobs go through the same Batcher; `RowStreamer` receives
one token per row per decoding step from `model.generate` and hands each to its row's sink.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from serving.generation import RequestError

MEDIA_TYPE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
_END = object()


class RequestStreamError(RequestError):
    """`stream` has a bad value; answered with HTTP 400."""


def pop_stream_flag(body: Any) -> bool:
    """Remove and return the request's top-level `"stream"` flag (default false).

    Non-dict bodies are left alone: the predict-body validation reports those.
    """
    if not isinstance(body, dict) or "stream" not in body:
        return False
    stream = body.pop("stream")
    if not isinstance(stream, bool):
        raise RequestStreamError(f"stream must be true or false, got {stream!r}")
    return stream


class RowStreamer:
    """A `transformers` streamer for a whole batch: `put` gets one token per row per step.

    `generate` calls `put` first with the prompt ids (2-D), then with each step's new tokens
    (1-D, one per row); rows that finished keep receiving padding, which is ignored. Decoding
    is incremental: a row's text so far is decoded and the new suffix sent, holding back text
    that ends in an incomplete character (U+FFFD).
    """

    def __init__(self, tokenizer, sinks: list, eos_token_id: int | None, max_new_tokens: int):
        self._tokenizer = tokenizer
        self._sinks = sinks
        self._eos = eos_token_id
        self._max_new = max_new_tokens
        self._tokens: list[list[int]] = [[] for _ in sinks]
        self._sent = [0] * len(sinks)
        self._done = [sink is None for sink in sinks]
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            if getattr(value, "dim", lambda: 1)() > 1:
                return
        for row, token in enumerate(value.reshape(-1).tolist()):
            if row < len(self._sinks) and not self._done[row]:
                self._step(row, int(token))
        # Let the event loop send this step's chunks now: otherwise it waits for the GIL
        # (switch interval 5 ms) and a small model's tokens leave in bursts.
        time.sleep(0)

    def _step(self, row: int, token: int) -> None:
        tokens = self._tokens[row]
        tokens.append(token)
        finish = None
        if token == self._eos:
            finish = "stop"
        elif len(tokens) >= self._max_new:
            finish = "length"
        text = self._tokenizer.decode(tokens, skip_special_tokens=True)
        if finish is None and text.endswith("\ufffd"):
            delta = ""
        else:
            delta = text[self._sent[row] :]
            self._sent[row] = len(text)
        if finish is not None:
            self._done[row] = True
        self._sinks[row](delta, finish)

    def end(self) -> None:
        """Rows cut short (e.g. by the context length) get their end from the result."""


def _chunk(cid: str, created: int, model: str, choices: list, **extra: Any) -> bytes:
    body = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _error_event(message: str) -> bytes:
    body = {"error": {"code": 500, "message": message}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class TokenStream:
    """The SSE body of one streaming request: sinks for its rows, then `events()`.

    Sinks run on the batcher's worker thread; they hand tokens to the event loop with
    `call_soon_threadsafe`, so the body is written as the batch generates.
    """

    def __init__(self, rows: int, model: str, loop: asyncio.AbstractEventLoop | None = None):
        self.rows = rows
        self.model = model.rstrip("/").rsplit("/", 1)[-1]  # the served name, not a path
        self._loop = loop or asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._finished = [False] * rows
        self._tokens = [0] * rows
        self._futures: list = []

    def sink(self, row: int) -> Callable[[str, str | None], None]:
        """The callable that receives row `row`'s tokens from the worker thread."""

        def put(text: str, finish: str | None) -> None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (row, text, finish))

        return put

    def watch(self, futures: list) -> None:
        """End the stream when every group's future is done (result or error)."""
        self._futures = list(futures)
        pending = {"n": len(futures)}
        errors: list[BaseException] = []

        def done(future) -> None:
            if future.cancelled():
                errors.append(RuntimeError("generation was cancelled"))
            elif future.exception() is not None:
                errors.append(future.exception())
            pending["n"] -= 1
            if pending["n"] == 0:
                item = (_END, errors[0] if errors else None, None)
                self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

        for future in futures:
            future.add_done_callback(done)

    async def events(self) -> AsyncIterator[bytes]:
        """SSE chunks: one per token, the usage chunk, then `[DONE]` (or an error event)."""
        cid = "cmpl-" + secrets.token_hex(12)
        created = int(time.time())
        try:
            while True:
                row, text, finish = await self._queue.get()
                if row is _END:
                    error = text
                    break
                self._tokens[row] += 1
                self._finished[row] = self._finished[row] or finish is not None
                choice = {"index": row, "text": text, "logprobs": None, "finish_reason": finish}
                yield _chunk(cid, created, self.model, [choice])
        except BaseException:  # the client went away: a queued job is not worth computing
            for future in self._futures:
                future.cancel()
            raise
        if error is not None:
            yield _error_event(f"generation failed: {type(error).__name__}: {error}")
            return
        for row in range(self.rows):
            if not self._finished[row]:  # cut short before its limit: say so, once
                choice = {"index": row, "text": "", "logprobs": None, "finish_reason": "length"}
                yield _chunk(cid, created, self.model, [choice])
        total = sum(self._tokens)
        usage = {"prompt_tokens": None, "completion_tokens": total, "total_tokens": None}
        yield _chunk(cid, created, self.model, [], usage=usage)
        yield DONE
