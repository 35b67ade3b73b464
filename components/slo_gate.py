"""KFP v2 component: the SLO gate after the load test.

Reads the numbers the load test logged into its Metrics artifact, prints a verdict table and
returns "PASS", or raises RuntimeError naming every missed threshold, which fails the run after
the load test already wrote its report. The work is components/runtime/slo_gate.py.
"""

# No `from __future__ import annotations` here: KFP reads the real annotation objects.
from kfp import dsl
from kfp.dsl import Input, Metrics

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def slo_gate(
    metrics: Input[Metrics],
    max_p95_ms: float,
    max_failure_ratio: float,
    min_rps: float,
    regression_verdict: str = "",
    regression: str = "",
    trigger: str = "manual",
    extra_checks: list = [],  # noqa: B006  (KFP reads the default; it is never mutated)
    min_parity: float = 1.0,
    min_expect_pass: float = 1.0,
    correctness_drift: str = "warn",
    history: str = "",
) -> str:
    """PASS when p95 <= max_p95_ms, failure ratio <= max_failure_ratio and rps >= min_rps, and no
    gated metric regressed against history while `regression` is fail.

    Runs after the load test wrote its report, so a failed gate still leaves the report.

    Args:
        metrics: the load test's logged metrics.
        max_p95_ms: the highest acceptable p95 latency, in milliseconds.
        max_failure_ratio: the highest acceptable failed/total requests.
        min_rps: the lowest acceptable requests per second.
        regression_verdict: verdict.json's text from the record task ("" = not judged).
        regression: on a REGRESSION of a gated metric: fail, warn or off; empty means fail for
            scheduled runs, warn for the others.
        trigger: what started the run (manual, merge, model-upload, schedule).
        extra_checks: more checks on any logged metric, e.g. "ttft_p95_ms<=500",
            "goodput_ratio>=0.9" (components.metrics_schema.evaluate_checks).
        min_parity: the least share of prompts matching the reference model over their first
            K tokens; checked when the correctness phase measured parity.
        min_expect_pass: the least share of the team's expectations met; checked when some
            were given.
        correctness_drift: answers that differ from the series' last PASS run: fail, warn or
            off (drift is measured by the record task).
        history: the run history; the gate writes this run's outcome into its entry there
            (the next run's drift compares with the last PASS).

    Returns:
        "PASS"; raises RuntimeError naming every missed threshold otherwise.
    """
    from components.runtime.slo_gate import judge

    return judge(
        dict(metrics.metadata),
        max_p95_ms,
        max_failure_ratio,
        min_rps,
        regression_verdict,
        regression,
        trigger,
        list(extra_checks),
        min_parity=min_parity,
        min_expect_pass=min_expect_pass,
        correctness_drift=correctness_drift,
        history=history,
    )
