"""A run's verdict (kept in summary.json) and the lines that tell it to a person."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GATE_TASK = "slo-gate"
OUTPUT_FILES = ("report.html", "metrics.json", "run.json", "cleanup.json", "pipeline.log")
OUTPUT_FILES += ("recommendation.json",)


def slo_checks(metrics: dict[str, Any] | None, params: dict[str, Any]) -> list:
    """The gate's checks on the run's metrics, as the gate task makes them (none without
    metrics): components.metrics_schema.gate_checks."""
    from components.metrics_schema import gate_checks

    return gate_checks(metrics, params)


# A right-sizing branch's tasks: one failing marks its candidate failed, not the run. The
# recommendation task fails when none qualifies: its own reason says why.
BRANCH_TASKS = (
    "candidate-labels", "endpoint-create", "model-deploy", "locust-load-test", "record-run",
    "recommend",
)  # fmt: skip


def _after_the_run(results: dict[str, Any]) -> list[str]:
    """What any run must end with: a finished clean-up and nothing left behind."""
    reasons = []
    cleanup = results.get("cleanup") or results.get("fallback_cleanup")
    if not (cleanup and cleanup.get("ok", False)):
        reasons.append("clean-up did not finish")
    left = results.get("left") or {}
    if left.get("endpoints") or left.get("processes"):
        reasons.append("resources were left behind")
    return reasons


def _verdict(reasons: list[str], failed: list[str], checks: list) -> dict[str, Any]:
    return {
        "verdict": "FAIL" if reasons else "PASS",
        "reasons": reasons,
        "failed_tasks": failed,
        "checks": checks,
    }


def _judge_rightsize(results: dict[str, Any]) -> dict[str, Any]:
    """PASS only if a candidate was recommended, every task outside the branches
    succeeded, clean-up finished and nothing was left behind."""
    rec = results.get("recommendation") or {}
    failed = [t for t, s in results.get("tasks", {}).items() if s != "SUCCESS"]
    outside = [t for t in failed if t not in BRANCH_TASKS]
    reasons = [f"{', '.join(outside)} failed"] if outside else []
    if not rec.get("recommended"):
        why = rec.get("reason") or "the recommendation task did not write one"
        reasons.append(f"no candidate recommended: {why}")
    return _verdict(reasons + _after_the_run(results), failed, [])


def judge(results: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """PASS only if every task succeeded, the SLO gate passed, clean-up finished and
    nothing was left behind; else FAIL with the reasons. A right-sizing run: see
    _judge_rightsize."""
    if params.get("candidates"):
        return _judge_rightsize(results)
    metrics = results.get("metrics")
    tasks = results.get("tasks", {})
    checks = slo_checks(metrics, params)
    gate_passed = bool(metrics) and all(c.passed for c in checks)
    failed = [t for t, s in tasks.items() if s != "SUCCESS"]
    reasons = []
    missed = "; ".join(c.describe() for c in checks if not c.passed)
    drift = results.get("correctness_drift") or {}
    if drift.get("state") == "DRIFT" and params.get("correctness_drift") == "fail":
        from history.drift import describe

        missed = "; ".join(filter(None, (missed, f"correctness drift {describe(drift)}")))
    if failed:
        reasons.append(f"{', '.join(failed)} failed" + (f" (missed: {missed})" if missed else ""))
    elif not (gate_passed and tasks.get(GATE_TASK) == "SUCCESS"):
        reasons.append("the SLO gate did not pass" + (f" (missed: {missed})" if missed else ""))
    return _verdict(reasons + _after_the_run(results), failed, [c._asdict() for c in checks])


def lines(results: dict[str, Any], params: dict[str, Any], run_dir: Path) -> list[str]:
    """The summary a person reads at the end of a run (the same facts as summary.json)."""
    from components.llm_metrics import summary_lines
    from components.metrics_schema import SloCheck, format_slo_table

    metrics = results.get("metrics")
    cleanup = results.get("cleanup") or results.get("fallback_cleanup")
    outcome = results["outcome"]
    out = ["", f"deploytest run {results['run_id']}"]
    choice = results.get("serving_api") or {}
    if choice:
        counted = f"; output tokens from {metrics['output_tokens_source']}" if metrics else ""
        out.append(f"  serving API  {choice['api']} ({choice['why']}){counted}")
    if params.get("candidates"):
        out += rightsize_lines(results.get("recommendation"))
    elif metrics:
        checks = [SloCheck(**check) for check in outcome["checks"]]
        out += [
            latency_line(metrics),
            f"  throughput   {metrics['rps']:.1f} requests/s, "
            f"{metrics['output_tokens_per_s']:.0f} output tokens/s",
            f"  failures     {metrics['failures']} of {metrics['requests']} "
            f"({metrics['failure_ratio']:.2%})",
            *summary_lines(metrics),
            *correctness_lines(metrics),
            "  SLO gate:",
            *("    " + row for row in format_slo_table(checks).splitlines()),
        ]
    else:
        out.append("  load test    did not run (see the failed task above)")
    if outcome["failed_tasks"]:
        out.append(f"  failed tasks {', '.join(outcome['failed_tasks'])}")
    if cleanup:
        deleted = sum(e["deleted"] for e in cleanup["endpoints"])
        undeployed = sum(len(e["undeployed_models"]) for e in cleanup["endpoints"])
        out.append(
            f"  clean-up     {deleted} endpoint(s) deleted, {undeployed} model(s) undeployed "
            f"in {cleanup['seconds']:.1f}s"
        )
    else:
        out.append("  clean-up     no record (the exit task did not run)")
    if results.get("cost"):
        from components.cost import describe

        out.append(f"  cost         {describe(results['cost'])}")
    left = results["left"]
    out.append(
        f"  left behind  {len(left['endpoints'])} endpoint(s), "
        f"{len(left['processes'])} model-server process(es)"
    )
    verdict_file = run_dir / "verdict.json"
    if verdict_file.is_file():
        from history.recorder import regression_mode

        judged = json.loads(verdict_file.read_text())
        mode = regression_mode(params["regression"], params["trigger"])
        out.append(
            f"  regression   {judged['overall']} against {judged['history_runs']} earlier "
            f"run(s) of the series (mode {mode})"
        )
        if judged.get("correctness_drift"):
            from history.drift import describe

            out.append(
                f"  drift        {describe(judged['correctness_drift'])} (mode "
                f"{params['correctness_drift']})"
            )
    for name in OUTPUT_FILES:
        if (run_dir / name).exists():
            out.append(f"  {name:<12} {run_dir / name}")
    reasons = "; ".join(outcome["reasons"])
    shown = f"FAIL ({reasons})" if reasons else "PASS"
    out.append(f"  verdict      {shown} in {results['seconds']:.1f}s")
    return out


def latency_line(metrics: dict[str, Any]) -> str:
    """The latency line: the successful requests' exact E2E, the numbers the gate judges
    (metrics.json schema 6; an older file is read with that meaning); Locust's rounded figures
    where no per-request data was kept (a locustfile of your own), and said so."""
    from components.metrics_schema import upgrade

    m = upgrade(metrics)
    line = (
        f"  latency      p50 {m['p50_ms']:.0f} ms   p90 {m['p90_ms']:.0f} ms"
        f"   p95 {m['p95_ms']:.0f} ms   p99 {m['p99_ms']:.0f} ms   mean {m['mean_ms']:.1f} ms"
    )
    if m["latency_source"] == "locust":
        return line + "   (Locust's histogram: every request, rounded)"
    return line


def correctness_lines(metrics: dict[str, Any]) -> list[str]:
    """What the correctness phase found (none when it did not run)."""
    phase = metrics.get("correctness") or {}
    if not phase:
        return []
    out = []
    parity, expect = metrics.get("parity_ratio"), metrics.get("expect_pass_ratio")
    if parity is not None:
        matched = round(parity * phase["parity_prompts"])
        out.append(
            f"  parity       {parity:.0%}: {matched} of {phase['parity_prompts']} prompts match "
            f"the reference model over their first {phase['tokens_compared']} tokens"
        )
    elif phase.get("parity_skipped"):
        out.append(f"  parity       not measured: {phase['parity_skipped']}")
    if expect is not None:
        out.append(f"  expectations {expect:.0%} of {phase['expectations']} met")
    if phase.get("note"):
        out.append(f"  correctness  {phase['note']}")
    return out


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def rightsize_lines(rec: dict[str, Any] | None) -> list[str]:
    """The candidates' table and the recommendation (components/runtime/recommend.py)."""
    if not rec:
        return ["  right-sizing no recommendation was written (see the failed tasks)"]
    out = [
        "  right-sizing (capacity = the knee; replicas share the load evenly: assumed; >=: the "
        "sweep's top rate, a lower bound)"
    ]
    header = ("candidate", "knee req/s", "out tok/s", "USD/h", "USD/1M out", "replicas", "")
    rows = [header]
    for row in rec["candidates"]:
        rows.append(
            (
                row.get("description") or row.get("key", "?"),
                (">=" if row.get("knee_capped") else "") + _num(row["knee_rps"], "g"),
                _num(row["output_tokens_per_s"], ".0f"),
                _num(row["usd_per_hour"], ".4f"),
                _num(row["usd_per_million_output_tokens"], ".2f"),
                _num(row["replicas_needed"], "d"),
                row["outcome"] + (f": {row['reason']}" if row["reason"] else ""),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        cells = [str(c).ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        out.append("    " + "  ".join(cells) + "  " + r[-1])
    chosen = rec.get("recommended")
    if chosen:
        from components.runtime.candidate_labels import describe

        need = rec.get("required_rps") or rec.get("required_output_tokens_per_s")
        unit = "requests/s" if rec.get("required_rps") else "output tokens/s"
        at = f" for {need:g} {unit}" if need else " (lowest USD per million output tokens)"
        out.append(
            f"  recommended  {describe(chosen)} x {rec['replicas']} replica(s){at}: "
            f"{_num(rec['usd_per_hour'], '.4f')} USD/h"
        )
    else:
        out.append(f"  recommended  none: {rec.get('reason')}")
    return out
