"""The right-sizing recommendation: per candidate its knee, throughput and price, and the
cheapest candidate that meets the SLO at the required rate.

Plain Python over what each candidate's sweep measured (its metrics.json: `knee_rps` and
`knee_output_tokens_per_s`) and its hourly price; the KFP component around it reads those
and writes `recommendation.json`. Two assumptions, stated wherever the figures are shown:
- a candidate's capacity is its knee (the highest offered rate whose stage, and every one
  before it, met every SLO); between its replicas the load is shared evenly, so one
  replica carries `knee / replicas` and N replicas N times that (Vertex AI's load
  balancing across replicas is not measured here);
- the price of a candidate is its machine (and accelerators) per node hour, times its
  replicas, from the run's price table; a type the table lacks leaves the price unknown and
  the candidate out of the choice (never a guessed price).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SCHEMA_VERSION = 1


def _per_million(usd_per_hour: float | None, tokens_per_s: float | None) -> float | None:
    if usd_per_hour is None or not tokens_per_s:
        return None
    return usd_per_hour / (tokens_per_s * 3600.0) * 1e6


def candidate_row(
    candidate: Mapping[str, Any],
    metrics: Mapping[str, Any] | None,
    usd_per_hour: float | None,
    failure: str = "",
    required_rps: float = 0.0,
    required_tokens_per_s: float = 0.0,
    top_rate: float | None = None,
) -> dict[str, Any]:
    """One candidate's figures. `metrics` None (with `failure` the reason) when its deploy
    or its load test did not end with a sweep; `usd_per_hour` for all its replicas;
    `top_rate`: the sweep's highest offered rate (a knee there is a lower bound)."""
    replicas = int(candidate.get("replicas", 1))
    row: dict[str, Any] = {
        "candidate": dict(candidate),
        "usd_per_hour": usd_per_hour,
        "outcome": "failed" if metrics is None else "measured",
        "reason": failure if metrics is None else "",
        "knee_rps": None,
        "output_tokens_per_s": None,
        "usd_per_million_output_tokens": None,
        "replicas_needed": None,
        "usd_per_hour_needed": None,
        "meets": False,
        "knee_capped": False,
    }
    if metrics is None:
        return row
    knee = metrics.get("knee_rps")
    tokens = metrics.get("knee_output_tokens_per_s")
    row.update(knee_rps=knee, output_tokens_per_s=tokens)
    row["knee_capped"] = knee is not None and top_rate is not None and knee >= top_rate
    row["usd_per_million_output_tokens"] = _per_million(usd_per_hour, tokens)
    if not knee:
        row["reason"] = "no offered rate met every SLO"
        return row
    needed = replicas
    if required_rps > 0:
        needed = max(needed, math.ceil(required_rps / (knee / replicas) - 1e-9))
    if required_tokens_per_s > 0:
        if not tokens:
            row["reason"] = "no output tokens/s measured at the knee"
            return row
        needed = max(needed, math.ceil(required_tokens_per_s / (tokens / replicas) - 1e-9))
    row["replicas_needed"] = needed
    if usd_per_hour is not None:
        row["usd_per_hour_needed"] = usd_per_hour / replicas * needed
    row["meets"] = True
    return row


def recommend(
    rows: list[dict[str, Any]], required_rps: float = 0.0, required_tokens_per_s: float = 0.0
) -> dict[str, Any]:
    """The choice over candidate_row()s: the lowest hourly price at the required rate, or,
    with no required rate, the lowest price per million output tokens at the knee."""
    priced = [r for r in rows if r["meets"] and r["usd_per_hour_needed"] is not None]
    required = required_rps > 0 or required_tokens_per_s > 0
    if required:
        best = min(
            priced, key=lambda r: (r["usd_per_hour_needed"], r["replicas_needed"]), default=None
        )
        by = "usd_per_hour_needed"
    else:
        priced = [r for r in priced if r["usd_per_million_output_tokens"] is not None]
        best = min(priced, key=lambda r: r["usd_per_million_output_tokens"], default=None)
        by = "usd_per_million_output_tokens"
    if best is None:
        if not any(r["meets"] for r in rows):
            why = "no candidate met the SLO at any offered rate"
        else:
            why = "no candidate that met the SLO has a price in the run's price table"
    else:
        why = ""
    return {
        "schema_version": SCHEMA_VERSION,
        "required_rps": required_rps or None,
        "required_output_tokens_per_s": required_tokens_per_s or None,
        "chosen_by": by,
        "recommended": best["candidate"] if best else None,
        "replicas": best["replicas_needed"] if best else None,
        "usd_per_hour": best["usd_per_hour_needed"] if best else None,
        "reason": why,
        "candidates": rows,
    }


def recommend_run(
    *,
    candidates: list[dict[str, Any]],
    run_label: str,
    history: str,
    prices: Mapping[str, Any],
    required_rps: float = 0.0,
    required_tokens_per_s: float = 0.0,
    sweep_rates: str = "",
    log=lambda line: print(line, flush=True),
) -> dict[str, Any]:
    """The recommendation over this run's candidates, from the history entries their
    branches recorded (run id `<run label>-<candidate key>`). A candidate without an entry
    did not get through its deploy and sweep: its branch's task log says why."""
    from components.cost import hourly_price
    from components.runtime.candidate_labels import candidate_run_id, describe, key
    from history.store import open_store
    from loadtests.plan import parse_rates

    top = max(parse_rates(sweep_rates)) if sweep_rates else None
    listing = open_store(history).list()
    by_run = {e.record.run_id: e for e in listing.entries}
    rows = []
    for candidate in candidates:
        entry = by_run.get(candidate_run_id(run_label, candidate))
        per_replica, why_no_price = hourly_price(candidate, prices)
        usd = per_replica * int(candidate.get("replicas", 1)) if per_replica is not None else None
        row = candidate_row(
            candidate,
            entry.metrics if entry else None,
            usd,
            failure="no result: its deploy or its load test failed (see that branch's tasks)",
            required_rps=required_rps,
            required_tokens_per_s=required_tokens_per_s,
            top_rate=top,
        )
        row["key"] = key(candidate)
        row["description"] = describe(candidate)
        row["price_note"] = why_no_price
        rows.append(row)
        log(
            f"candidate {row['description']}: {row['outcome']}, knee {row['knee_rps']}, "
            f"{row['usd_per_hour']} USD/h {row['reason']}"
        )
    result = recommend(rows, required_rps, required_tokens_per_s)
    result["run_label"] = run_label
    return result
