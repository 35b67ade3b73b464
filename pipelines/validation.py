"""Input checks that run before anything is created: fail fast and cheap."""

from __future__ import annotations

import re

_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_LOCATION = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
_MODEL = re.compile(r"^projects/[^/]+/locations/[^/]+/models/[^/]+$")
_GCS = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$")
_SERVICE_ACCOUNT = re.compile(
    r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$"
)
_ACCELERATOR = re.compile(r"^(NVIDIA_[A-Z0-9_]+|TPU_[A-Z0-9_]+)?$")


class InputError(ValueError):
    """A user input that would fail later, after resources were created."""


def check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def project(value: str) -> str:
    check(bool(_PROJECT.match(value)), f"invalid project id {value!r}")
    return value


def location(value: str) -> str:
    check(bool(_LOCATION.match(value)), f"invalid location {value!r} (e.g. us-central1)")
    return value


def model_resource(value: str) -> str:
    check(
        bool(_MODEL.match(value)),
        f"invalid model {value!r}: expected projects/P/locations/L/models/ID",
    )
    return value


def gcs_uri(value: str, what: str) -> str:
    check(bool(_GCS.match(value)), f"invalid {what} {value!r}: expected gs://BUCKET/PATH")
    return value


def service_account(value: str) -> str:
    check(
        bool(_SERVICE_ACCOUNT.match(value)),
        f"invalid service account {value!r}: expected NAME@PROJECT.iam.gserviceaccount.com",
    )
    return value


def accelerator(kind: str, count: int) -> None:
    check(bool(_ACCELERATOR.match(kind)), f"invalid accelerator type {kind!r}")
    check(count >= 0, "accelerator count must be >= 0")
    check(bool(kind) == (count > 0), "give an accelerator type and a count > 0 together")


def replicas(min_count: int, max_count: int) -> None:
    check(min_count >= 1, "min replicas must be >= 1")
    check(max_count >= min_count, "max replicas must be >= min replicas")


def load(users: int, spawn_rate: float, duration: str, processes: int) -> None:
    from components.locust_run import parse_duration

    check(users >= 1, "users must be >= 1")
    check(spawn_rate > 0, "spawn rate must be > 0")
    check(processes == -1 or processes >= 1, "processes must be >= 1, or -1 for one per core")
    try:
        parse_duration(duration)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def slo(p95_ms: float, max_failure_ratio: float, min_rps: float) -> None:
    check(p95_ms > 0, "the p95 latency SLO must be > 0 ms")
    check(0 <= max_failure_ratio <= 1, "the maximum failure ratio must be within [0, 1]")
    check(min_rps >= 0, "the minimum requests/s must be >= 0")


def pipeline_parameters(params: dict) -> None:
    """Check the deploy, load, SLO and label parameters of one run (see pipeline.DEFAULTS)."""
    from components.labels import validate_labels
    from pipelines.pipeline import DEFAULTS

    unknown = set(params) - set(DEFAULTS)
    check(not unknown, f"unknown pipeline parameter(s): {', '.join(sorted(unknown))}")
    p = {**DEFAULTS, **params}
    accelerator(p["accelerator_type"], int(p["accelerator_count"]))
    replicas(int(p["min_replicas"]), int(p["max_replicas"]))
    load(int(p["users"]), float(p["spawn_rate"]), p["duration"], int(p["processes"]))
    slo(float(p["slo_p95_ms"]), float(p["max_failure_ratio"]), float(p["min_rps"]))
    try:
        validate_labels(p["cost_labels"])
    except ValueError as exc:
        raise InputError(str(exc)) from None


def key_values(pairs: list[str], what: str) -> dict[str, str]:
    """Parse repeated `k=v` options."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        check(bool(sep) and bool(key), f"invalid {what} {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out
