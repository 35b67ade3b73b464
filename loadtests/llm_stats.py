"""Per-request LLM serving metrics for the locustfile: reading a token stream, histograms that
merge across Locust processes, and the summary the load test writes at the end.

Plain Python (no Locust import), so it is unit-testable and cheap on the hot path.

Definitions (those of `vllm bench serve`, genai-perf and inference-perf):
    TTFT  time from sending the request to the first token chunk
    ITL   time between consecutive token chunks of one request
    TPOT  (E2E - TTFT) / (output tokens - 1), for requests with at least 2 tokens
    E2E   time from sending the request to the end of the answer
    normalized latency  E2E / output tokens
A request is *good* (counts towards goodput) when it succeeded and meets every per-request
target given: TTFT <= slo_ttft_ms, TPOT <= slo_tpot_ms (a 1-token answer has no TPOT and
meets a TPOT target, as in vLLM).
"""

from __future__ import annotations

import json
import json.scanner
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtests.apis import (
    APIS,
    SOURCE_ANSWER,
    SOURCE_CHUNKS,
    SOURCE_TOKENIZER,
    TOKEN_SOURCES,
    Api,
)

DEFAULT_API = APIS["deploytest"]
PERCENTILES = (50, 90, 95, 99)
_decoder = json.JSONDecoder()
_decode = _decoder.decode  # json.loads minus its per-call encoding sniffing
_scan = json.scanner.make_scanner(_decoder)  # the C scanner: one value at an index
METRICS = (
    "ttft_ms",
    "itl_ms",
    "tpot_ms",
    "e2e_ms",
    "normalized_ms",
    "output_tokens",
    "input_tokens",
)
# The metrics whose whole distribution the summary carries (the report draws them).
DISTRIBUTIONS = ("e2e_ms", "ttft_ms", "input_tokens", "output_tokens")
COUNTS = (
    "requests",
    "failures",
    "samples",
    "good",
    "scheduled",
    "sent",
    "delayed",
    "dropped",
    *(f"tokens_from_{source}" for source in TOKEN_SOURCES),
)


class StreamError(ValueError):
    """The answer broke the streaming contract; the message is the failure's reason."""


@dataclass
class Sample:
    """One successful request's measurements (milliseconds and tokens)."""

    e2e_ms: float
    output_tokens: int
    ttft_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    bytes: int = 0
    token_source: str = SOURCE_ANSWER  # loadtests/apis.py TOKEN_SOURCES
    input_tokens: int | None = None  # the prompt's tokens, when the tokenizer counted them
    text: str | None = None  # the answer's text, kept only when asked (chat sessions)

    @property
    def tpot_ms(self) -> float | None:
        """(E2E - TTFT) / (tokens - 1); None below 2 tokens (never a division by zero)."""
        if self.ttft_ms is None or self.output_tokens < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.output_tokens - 1)


