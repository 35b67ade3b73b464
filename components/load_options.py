"""How the load is shaped and judged per request: streaming, goodput targets, open loop.

One value object that `deploytest run`, `deploytest loadtest` and the load-test component
share; it reaches the locustfile as DEPLOYTEST_* environment variables (the fallbacks of the
options the locustfile declares on Locust's parser, loadtests/locustfile.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from loadtests.apis import AUTO, check_api
from loadtests.plan import check_plan, planned_seconds
from loadtests.workload import check_api as check_workload_api
from loadtests.workload import check_context, parse_workload_json


@dataclass(frozen=True)
class LoadOptions:
    """Defaults: closed loop, not streaming, no per-request targets."""

    ENV_KEYS: ClassVar[tuple[str, ...]] = tuple(
        f"DEPLOYTEST_{name}"
        for name in (
            "STREAM LOAD_SHAPE RATE MAX_CONCURRENCY STEPS SWEEP_RATES STAGE_S SLO_TTFT_MS "
            "SLO_TPOT_MS SLO_P95_MS MAX_FAILURE_RATIO SEED API TOKENIZER WORKLOAD CONTEXT_TOKENS"
        ).split()
    )

    stream: bool = False
    load_shape: str = "users"
    rate: float | None = None
    max_concurrency: int = 64
    steps: str = ""
    sweep_rates: str = "1,2,4,8,16,32,64"
    stage_s: float = 10.0
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    slo_p95_ms: float | None = None  # the sweep's E2E target
    max_failure_ratio: float = 0.01
    seed: int | None = None
    # The serving API (loadtests/apis.py); `auto` is resolved before the load starts.
    api: str = "deploytest"
    tokenizer: str = ""  # the model's tokenizer.json, for answers that carry no count
    # The workload spec as JSON text (loadtests/workload.py; "" = the prompts file) and the
    # model's context in tokens (None: unknown), which the locustfile builds requests from.
    workload: str = ""
    context_tokens: int | None = None

    def validate(self, processes: int = 1) -> None:
        """ValueError naming the first bad option; nothing is created before this passes."""
        check_api(self.api, self.stream)
        if self.max_concurrency < 1:
            raise ValueError(f"--max-concurrency must be >= 1, got {self.max_concurrency}")
        if not self.stage_s > 0:
            raise ValueError(f"--stage-s must be > 0, got {self.stage_s:g}")
        for name in ("slo_ttft_ms", "slo_tpot_ms", "slo_p95_ms"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be > 0 ms, got {value:g}")
        if not 0 <= self.max_failure_ratio <= 1:
            raise ValueError("the maximum failure ratio must be within [0, 1]")
        slos = (self.slo_p95_ms, self.slo_ttft_ms, self.slo_tpot_ms)
        check_plan(self.load_shape, self.rate, self.steps, self.sweep_rates, slos, processes)
        if self.workload:
            workload = parse_workload_json(self.workload)
            if self.api != AUTO:
                check_workload_api(workload, self.api)
            check_context(workload, self.context_tokens)

    def planned_s(self) -> float | None:
        """Seconds a steps or sweep plan takes; None when -t/--duration sets the length."""
        return planned_seconds(self.load_shape, self.steps, self.sweep_rates, self.stage_s)

    def environment(self) -> dict[str, str]:
        """DEPLOYTEST_* variables for the locustfile (unset options are left out)."""
        if self.api == AUTO:
            raise ValueError("the serving API must be resolved before the load test (not auto)")
        env = {
            "DEPLOYTEST_API": self.api,
            "DEPLOYTEST_STREAM": "true" if self.stream else "false",
            "DEPLOYTEST_LOAD_SHAPE": self.load_shape,
            "DEPLOYTEST_MAX_CONCURRENCY": str(self.max_concurrency),
            "DEPLOYTEST_STEPS": self.steps,
            "DEPLOYTEST_SWEEP_RATES": self.sweep_rates,
            "DEPLOYTEST_STAGE_S": f"{self.stage_s:g}",
            "DEPLOYTEST_MAX_FAILURE_RATIO": f"{self.max_failure_ratio:g}",
        }
        optional = {
            "DEPLOYTEST_RATE": self.rate,
            "DEPLOYTEST_SLO_TTFT_MS": self.slo_ttft_ms,
            "DEPLOYTEST_SLO_TPOT_MS": self.slo_tpot_ms,
            "DEPLOYTEST_SLO_P95_MS": self.slo_p95_ms,
            "DEPLOYTEST_SEED": self.seed,
            "DEPLOYTEST_TOKENIZER": self.tokenizer or None,
            "DEPLOYTEST_WORKLOAD": self.workload or None,
            "DEPLOYTEST_CONTEXT_TOKENS": self.context_tokens,
        }
        env.update(
            {
                k: f"{v:g}" if isinstance(v, float) else str(v)
                for k, v in optional.items()
                if v is not None
            }
        )
        return env
