"""KFP v2 component: the SLO gate after the load test.

Reads the numbers the load test logged into its Metrics artifact, prints a verdict table and
returns "PASS", or raises RuntimeError naming every missed threshold, which fails the run after
the load test already wrote its report. The decision itself is
components.metrics_schema.evaluate_slo, shared with the CLI summary.
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
) -> str:
    """PASS when p95 <= max_p95_ms, failure ratio <= max_failure_ratio and rps >= min_rps.

    Runs after the load test wrote its report, so a failed gate still leaves the report.

    Args:
        metrics: the load test's logged metrics.
        max_p95_ms: the highest acceptable p95 latency, in milliseconds.
        max_failure_ratio: the highest acceptable failed/total requests.
        min_rps: the lowest acceptable requests per second.

    Returns:
        "PASS"; raises RuntimeError naming every missed threshold otherwise.
    """
    from components.metrics_schema import evaluate_slo, format_slo_table

    passed, checks = evaluate_slo(dict(metrics.metadata), max_p95_ms, max_failure_ratio, min_rps)
    print(format_slo_table(checks), flush=True)
    if not passed:
        missed = "; ".join(check.describe() for check in checks if not check.passed)
        raise RuntimeError(f"SLO missed: {missed}")
    return "PASS"
