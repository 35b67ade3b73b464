"""A run's results, gathered into its folder from the pipeline job's outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def collect_results(run_dir: Path) -> dict[str, Any]:
    """Copy the report, stats, metrics, record, recommendation and clean-up record from the
    job's outputs (`run_dir/kfp/<job id>/<task>/<output>`) to the run folder's top level;
    return
    {"metrics": ..., "cleanup": ...} for what was found."""
    kfp_root = run_dir / "kfp"
    results: dict[str, Any] = {}
    found = {p.relative_to(kfp_root).parts[1:]: p for p in kfp_root.glob("*/*/*")}
    for (task, output), path in found.items():
        if task == "locust-load-test" and output == "report" and path.is_file():
            shutil.copy(path, run_dir / "locust-report.html")  # report.html is the run report
        elif task == "record-run" and output == "record" and path.is_dir():
            for name in ("run.json", "verdict.json"):
                if (path / name).is_file():
                    shutil.copy(path / name, run_dir / name)
        elif task == "locust-load-test" and output == "stats" and path.is_dir():
            shutil.copytree(path, run_dir / "stats", dirs_exist_ok=True)
        elif task == "recommend" and output == "recommendation" and path.is_dir():
            chosen = path / "recommendation.json"
            if chosen.is_file():
                shutil.copy(chosen, run_dir / "recommendation.json")
                results["recommendation"] = json.loads(chosen.read_text())
        elif task == "cleanup-endpoints" and output == "record" and path.is_file():
            shutil.copy(path, run_dir / "cleanup.json")
            results["cleanup"] = json.loads(path.read_text())
    if (run_dir / "verdict.json").is_file():  # the answers' drift, for the verdict's reasons
        verdict = json.loads((run_dir / "verdict.json").read_text())
        results["correctness_drift"] = verdict.get("correctness_drift") or {}
    metrics = run_dir / "stats" / "metrics.json"
    if metrics.is_file():
        shutil.copy(metrics, run_dir / "metrics.json")
        results["metrics"] = json.loads(metrics.read_text())
    return results


def run_cost(results: dict, prices: dict | None) -> dict | None:
    """The run's cost over every clean-up record (the exit task's and our fallback's)."""
    from components.cost import run_cost as cost_of

    records = [results.get(k) for k in ("cleanup", "fallback_cleanup") if results.get(k)]
    if not records:
        return None
    merged = {
        "endpoints": [e for r in records for e in r.get("endpoints", [])],
        "billing_id": records[0].get("billing_id", ""),
    }
    tokens = (results.get("metrics") or {}).get("output_tokens")
    return cost_of(merged, prices, tokens)
