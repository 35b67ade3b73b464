"""Synthetic run histories with known change points, for the verdict tests and the power test.

A run is drawn as: a latency scale L (run-to-run noise `cv`), 400 requests with log-normal
response times around L bucketed as Locust buckets them (10 ms below 1 s), percentiles from
those requests, throughput inversely proportional to L with its own noise.
"""

from __future__ import annotations

import datetime

import numpy as np

from history.records import RunRecord, Series
from history.store import Entry, entry_name

SERIES = Series(
    model_display_name="synthetic-model",
    machine_type="n1-standard-4",
    accelerator_type="",
    accelerator_count=0,
    min_replicas=1,
    max_replicas=1,
    users=8,
    spawn_rate=8.0,
    duration="20s",
    max_new_tokens=16,
    prompt_set="default",
)
START = datetime.datetime(2026, 11, 1, 2, 0, tzinfo=datetime.UTC)


def make_run(i: int, rng, slowdown: float = 1.0, cv: float = 0.05, series: Series = SERIES):
    """(record, metrics, response_times) of synthetic run number i."""
    scale = 200.0 * slowdown * (1 + cv * rng.standard_normal())
    n = 400
    times = scale * rng.lognormal(0.0, 0.35, n)
    buckets = np.where(times < 100, np.round(times), np.round(times, -1))
    keys, counts = np.unique(buckets, return_counts=True)
    histogram = {float(k): int(c) for k, c in zip(keys, counts, strict=True)}
    p50, p95, p99 = (float(np.percentile(buckets, q)) for q in (50, 95, 99))
    rps = 8000.0 / (scale * (1 + cv * rng.standard_normal()))
    failures = int(rng.binomial(n, 0.001))
    metrics = {
        "schema_version": 1,
        "requests": n,
        "failures": failures,
        "failure_ratio": failures / n,
        "rps": rps,
        "p50_ms": p50,
        "p90_ms": float(np.percentile(buckets, 90)),
        "p95_ms": p95,
        "p99_ms": p99,
        "output_tokens_per_s": rps * 16,
    }
    record = RunRecord(
        run_id=f"synthetic-{i:04d}",
        started_at=(START + datetime.timedelta(days=i)).isoformat(),
        pipeline_job=f"projects/p/locations/us-central1/pipelineJobs/synthetic-{i:04d}",
        model_resource="projects/p/locations/us-central1/models/1",
        model_version="1",
        model_display_name=series.model_display_name,
        template="synthetic",
        trigger="schedule",
        series=series,
    )
    return record, metrics, histogram


def make_entry(i: int, rng, **kwargs) -> Entry:
    record, metrics, histogram = make_run(i, rng, **kwargs)
    return Entry(entry_name(record), record, metrics, histogram)


def history(n: int, rng, step_at: int | None = None, step: float = 1.25, **kwargs) -> list[Entry]:
    """n runs, slowed by `step` from run `step_at` on."""
    return [
        make_entry(i, rng, slowdown=step if step_at is not None and i >= step_at else 1.0, **kwargs)
        for i in range(n)
    ]
