"""The SLO gate's work (the KFP component is components/slo_gate.py): the SLO checks on
the load test's metrics (components.metrics_schema, shared with `deploytest run`'s summary)
and the regression verdict under its mode."""

from __future__ import annotations

from typing import Any


def judge(
    metrics: dict[str, Any],
    max_p95_ms: float,
    max_failure_ratio: float,
    min_rps: float,
    regression_verdict: str = "",
    regression: str = "",
    trigger: str = "manual",
    extra_checks: list[str] = (),
    log=lambda line: print(line, flush=True),
) -> str:
    """Return "PASS", or raise RuntimeError naming every missed threshold and a regression
    that fails under its mode. Prints the verdict table."""
    from components.metrics_schema import evaluate_checks, evaluate_slo, format_slo_table
    from history.recorder import gate_failed, regression_mode

    _, checks = evaluate_slo(metrics, max_p95_ms, max_failure_ratio, min_rps)
    checks += evaluate_checks(metrics, list(extra_checks))
    log(format_slo_table(checks))
    problems = []
    if not all(check.passed for check in checks):
        missed = "; ".join(check.describe() for check in checks if not check.passed)
        problems.append(f"SLO missed: {missed}")
    mode = regression_mode(regression, trigger)
    regressed, overall = gate_failed(regression_verdict)
    log(f"regression verdict: {overall} (mode {mode})")
    if regressed and mode == "fail":
        problems.append("regression against the history of this series (see the run report)")
    elif regressed and mode == "warn":
        log("WARNING: regression against the history of this series (mode warn)")
    if problems:
        raise RuntimeError("; ".join(problems))
    return "PASS"
