"""Dynamic batching: coalesce concurrent requests into one generate call.

The event loop submits jobs (a request's instances that share generation settings) to one
queue; a single worker thread owns the model, takes the oldest job, gathers compatible jobs
for up to `max_wait_s` (counted from when the oldest job was queued) and up to
`max_batch_size` instances, runs them as one batch and splits the rows back.

It only waits when waiting can help: the event loop announces each request as it starts
reading the body (`announce`), so when nothing is on its way to the queue the worker runs
at once. At concurrency 1 batching therefore adds no wait at all, and never more than
`max_wait_s`.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.generation import Generation, GenParams

log = logging.getLogger("serving.batching")

RunBatch = Callable[..., Sequence[Generation]]
# Called from the worker thread once per generated token of one row: (text delta, finish
# reason or None). See serving/streaming.py.
TokenSink = Callable[[str, str | None], None]


@dataclass
class _Job:
    prompts: list[str]
    params: GenParams
    key: tuple | None
    sinks: list[TokenSink | None] | None = None  # one per prompt when the request streams
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    queued_at: float = field(default_factory=time.monotonic)


class Arrival:
    """A request on its way to the queue; `Batcher.submit` or `withdraw` settles it once."""

    __slots__ = ("settled",)

    def __init__(self) -> None:
        self.settled = False


class Batcher:
    """One queue and one worker thread that runs `run_batch` over coalesced jobs."""

    def __init__(self, run_batch: RunBatch, max_batch_size: int, max_wait_s: float):
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._arriving = 0
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._requests = 0
        self._instances = 0
        self._calls = 0
        self._sizes: Counter[int] = Counter()
        self._failures = 0
        self._last_jobs = 0
        self._waited_s = 0.0  # time spent holding a batch open for more jobs
        self._generate_s = 0.0

    def start(self) -> None:
        """Start the worker thread (daemon: it must never keep the process alive)."""
        self._thread = threading.Thread(target=self._work, name="batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker after its current batch; queued jobs fail with RuntimeError."""
        with self._cond:
            self._stopping = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(RuntimeError("server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout)

    def announce(self) -> Arrival:
        """Tell the worker a request is being read, so a forming batch may wait for it."""
        with self._cond:
            self._arriving += 1
        return Arrival()

    def withdraw(self, arrival: Arrival) -> None:
        """The announced request will not be submitted (bad body, disconnect)."""
        with self._cond:
            if not arrival.settled:
                arrival.settled = True
                self._arriving -= 1
                self._cond.notify_all()

    def submit(
        self,
        groups: list[tuple[list[str], GenParams]],
        arrival: Arrival | None = None,
        sinks: list[list[TokenSink | None]] | None = None,
    ) -> list[concurrent.futures.Future]:
        """Queue one request's groups (prompts sharing settings); one future per group.

        `sinks` (one list per group, one sink per prompt) makes the batch stream: each sink
        gets every token of its row as the batch generates it. Streaming and non-streaming
        jobs with the same settings still share a batch.
        Enqueueing and settling the arrival happen under one lock, so the worker never
        sees the request as neither arriving nor queued.
        """
        jobs = [
            _Job(prompts, params, params.batch_key(), sinks[i] if sinks else None)
            for i, (prompts, params) in enumerate(groups)
        ]
        with self._cond:
            if self._stopping:
                raise RuntimeError("server is shutting down")
            if arrival is not None and not arrival.settled:
                arrival.settled = True
                self._arriving -= 1
            self._queue.extend(jobs)
            self._requests += 1
            self._instances += sum(len(job.prompts) for job in jobs)
            self._cond.notify_all()
        return [job.future for job in jobs]

    def stats(self) -> dict[str, Any]:
        """Counters that prove coalescing: requests, instances, generate calls, batch sizes."""
        with self._cond:
            calls = self._calls
            rows = sum(size * n for size, n in self._sizes.items())
            return {
                "requests": self._requests,
                "instances": self._instances,
                "generate_calls": calls,
                "generate_failures": self._failures,
                "batch_sizes": {str(k): v for k, v in sorted(self._sizes.items())},
                "mean_batch_size": round(rows / calls, 3) if calls else 0.0,
                # Latency batching added: time batches were held open waiting for more.
                "batch_wait_ms_total": round(self._waited_s * 1000, 3),
                "generate_ms_total": round(self._generate_s * 1000, 3),
                "queued_jobs": len(self._queue),
                "max_batch_size": self.max_batch_size,
                "max_batch_wait_ms": self.max_wait_s * 1000,
            }

    def _take_compatible(self, batch: list[_Job], size: int) -> int:
        """Move queued jobs that share the batch's key and still fit; keep the rest in order."""
        key = batch[0].key
        keep: deque[_Job] = deque()
        while self._queue:
            job = self._queue.popleft()
            if job.key == key and size + len(job.prompts) <= self.max_batch_size:
                batch.append(job)
                size += len(job.prompts)
            else:
                keep.append(job)
        self._queue = keep
        return size

    def _next_batch(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            first = self._queue.popleft()
            batch = [first]
            # A request is never split: one bigger than max_batch_size runs alone.
            if first.key is None or self.max_batch_size <= 1:
                return batch
            size = len(first.prompts)
            deadline = first.queued_at + self.max_wait_s
            formed_at = time.monotonic()
            try:
                while True:
                    size = self._take_compatible(batch, size)
                    if size >= self.max_batch_size or self._stopping:
                        return batch
                    # Wait only if it can help: a request is being read right now, or the
                    # last batch coalesced several jobs (so others are likely to follow).
                    if self._arriving == 0 and self._last_jobs <= 1:
                        return batch
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return batch
                    self._cond.wait(remaining)
            finally:
                self._waited_s += time.monotonic() - formed_at

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            # A client that went away cancels its future; its rows are not worth computing.
            batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            prompts = [p for job in batch for p in job.prompts]
            started = time.monotonic()
            try:
                if any(job.sinks for job in batch):
                    sinks = [s for job in batch for s in (job.sinks or [None] * len(job.prompts))]
                    rows = list(self._run_batch(prompts, batch[0].params, sinks=sinks))
                else:
                    rows = list(self._run_batch(prompts, batch[0].params))
                if len(rows) != len(prompts):
                    raise RuntimeError(f"{len(rows)} rows back for {len(prompts)} prompts")
            except Exception as exc:  # the worker must survive anything one batch does
                log.exception("generate failed for a batch of %d", len(prompts))
                with self._cond:
                    self._failures += 1
                for job in batch:
                    job.future.set_exception(exc)
                continue
            with self._cond:
                self._generate_s += time.monotonic() - started
                self._last_jobs = len(batch)
                self._calls += 1
                self._sizes[len(prompts)] += 1
            start = 0
            for job in batch:
                job.future.set_result(rows[start : start + len(job.prompts)])
                start += len(job.prompts)
