"""Load shapes for the deploytest locustfile, on Locust's own `LoadTestShape`.

    users  closed loop (the default): `-u` users send back to back, `-r` spawn rate, `-t`.
    rate   open loop: requests arrive as a Poisson process at `--rate` per second and each is
           sent at its arrival time whether or not earlier ones finished. `--max-concurrency`
           users carry them: an arrival that finds every user busy is sent late (counted as
           *delayed*); arrivals still unsent when the test stops are *dropped*.
    steps  open loop through stages: `--steps 10s:5,10s:10,20s:20` (duration:rate).
    sweep  open loop at rising rates (`--sweep-rates 1,2,4,8`, `--stage-s` seconds each) until a
           stage breaks an SLO; the knee is the highest rate whose stage met every SLO.

Open-loop shapes run in one Locust process (each process would need its share of the rate).
A stage meets its SLOs when: E2E p95 <= --slo-p95-ms, TTFT p95 <= --slo-ttft-ms,
TPOT p95 <= --slo-tpot-ms (each when given), failure ratio <= --max-failure-ratio, and at
most 10 % (and 2) of its arrivals waited for a free user (else the client cap, not the server, set
the pace). E2E and TTFT are timed from the send, so time spent waiting shows up only there.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from gevent.event import Event
from locust import LoadTestShape

from loadtests.llm_stats import LlmStats
from loadtests.plan import parse_rates, parse_steps

LATE_TOLERANCE_S = 0.002  # gevent wake-up jitter is not a client-side queue
MAX_DELAYED_RATIO = 0.1


class Arrivals:
    """A Poisson arrival schedule that free users claim one arrival at a time.

    A user claims the next arrival, sleeps until it and sends. A rate change starts a new
    schedule and wakes the sleepers, whose claims (on the old schedule) lapse unsent.
    """

    def __init__(self, seed: int | None = None, clock=time.perf_counter):
        self._rng = random.Random(seed)
        self._clock = clock
        self.rate = 0.0
        self._next: float | None = None
        self._changed = Event()  # set (then replaced) when the schedule changes
        self.sent = self.delayed = self.dropped = 0

    @property
    def active(self) -> bool:
        return self.rate > 0

    def set_rate(self, rate: float) -> None:
        """Start (or restart) the schedule at `rate`/s from now; 0 stops it."""
        self.drain()
        self.rate = rate
        self._next = self._clock() + self._rng.expovariate(rate) if rate > 0 else None
        changed, self._changed = self._changed, Event()
        changed.set()

    def claim(self) -> tuple[float, bool]:
        """(the next arrival's perf_counter time, late): late when it was already past at
        the claim, i.e. no user was free at its arrival (exact, whatever the wake-up jitter)."""
        if self._next is None:
            raise RuntimeError("no arrival rate set")
        due = self._next
        self._next += self._rng.expovariate(self.rate)
        return due, self._clock() - due > LATE_TOLERANCE_S

    def wait(self, due: float) -> bool:
        """Sleep until `due`; False if the schedule changed meanwhile (the claim lapsed)."""
        changed = self._changed
        remaining = due - self._clock()
        if remaining > 0:
            changed.wait(remaining)  # gevent: yields to the other users
        return not changed.is_set()

    def send(self, late: bool) -> None:
        """Count a send of a claimed arrival."""
        self.sent += 1
        self.delayed += late

    def drain(self) -> None:
        """Count arrivals that were due but never claimed (all users busy) as dropped."""
        if self._next is None:
            return
        now = self._clock()
        while self._next <= now:
            self.dropped += 1
            self._next += self._rng.expovariate(self.rate)


@dataclass
class RunState:
    """What the locustfile's users and the shape share within one Locust process."""

    options: Any = None
    arrivals: Arrivals = field(default_factory=Arrivals)
    total: LlmStats = field(default_factory=LlmStats)
    stage: LlmStats = field(default_factory=LlmStats)
    stages: list[dict[str, Any]] = field(default_factory=list)
    stage_rate: float = 0.0
    stage_started: float = 0.0
    first_stage_started: float = 0.0
    stopped_at: float = 0.0
    cpu_started: float = 0.0  # this process's CPU time at test start
    cpu_reported: float | None = None  # ... at a worker's last report
    worker_cpu_s: float = 0.0  # what the workers reported (master)

    def record_stage(self, stage_options) -> dict[str, Any] | None:
        """Close the current stage: its row (numbers and SLO verdict), then a fresh stage."""
        if self.stage_rate <= 0:
            return None
        seconds = max(time.perf_counter() - self.stage_started, 1e-9)
        row = stage_row(self.stage, self.stage_rate, seconds, stage_options)
        self.stages.append(row)
        return row

    def collectors(self) -> tuple[LlmStats, ...]:
        """Where a request's numbers go: the run, and the stage when stages are judged."""
        staged = self.options is not None and self.options.load_shape in ("steps", "sweep")
        return (self.total, self.stage) if staged else (self.total,)

    def start_stage(self, rate: float) -> None:
        o = self.options
        self.stage = LlmStats(o.slo_ttft_ms, o.slo_tpot_ms)
        self.stage_rate = rate
        self.stage_started = time.perf_counter()
        self.first_stage_started = self.first_stage_started or self.stage_started
        self.arrivals.set_rate(rate)


RUN = RunState()


def _token_rate(summary: dict[str, Any], seconds: float) -> float:
    count, mean = summary.get("count") or 0, summary.get("mean")
    return count * mean / seconds if count and mean is not None and seconds > 0 else 0.0


def stage_row(stats: LlmStats, rate: float, seconds: float, o) -> dict[str, Any]:
    """One stage's numbers and its SLO verdict (see the module docstring)."""
    s = stats.summary()
    counts = s["counts"]
    requests = counts["requests"]
    row: dict[str, Any] = {
        "offered_rate": rate,
        "seconds": round(seconds, 3),
        "achieved_rate": counts["sent"] / seconds,
        "requests": requests,
        "failure_ratio": counts["failures"] / requests if requests else 1.0,
        "p95_ms": s["e2e_ms"]["p95"],
        "ttft_p95_ms": s["ttft_ms"]["p95"],
        "tpot_p95_ms": s["tpot_ms"]["p95"],
        "goodput_rps": counts["good"] / seconds,
        # tokens the successful requests of this stage generated, per second of the stage
        "output_tokens_per_s": _token_rate(s["output_tokens"], seconds),
        "delayed": counts["delayed"],
    }
    broken = []
    for key, limit in (
        ("p95_ms", o.slo_p95_ms),
        ("ttft_p95_ms", o.slo_ttft_ms),
        ("tpot_p95_ms", o.slo_tpot_ms),
    ):
        if limit is not None and (row[key] is None or row[key] > limit):
            broken.append(f"{key} {row[key]} > {limit:g}")
    if row["failure_ratio"] > o.max_failure_ratio:
        broken.append(f"failure_ratio {row['failure_ratio']:.3f} > {o.max_failure_ratio:g}")
    sent = counts["sent"]
    if row["delayed"] > max(2, MAX_DELAYED_RATIO * sent):  # a lone clump is Poisson, not a cap
        broken.append(f"{row['delayed']} of {sent} arrivals waited for a free user (the cap)")
    row["passed"] = not broken
    row["broken"] = broken
    return row


def knee(stages: list[dict[str, Any]]) -> float | None:
    """The highest offered rate whose stage, and every stage before it, met every SLO."""
    best = None
    for row in stages:
        if not row["passed"]:
            break
        best = row["offered_rate"]
    return best


class DeploytestShape(LoadTestShape):
    """Drives users (closed loop) or arrival rates (open loop) from the locustfile's options."""

    # `users` reads -u/-r. Locust joins a shape before it arms -t's timer, so the shape ends
    # the test at -t itself.
    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._stage_index = -1
        self._stage_ends = 0.0

    def _plan(self, o) -> list[tuple[float, float]]:
        if o.load_shape == "steps":
            return parse_steps(o.steps)
        return [(float(o.stage_s), rate) for rate in parse_rates(o.sweep_rates)]

    def tick(self):
        o = RUN.options
        opts = self.runner.environment.parsed_options
        if opts is not None and opts.run_time and self.get_run_time() >= opts.run_time:
            return None
        if o is None or o.load_shape == "users":
            return (opts.num_users or 1, opts.spawn_rate or 1)
        users = o.max_concurrency
        if o.load_shape == "rate":
            if not RUN.arrivals.active:
                RUN.start_stage(o.rate)
            return (users, users)
        plan = self._plan(o)
        now = self.get_run_time()
        if self._stage_index < 0 or now >= self._stage_ends:
            row = RUN.record_stage(o) if self._stage_index >= 0 else None
            if row is not None and o.load_shape == "sweep" and not row["passed"]:
                RUN.arrivals.set_rate(0)
                return None
            self._stage_index += 1
            if self._stage_index >= len(plan):
                RUN.arrivals.set_rate(0)
                return None
            seconds, rate = plan[self._stage_index]
            self._stage_ends = now + seconds
            RUN.start_stage(rate)
        return (users, users)
