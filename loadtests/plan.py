"""The load plan's option syntax, shared by the locustfile and `deploytest` (plain Python: no
Locust import, which would monkey-patch the importing process with gevent)."""

from __future__ import annotations

SHAPES = ("users", "rate", "steps", "sweep")


def parse_steps(text: str) -> list[tuple[float, float]]:
    """`10s:5,20s:10` -> [(10.0, 5.0), (20.0, 10.0)]; ValueError names the bad part."""
    stages = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        duration, sep, rate = part.partition(":")
        try:
            seconds = float(duration.strip().rstrip("s"))
            value = float(rate)
        except ValueError:
            seconds = value = -1.0
        if not sep or seconds <= 0 or value <= 0:
            raise ValueError(f"bad step {part!r}: expected DURATION:RATE like 10s:5, both > 0")
        stages.append((seconds, value))
    if not stages:
        raise ValueError("--steps needs at least one DURATION:RATE stage, e.g. 10s:5,10s:10")
    return stages


def parse_rates(text: str) -> list[float]:
    """`1,2,4` -> [1.0, 2.0, 4.0]: positive and rising."""
    try:
        rates = [float(x) for x in (text or "").split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--sweep-rates must be numbers like 1,2,4,8, got {text!r}") from None
    if not rates or any(r <= 0 for r in rates) or rates != sorted(set(rates)):
        raise ValueError(f"--sweep-rates must be rising rates > 0, got {text!r}")
    return rates


def planned_seconds(shape: str, steps: str, sweep_rates: str, stage_s: float) -> float | None:
    """How long a steps or sweep plan runs at most; None for users and rate (they use -t)."""
    if shape == "steps":
        return sum(seconds for seconds, _ in parse_steps(steps))
    if shape == "sweep":
        return len(parse_rates(sweep_rates)) * stage_s
    return None


def check_plan(
    shape: str,
    rate: float | None,
    steps: str,
    sweep_rates: str,
    slos: tuple[float | None, ...],
    processes: int | None = 1,
) -> None:
    """ValueError naming what a load plan lacks: the shape's own settings, a sweep's SLO
    (`slos`: E2E p95, TTFT, TPOT targets), one Locust process for open-loop shapes."""
    if shape not in SHAPES:
        raise ValueError(f"load shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    if rate is not None and not rate > 0:
        raise ValueError(f"--rate must be > 0 requests/s, got {rate:g}")
    if shape == "rate" and rate is None:
        raise ValueError("--load-shape rate needs --rate R (requests/s, > 0)")
    if shape == "steps":
        parse_steps(steps)
    if shape == "sweep":
        parse_rates(sweep_rates)
        if all(v is None for v in slos):
            raise ValueError(
                "--load-shape sweep needs an SLO to find the knee against: "
                "--slo-p95-ms, --slo-ttft-ms or --slo-tpot-ms"
            )
    if shape != "users" and processes not in (None, 1):
        raise ValueError(f"--load-shape {shape} runs in one Locust process (--processes 1)")