def read_sse_stream(
    read: Callable[[], bytes],
    started: float,
    clock=time.perf_counter,
    api: Api | None = None,
    count_tokens: Callable[[str], int] | None = None,
    keep_text: bool = False,
) -> Sample:
    """Read a server-sent-events token stream (`data: {...}` lines) and time it.

    `read` returns the next piece of the body as it arrives (any size: part of a line, one
    event, several; b"" at the end); a line gets the time the piece that completes it arrived.
    `started` is the `clock()` value when the request was sent. `api` (loadtests/apis.py,
    default our own server's) says which chunks carry content and whether the stream must
    end with `data: [DONE]`; `count_tokens` (the model's tokenizer) counts the tokens of a
    chunk whose API does not promise one token a chunk.

    TTFT is the first chunk with content (a role-only or empty chunk is not a token). A
    chunk that brings k tokens after a gap of g ms adds k inter-token latencies of g/k
    (tokens that arrive together are spread evenly over the gap before them; the first
    chunk's extra tokens add none, their time is in TTFT). Without a tokenizer, a chunk of
    an API that does not promise one token a chunk counts as one token for ITL. Output
    tokens come from a `usage` chunk when one comes, else from those counts.

    `keep_text`: the answer's text goes into the sample (a chat session sends it back).

    Returns a `Sample`; raises StreamError for an error event, a chunk that does not parse or
    has the wrong shape, an end without `[DONE]` where the API's servers send it, or zero
    tokens. Network errors (a cut stream) propagate to the caller.
    """
    api = api or DEFAULT_API
    per_chunk = None if api.one_token_per_chunk else count_tokens
    chunk_of = api.chunk
    ttft = choice_at = None
    last = now = 0.0
    itl: list[float] = []
    tokens = 0
    usage_tokens = None
    size = 0
    tail = b""  # a line not yet complete
    texts: list[str] | None = [] if keep_text else None
    while True:
        piece = read()
        if piece:
            now = clock()
            size += len(piece)
            if tail:
                piece = tail + piece
            cut = piece.rfind(b"\n") + 1
            if cut < len(piece):
                piece, tail = piece[:cut], piece[cut:]
                if not piece:
                    continue
            else:
                tail = b""
        elif tail:  # the body ended in a line without its newline
            piece, tail = tail, b""
        else:
            break
        for line in piece.splitlines():
            if not line.startswith(b"data:"):
                continue  # blank separators, SSE comments, event/id fields
            if line.endswith(b"[DONE]") and line[5:].strip() == b"[DONE]":
                if not tokens:
                    ttft = _empty_answer_ttft(api, usage_tokens, choice_at, started)
                elapsed = now - started
                sample = _finished(api, per_chunk, tokens, usage_tokens, elapsed, ttft, itl, size)
                return _with_text(sample, texts)
            event = _parse_data(line)
            if not isinstance(event, dict):
                raise StreamError("a chunk is not a JSON object")
            if "error" in event:
                raise StreamError("error event in the stream")
            try:
                text, usage = chunk_of(event)
            except ValueError as exc:  # AnswerError: the chunk's shape is wrong
                raise StreamError(str(exc)) from None
            if usage is not None:
                usage_tokens = usage
            if text is None:
                if not tokens and event.get("choices"):
                    choice_at = now  # an answer may be empty: see _empty_answer_ttft
                continue
            k = max(per_chunk(text), 1) if per_chunk is not None else 1
            tokens += k
            if texts is not None:
                texts.append(text)
            if ttft is None:
                ttft = (now - started) * 1000
            else:
                gap = (now - last) * 1000
                if k == 1:
                    itl.append(gap)
                else:
                    itl.extend([gap / k] * k)
            last = now
    if tokens == 0:
        ttft = _empty_answer_ttft(api, usage_tokens, choice_at, started)
        if ttft is None:
            raise StreamError("stream ended before the first token")
    if api.stream_needs_done:
        raise StreamError("stream ended without [DONE]")
    elapsed = now - started
    return _with_text(
        _finished(api, per_chunk, tokens, usage_tokens, elapsed, ttft, itl, size), texts
    )


def _with_text(sample: Sample, texts: list[str] | None) -> Sample:
    if texts is not None:
        sample.text = "".join(texts)
    return sample


def _empty_answer_ttft(api: Api, usage_tokens, choice_at, started: float) -> float | None:
    """TTFT (ms) of a stream whose every chunk was empty, or None when that is a failure.

    A model may answer nothing: its first token is the end-of-sequence token, sent as a
    finish chunk with empty text (vLLM counts it in `usage.completion_tokens`). With the
    server's own count of at least one token, that is an answer, and its first (only)
    token came with the last chunk that had choices. Without a count it is not one."""
    if api.one_token_per_chunk or not usage_tokens or choice_at is None:
        return None
    return (choice_at - started) * 1000


def _finished(api, per_chunk, tokens, usage_tokens, elapsed_s, ttft, itl, size) -> Sample:
    if tokens == 0 and ttft is None:
        raise StreamError("zero tokens in the stream")
    if usage_tokens is not None:
        # The server's own count; our server's chunks are one token each, so never fewer.
        count = max(usage_tokens, tokens) if api.one_token_per_chunk else usage_tokens
        source = SOURCE_ANSWER
    elif api.one_token_per_chunk:
        count, source = tokens, SOURCE_ANSWER
    else:
        count, source = tokens, SOURCE_TOKENIZER if per_chunk is not None else SOURCE_CHUNKS
    return Sample(elapsed_s * 1000, count, ttft, itl, size, source)


def _parse_data(data: bytes) -> Any:
    """The JSON value of a `data:` line; StreamError if it is not JSON."""
    try:
        line = data.decode()
    except UnicodeDecodeError:
        raise StreamError("a chunk is not JSON") from None
    # Fast path: the C scanner straight at the value after "data: " (json.loads adds two
    # Python calls and a regular expression a chunk), then only whitespace may follow.
    start = 6 if line.startswith(" ", 5) else 5
    try:
        value, end = _scan(line, start)
        if end == len(line) or not line[end:].strip(" \t\r\n"):  # JSON's whitespace
            return value
    except (StopIteration, ValueError):
        pass
    try:  # the slow path decides (more leading whitespace, or not JSON)
        return _decode(line[5:])  # JSON allows the leading space
    except ValueError:
        raise StreamError("a chunk is not JSON") from None


