"""The SLO gate's work (the KFP component is components/slo_gate.py): the SLO checks on
the load test's metrics (components.metrics_schema.gate_checks, shared with `deploytest run`'s
summary and the run report),
the correctness phase's ratios, the regression verdict and the answers' drift under their
modes; and the outcome written into the run's history entry."""

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
    *,
    min_parity: float = 1.0,
    min_expect_pass: float = 1.0,
    correctness_drift: str = "warn",
    history: str = "",
) -> str:
    """Return "PASS", or raise RuntimeError naming every missed threshold, and a regression
    or drift that fails under its mode. The checks are components.metrics_schema.gate_checks
    (p95_ms is the successful requests' exact E2E p95). Prints the verdict table. With
    `history`, writes the outcome into the run's entry first (a failure to write it is logged,
    never the gate's)."""
    from components.metrics_schema import format_slo_table, gate_checks
    from history.drift import describe as describe_drift
    from history.recorder import drift_of, gate_failed, regression_mode

    checks = gate_checks(
        metrics,
        {
            "slo_p95_ms": max_p95_ms,
            "max_failure_ratio": max_failure_ratio,
            "min_rps": min_rps,
            "slo_checks": list(extra_checks),
            "min_parity": min_parity,
            "min_expect_pass": min_expect_pass,
        },
    )
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
    drift = drift_of(regression_verdict)
    if drift:
        log(f"correctness drift: {describe_drift(drift)} (mode {correctness_drift})")
    if drift.get("state") == "DRIFT" and correctness_drift == "fail":
        problems.append(f"correctness drift: {describe_drift(drift)}")
    elif drift.get("state") == "DRIFT" and correctness_drift == "warn":
        log("WARNING: the answers drifted from the last PASS run (mode warn)")
    _write_outcome(history, regression_verdict, "; ".join(problems), log)
    if problems:
        raise RuntimeError("; ".join(problems))
    return "PASS"


def _write_outcome(history: str, verdict_json: str, problems: str, log) -> None:
    from history.recorder import entry_of
    from history.store import StoreError, open_store

    entry = entry_of(verdict_json)
    if not history or not entry:
        return
    try:
        where = open_store(history).write_outcome(entry, "FAIL" if problems else "PASS", problems)
        log(f"outcome written to {where}")
    except (StoreError, ValueError, OSError) as exc:
        log(f"WARNING: the outcome could not be written to the history: {exc}")
