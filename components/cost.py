"""What a run cost: replica-seconds from the operations' own timestamps times an hourly price.

Billed, per model that was deployed when clean-up came: from the start of its deploy
operation to the end of the endpoint's delete operation, times its minimum replica count,
times the hourly price of its machine type plus its accelerators (`prices.json`, its
source and date written in it; overridable per type). An endpoint with no deployed model
costs nothing: Vertex AI bills deployed nodes ("You pay for each model deployed to an
endpoint ... Models that are not deployed or have failed to deploy are not charged",
cloud.google.com/vertex-ai/pricing); its lifetime is still reported. A deploy cancelled in
flight is counted as not deployed: Google does not document whether nodes provisioned
for it are billed. Autoscaling above the minimum is not seen here (an underestimate).

The real figure is in the Cloud Billing export: see `infra/README.md`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

BASIS = (
    "replica-seconds from the start of each deploy to the end of the endpoint's delete, at "
    "the minimum replica count, times the hourly price of machine plus accelerators; "
    "endpoints without a deployed model are not billed"
)


def load_price_table() -> dict[str, Any]:
    """The price table shipped with the package (`components/prices.json`)."""
    return json.loads(resources.files("components").joinpath("prices.json").read_text())


def validate_prices(prices: Mapping[str, Any]) -> dict[str, float]:
    """Price overrides `{TYPE: USD per hour}` as floats; ValueError naming every bad one."""
    out, bad = {}, []
    for key, value in prices.items():
        try:
            price = float(value)
        except (TypeError, ValueError):
            price = math.nan
        if not key or not math.isfinite(price) or price < 0:
            bad.append(f"{key}={value}")
        else:
            out[key] = price
    if bad:
        raise ValueError(
            "invalid prices (TYPE=USD per hour, a number >= 0): " + ", ".join(sorted(bad))
        )
    return out


def _hourly(item: Mapping[str, Any], table: Mapping, overrides: Mapping) -> tuple[float, str]:
    """USD per replica-hour for a deployed model, or (nan, why not)."""
    machine, accelerator = item.get("machine_type", ""), item.get("accelerator_type", "")
    count = int(item.get("accelerator_count") or 0)
    prices = {**table.get("machine_types", {}), **table.get("accelerators", {}), **overrides}
    missing = [t for t in (machine, accelerator if count else "") if t and t not in prices]
    if not machine:
        return math.nan, "the deployed model names no machine type"
    if missing:
        return math.nan, f"no price for {' and '.join(missing)} in the price table"
    if count and not accelerator:
        return math.nan, f"{count} accelerator(s) of no named type"
    return prices[machine] + (prices[accelerator] * count if count else 0.0), ""


def hourly_price(
    item: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, table=None
) -> tuple[float | None, str]:
    """USD per replica-hour of `{machine_type, accelerator_type, accelerator_count}` from
    the price table and the overrides, or (None, why not)."""
    table = table if table is not None else load_price_table()
    hourly, why = _hourly(item, table, validate_prices(overrides or {}))
    return (None, why) if why else (hourly, "")


def run_cost(
    cleanup: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    output_tokens: int | None = None,
    table: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's cost from a clean-up record (`CleanupRecord` as a dict).

    Returns a dict: `status` ("known" or "unknown"), `reason` (why unknown), `usd`,
    `billed_replica_seconds`, `endpoint_seconds`, `usd_per_1k_output_tokens`, one `items`
    entry per billed model, the price table's source and date, and the pipeline run's
    billing id where Vertex labelled the endpoint with one.
    """
    table = table if table is not None else load_price_table()
    overrides = validate_prices(overrides or {})
    items, reasons = [], []
    endpoint_seconds = 0.0
    billing_ids = {cleanup["billing_id"]} if cleanup.get("billing_id") else set()
    for endpoint in cleanup.get("endpoints", []):
        if endpoint.get("billing_id"):
            billing_ids.add(endpoint["billing_id"])
        created, deleted = endpoint.get("created_at"), endpoint.get("deleted_at")
        if created and deleted:
            endpoint_seconds += max(0.0, deleted - created)
        for model in endpoint.get("deployed", []):
            item = {"endpoint": endpoint["name"], **model}
            start = model.get("deploy_started_at")
            hourly, why = _hourly(model, table, overrides)
            if not deleted:
                why = why or "the endpoint was not deleted: it is still billed"
            elif not start:
                why = why or "no start time for the deploy"
            seconds = max(0.0, deleted - start) if deleted and start else math.nan
            replicas = max(1, int(model.get("min_replicas") or 1))
            item.update(
                seconds=_num(seconds),
                replicas=replicas,
                usd_per_hour=_num(hourly),
                usd=_num(seconds * replicas * hourly / 3600),
            )
            if why:
                item["reason"] = why
                reasons.append(f"{model.get('id', '?')}: {why}")
            items.append(item)
    billed = sum(i["seconds"] * i["replicas"] for i in items if i["seconds"] is not None)
    usd = None if reasons else round(sum(i["usd"] for i in items), 6)
    per_1k = None
    if usd is not None and output_tokens:
        per_1k = round(usd / output_tokens * 1000, 9)
    return {
        "status": "unknown" if reasons else "known",
        "reason": "; ".join(reasons),
        "usd": usd,
        "billed_replica_seconds": round(billed, 3),
        "endpoint_seconds": round(endpoint_seconds, 3),
        "output_tokens": output_tokens,
        "usd_per_1k_output_tokens": per_1k,
        "items": items,
        "basis": BASIS,
        "price_table": {
            k: table.get(k) for k in ("source", "date", "verified", "currency", "region")
        },
        "price_overrides": overrides,
        "billing_id": ",".join(sorted(billing_ids)),
    }


def billing_id_from_environment() -> str:
    """The run's billing id from the labels Vertex AI Pipelines gives a task's container
    (`VERTEX_AI_PIPELINES_RUN_LABELS`, JSON; read the same way by GCPC's launchers,
    `gcp_labels_util.attach_system_labels`); empty outside Vertex."""
    import os

    from components.runtime.make_labels import BILLING_LABEL_KEY

    try:
        labels = json.loads(os.environ.get("VERTEX_AI_PIPELINES_RUN_LABELS", "{}"))
        return str(labels.get(BILLING_LABEL_KEY, "")) if isinstance(labels, dict) else ""
    except json.JSONDecodeError:
        return ""


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 6)


def describe(cost: Mapping[str, Any]) -> str:
    """One line for the printed summary."""
    lifetime = f"endpoint(s) lived {cost['endpoint_seconds']:.1f} s"
    if cost["status"] != "known":
        return f"unknown ({cost['reason']}); {lifetime}"
    if not cost["items"]:
        return f"$0.00: no model was deployed, and Vertex AI bills deployed nodes only; {lifetime}"
    text = f"${cost['usd']:.4f} for {cost['billed_replica_seconds']:.1f} replica-seconds"
    if cost.get("usd_per_1k_output_tokens") is not None:
        text += f", ${cost['usd_per_1k_output_tokens']:.6f} per 1,000 output tokens"
    table = cost["price_table"]
    checked = "" if table.get("verified") else ", unverified"
    return f"{text} (prices of {table.get('date')}{checked}); {lifetime}"