def _key(value: float) -> float:
    # 0.01 ms resolution below 10 ms (a small model's tokens), 0.1 ms below 100, 1 ms above:
    # percentiles within 0.25 % at 20 ms, the histogram bounded however long the run.
    if value < 10:
        return round(value, 2)
    return round(value, 1) if value < 100 else float(round(value))


class Histogram:
    """Value -> count, rounded so a long run stays small; merges by adding counts."""

    def __init__(self) -> None:
        self.counts: Counter[float] = Counter()
        self.total = 0.0
        self.n = 0

    def add(self, value: float) -> None:
        self.counts[_key(value)] += 1
        self.total += value
        self.n += 1

    def add_many(self, values: list[float]) -> None:
        counts = self.counts
        for value in values:
            counts[_key(value)] += 1
        self.total += sum(values)
        self.n += len(values)

    def merge(self, other: Mapping[str, Any]) -> None:
        for key, count in other.get("counts", []):
            self.counts[float(key)] += int(count)
        self.total += float(other.get("total", 0.0))
        self.n += int(other.get("n", 0))

    def to_dict(self) -> dict[str, Any]:
        return {"counts": sorted(self.counts.items()), "total": self.total, "n": self.n}

    def percentile(self, percent: float) -> float | None:
        """Nearest-rank percentile (percent in 0..100); None when empty."""
        if not self.n:
            return None
        rank = max(1, math.ceil(self.n * percent / 100))
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return max(self.counts)

    def summary(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {f"p{p}": self.percentile(p) for p in PERCENTILES}
        out["mean"] = self.total / self.n if self.n else None
        out["max"] = max(self.counts) if self.counts else None
        out["count"] = self.n
        return out


class LlmStats:
    """Histograms of the per-request metrics plus counts, for one process or one stage."""

    def __init__(self, slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None):
        self.slo_ttft_ms = slo_ttft_ms
        self.slo_tpot_ms = slo_tpot_ms
        self.hist = {name: Histogram() for name in METRICS}
        self.counts: Counter[str] = Counter()
        self.started = time.time()

    def is_good(self, sample: Sample) -> bool:
        """Meets every per-request target given (a missing TTFT fails a TTFT target)."""
        if self.slo_ttft_ms is not None and (
            sample.ttft_ms is None or sample.ttft_ms > self.slo_ttft_ms
        ):
            return False
        tpot = sample.tpot_ms
        return not (self.slo_tpot_ms is not None and tpot is not None and tpot > self.slo_tpot_ms)

    def add(self, sample: Sample) -> bool:
        """Record a successful request; returns whether it was good."""
        h = self.hist
        h["e2e_ms"].add(sample.e2e_ms)
        h["output_tokens"].add(sample.output_tokens)
        if sample.input_tokens is not None:
            h["input_tokens"].add(sample.input_tokens)
        if sample.output_tokens > 0:
            h["normalized_ms"].add(sample.e2e_ms / sample.output_tokens)
        if sample.ttft_ms is not None:
            h["ttft_ms"].add(sample.ttft_ms)
        if sample.itl_ms:
            h["itl_ms"].add_many(sample.itl_ms)
        if (tpot := sample.tpot_ms) is not None:
            h["tpot_ms"].add(tpot)
        good = self.is_good(sample)
        self.counts["requests"] += 1
        self.counts["samples"] += 1
        self.counts[f"tokens_from_{sample.token_source}"] += 1
        self.counts["good"] += good
        return good

    def failed(self) -> None:
        self.counts["requests"] += 1
        self.counts["failures"] += 1

    def to_dict(self) -> dict[str, Any]:
        """What a worker sends to the master (then resets)."""
        return {
            "hist": {name: h.to_dict() for name, h in self.hist.items()},
            "counts": dict(self.counts),
        }

    def merge(self, data: Mapping[str, Any]) -> None:
        for name, h in (data.get("hist") or {}).items():
            if name in self.hist:
                self.hist[name].merge(h)
        for name, n in (data.get("counts") or {}).items():
            self.counts[name] += int(n)

    def summary(self) -> dict[str, Any]:
        """The numbers for llm_metrics.json: percentiles of every metric, counts, targets."""
        out: dict[str, Any] = {name: h.summary() for name, h in self.hist.items()}
        out["counts"] = {name: int(self.counts[name]) for name in COUNTS}
        # The distributions themselves, for the run report's latency chart.
        out["histograms"] = {
            name: {"counts": self.hist[name].to_dict()["counts"]} for name in DISTRIBUTIONS
        }
        out["slo_ttft_ms"] = self.slo_ttft_ms
        out["slo_tpot_ms"] = self.slo_tpot_ms
        return out


def merge_all(parts: Iterable[Mapping[str, Any]], into: LlmStats) -> LlmStats:
    for part in parts:
        into.merge(part)
    return into
