"""Input checks that run before anything is created: fail fast and cheap."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
# Regions end in one or two digits: us-central1, europe-west10.
_LOCATION = re.compile(r"^[a-z]+-[a-z]+[0-9]{1,2}$")
_SERVICE_ACCOUNT = re.compile(
    r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.iam\.gserviceaccount\.com$"
)
_KMS_KEY = re.compile(r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$")
_ACCELERATOR = re.compile(r"^(NVIDIA_[A-Z0-9_]+|TPU_[A-Z0-9_]+)?$")
_MACHINE_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")

# Sane maxima: far beyond any real test, small enough that a typo fails here and not
# after a paid endpoint was created. `--help` states them.
LIMITS = {
    "users": 10_000,
    "spawn_rate": 10_000.0,
    "duration_s": 24 * 3600,
    "processes": 256,
    "max_new_tokens": 4096,
    "slo_p95_ms": 3_600_000.0,
    "min_rps": 1_000_000.0,
    "rate": 1_000_000.0,
    "timeout_s": 24 * 3600,
    "replicas": 1000,
    "accelerator_count": 16,
}


class InputError(ValueError):
    """A user input that would fail later, after resources were created."""


def check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def within(value: float, low: float, high: float, what: str, low_open: bool = False) -> None:
    """A finite number in [low, high] (or (low, high] with `low_open`)."""
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    bound = f"({low:g}" if low_open else f"[{low:g}"
    check(ok, f"{what} must be a finite number within {bound}, {high:g}], got {value!r}")


def output_dir(value: str) -> Path:
    """A writable directory, or a new one whose parent is a writable directory."""
    path = Path(value)
    if path.exists():
        check(path.is_dir(), f"--output-dir {value!r} is not a directory")
        check(os.access(path, os.W_OK | os.X_OK), f"--output-dir {value!r} is not writable")
        return path
    parent = path.absolute().parent
    check(
        parent.is_dir(),
        f"--output-dir {value!r}: its parent {str(parent)!r} does not exist "
        "(only the last folder is created)",
    )
    check(os.access(parent, os.W_OK | os.X_OK), f"--output-dir {value!r}: cannot create it")
    return path


def _id_rule(value: str, lo: int, hi: int, chars: str, allowed: str) -> str:
    """The first rule a Google-style ID breaks (length, characters, first, last), or ''."""
    if not lo <= len(value) <= hi:
        return f"must be {lo} to {hi} characters long, not {len(value)}"
    bad = sorted({c for c in value if c not in chars})
    if bad:
        return f"may contain only {allowed}, not {''.join(bad)!r}"
    if not value[0].isalpha() or not value[0].islower():
        return "must start with a lowercase letter"
    if value.endswith("-"):
        return "must not end with '-'"
    return ""


_LOWER_DIGITS_DASH = "abcdefghijklmnopqrstuvwxyz0123456789-"


def _project_rule(value: str) -> str:
    return _id_rule(value, 6, 30, _LOWER_DIGITS_DASH, "lowercase letters, digits and '-'")


def project(value: str) -> str:
    rule = _project_rule(value)
    check(not rule, f"invalid project id {value!r}: a project ID {rule}")
    return value


def location(value: str) -> str:
    check(
        bool(_LOCATION.match(value)),
        f"invalid location {value!r}: a region is lowercase words joined by '-' ending in one "
        "or two digits (e.g. us-central1, europe-west10)",
    )
    return value


def model_resource(value: str) -> str:
    parts = value.split("/")
    names = ("projects", "locations", "models")
    if len(parts) != 6 or tuple(parts[0::2]) != names:
        rule = "expected projects/P/locations/L/models/ID, six parts joined by '/'"
    else:
        empty = [names[i] for i, part in enumerate(parts[1::2]) if not part]
        rule = f"the {', '.join(empty)} part is empty" if empty else ""
    check(not rule, f"invalid model {value!r}: {rule}")
    return value


def _bucket_rule(bucket: str) -> str:
    """Cloud Storage bucket naming: 3-63 characters (222 with dots, 63 between them),
    lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit."""
    if "." in bucket:
        if len(bucket) > 222 or any(not 1 <= len(c) <= 63 for c in bucket.split(".")):
            return "a bucket name with dots is at most 222 characters, at most 63 between dots"
    elif not 3 <= len(bucket) <= 63:
        return f"a bucket name is 3 to 63 characters long, not {len(bucket)}"
    bad = sorted({c for c in bucket if c not in _LOWER_DIGITS_DASH + "_."})
    if bad:
        allowed = "lowercase letters, digits, '-', '_' and '.'"
        return f"a bucket name has only {allowed}, not {''.join(bad)!r}"
    if not (bucket[0].isalnum() and bucket[-1].isalnum()):
        return "a bucket name starts and ends with a letter or digit"
    return ""


def gcs_uri(value: str, what: str) -> str:
    if not value.startswith("gs://") or not value[5:].split("/", 1)[0]:
        rule = "expected gs://BUCKET/PATH"
    else:
        rule = _bucket_rule(value[5:].split("/", 1)[0])
    check(not rule, f"invalid {what} {value!r}: {rule}")
    return value


def service_account(value: str) -> str:
    name, at, domain = value.partition("@")
    suffix = ".iam.gserviceaccount.com"
    if not at or not name or not domain.endswith(suffix) or len(domain) == len(suffix):
        rule = "expected NAME@PROJECT.iam.gserviceaccount.com"
    else:
        rule = _id_rule(name, 6, 30, _LOWER_DIGITS_DASH, "lowercase letters, digits and '-'")
        rule = f"the account name {name!r} {rule}" if rule else ""
        project_part = domain[: -len(suffix)]
        if not rule and not _SERVICE_ACCOUNT.match(value):
            rule = (
                f"the project part {project_part!r} may contain only lowercase letters, "
                "digits, '-' and '.'"
            )
    check(not rule, f"invalid service account {value!r}: {rule}")
    return value


def kms_key(value: str) -> str:
    """An empty string (Google-managed keys) or a Cloud KMS key name."""
    check(
        not value or bool(_KMS_KEY.match(value)),
        f"invalid KMS key {value!r}: expected projects/P/locations/L/keyRings/R/cryptoKeys/K, "
        "each part non-empty and without '/'",
    )
    return value


def accelerator(kind: str, count: int) -> None:
    check(
        bool(_ACCELERATOR.match(kind)),
        f"invalid accelerator type {kind!r}: NVIDIA_… or TPU_… in capitals, digits and '_' "
        "(e.g. NVIDIA_TESLA_T4)",
    )
    within(count, 0, LIMITS["accelerator_count"], "accelerator count")
    check(bool(kind) == (count > 0), "give an accelerator type and a count > 0 together")


def replicas(min_count: int, max_count: int) -> None:
    within(min_count, 1, LIMITS["replicas"], "min replicas")
    within(max_count, 1, LIMITS["replicas"], "max replicas")
    check(max_count >= min_count, "max replicas must be >= min replicas")


def load(users: int, spawn_rate: float, duration: str, processes: int) -> None:
    from components.runtime.load_test import parse_duration

    within(users, 1, LIMITS["users"], "users")
    within(spawn_rate, 0, LIMITS["spawn_rate"], "spawn rate", low_open=True)
    check(
        processes == -1 or 1 <= processes <= LIMITS["processes"],
        f"processes must be within [1, {LIMITS['processes']}], or -1 for one per core",
    )
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    check(
        seconds <= LIMITS["duration_s"],
        f"duration {duration!r} is longer than the maximum of {LIMITS['duration_s'] // 3600} h",
    )


def slo(p95_ms: float, max_failure_ratio: float, min_rps: float) -> None:
    within(p95_ms, 0, LIMITS["slo_p95_ms"], "the p95 latency SLO (ms)", low_open=True)
    within(max_failure_ratio, 0, 1, "the maximum failure ratio")
    within(min_rps, 0, LIMITS["min_rps"], "the minimum requests/s")


def history(uri: str, regression: str, trigger: str, template: str) -> None:
    from history.recorder import check_choices
    from history.store import StoreError, check_uri

    check(len(uri) <= 1024, "the history URI is longer than 1024 characters")
    check(
        len(template) <= 128 and template.isprintable(),
        "the template must be at most 128 printable characters",
    )
    try:
        check_choices(regression, trigger)
        if uri:
            check_uri(uri)  # the URI's shape only; nothing is read yet
    except (ValueError, StoreError) as exc:
        raise InputError(str(exc)) from None


def pipeline_parameters(params: dict) -> None:
    """Check the deploy, load, SLO and label parameters of one run (see pipeline.DEFAULTS)."""
    from components.cost import validate_prices
    from components.runtime.make_labels import validate_labels
    from pipelines.pipeline import DEFAULTS

    unknown = set(params) - set(DEFAULTS)
    check(not unknown, f"unknown pipeline parameter(s): {', '.join(sorted(unknown))}")
    p = {**DEFAULTS, **params}
    check(
        bool(_MACHINE_TYPE.match(str(p["machine_type"]))),
        f"invalid machine type {p['machine_type']!r}: lowercase letters, digits and '-', "
        "starting with a letter, at most 63 characters (e.g. n1-standard-8)",
    )
    accelerator(p["accelerator_type"], int(p["accelerator_count"]))
    replicas(int(p["min_replicas"]), int(p["max_replicas"]))
    load(int(p["users"]), float(p["spawn_rate"]), p["duration"], int(p["processes"]))
    slo(float(p["slo_p95_ms"]), float(p["max_failure_ratio"]), float(p["min_rps"]))
    within(int(p["max_new_tokens"]), 1, LIMITS["max_new_tokens"], "max new tokens")
    within(int(p["deploy_timeout_s"]), 0, LIMITS["timeout_s"], "the deploy timeout (s)", True)
    within(int(p["cleanup_timeout_s"]), 0, LIMITS["timeout_s"], "the clean-up timeout (s)", True)
    history(str(p["history"]), p["regression"], p["trigger"], str(p["template"]))
    notify(p)
    load_shape(p)
    correctness(p)
    workload(p)
    rightsize(p)
    try:
        validate_labels(p["cost_labels"])
        validate_prices(p["prices"])
    except ValueError as exc:
        raise InputError(str(exc)) from None


DRIFT_MODES = ("fail", "warn", "off")


def correctness(p: dict) -> None:
    """The correctness phase's parameters (correctness/phase.py). The expectations file's
    lines are checked where it is read (`read_expectations`), by the commands."""
    check(
        isinstance(p["reference_model"], str) and bool(p["reference_model"].strip()),
        "the reference model must be artifact, none, a folder or gs://BUCKET/PATH",
    )
    within(int(p["parity_tokens"]), 1, 1024, "--parity-tokens")
    within(float(p["min_parity"]), 0, 1, "--min-parity")
    within(float(p["min_expect_pass"]), 0, 1, "--min-expect-pass")
    within(float(p["reference_max_mb"]), 0, 1_000_000, "--reference-max-mb", True)
    check(
        p["correctness_drift"] in DRIFT_MODES,
        f"--correctness-drift must be one of {', '.join(DRIFT_MODES)}, got "
        f"{p['correctness_drift']!r}",
    )


def correctness_files(p: dict, local: bool) -> dict:
    """The reference model and expectations, checked before anything is created; returns
    the parameters with local paths made absolute (the pipeline's tasks run elsewhere).

    `local` (deploytest run): local paths are read here, the expectations' every line
    parsed. On Vertex (`submit`) both must be gs:// (or artifact/none); a gs:// file is read
    and its lines checked by the `reference answers` task, before the deploy.
    """
    from correctness.expectations import ExpectationError, read_expectations
    from correctness.files import InputError as FileError

    p = dict(p)
    reference = str(p["reference_model"]).strip()
    if reference not in ("artifact", "none") and not reference.startswith("gs://"):
        check(local, f"--reference-model {reference!r}: on Vertex AI give gs://BUCKET/PATH, "
              "artifact or none")  # fmt: skip
        folder = Path(reference)
        check(
            (folder / "config.json").is_file(),
            f"--reference-model {reference}: not a transformers model folder (no config.json)",
        )
        p["reference_model"] = str(folder.resolve())
    if reference.startswith("gs://"):
        gcs_uri(reference, "reference model")
    expectations = str(p["expectations"]).strip()
    if expectations.startswith("gs://"):  # read by the reference task, through its storage
        gcs_uri(expectations, "expectations")
        return p
    if expectations:
        check(local, f"--expect {expectations!r}: on Vertex AI give gs://BUCKET/PATH")
        p["expectations"] = str(Path(expectations).resolve())
    if expectations:
        try:
            read_expectations(p["expectations"])
        except (ExpectationError, FileError) as exc:
            raise InputError(f"--expect: {exc}") from None
    return p


def workload(p: dict) -> None:
    """The workload's spec (its dataset is checked by `workload_files`)."""
    from loadtests.workload import WorkloadError, check_api, parse_workload_json

    text = str(p["workload"])
    check(len(text) <= 64 * 1024, "the workload spec is over 64 KiB")
    if not text:
        return
    try:
        spec = parse_workload_json(text)
        if p["api"] != "auto":
            check_api(spec, p["api"])
    except WorkloadError as exc:
        raise InputError(f"--workload: {exc}") from None


def workload_files(p: dict, local: bool, context_tokens: int | None = None) -> dict:
    """The workload's dataset, checked before anything is created (the parameters back with
    a local dataset path made absolute), and its lengths against the model's context when
    known. `local` (deploytest run): the dataset is read and every line parsed here; on
    Vertex (`submit`) it must be gs:// and the load-test task reads it."""
    import json

    from loadtests.workload import (
        Dataset,
        WorkloadError,
        check_context,
        parse_workload_json,
        read_dataset,
    )

    if not p.get("workload"):
        return p
    spec = parse_workload_json(p["workload"])
    try:
        check_context(spec, context_tokens)
        if spec.dataset is None:
            return p
        path = spec.dataset.path
        if path.startswith("gs://"):
            gcs_uri(path, "workload dataset")
            return p
        check(local, f"--workload: dataset {path!r}: on Vertex AI give gs://BUCKET/PATH")
        read_dataset(path, spec.dataset.format)
    except WorkloadError as exc:
        raise InputError(f"--workload: {exc}") from None
    resolved = str(Path(path).resolve())
    import dataclasses

    spec = dataclasses.replace(spec, dataset=Dataset(resolved, spec.dataset.format))
    return {**p, "workload": json.dumps(spec.to_spec(), sort_keys=True)}


def notify(p: dict) -> None:
    """The run-end message's destinations (components/runtime/notify.py), each '' = none."""
    from components.runtime.notify import MAX_TIMEOUT_S, SECRET_VERSION, TOPIC, webhook_rule

    url = str(p["notify_webhook"])
    rule = webhook_rule(url) if url else ""
    check(not rule, f"invalid --notify {url!r}: {rule}")
    topic = str(p["notify_topic"])
    check(
        not topic or bool(TOPIC.match(topic)),
        f"invalid --notify-topic {topic!r}: expected projects/PROJECT/topics/TOPIC, the project "
        "6-30 characters of lowercase letters, digits and '-', the topic 3-255 characters "
        "starting with a letter",
    )
    secret = str(p["notify_webhook_secret"])
    check(
        not secret or bool(SECRET_VERSION.match(secret)),
        f"invalid --notify-secret {secret!r}: expected projects/P/secrets/S/versions/V",
    )
    within(float(p["notify_timeout_s"]), 0, MAX_TIMEOUT_S, "--notify-timeout-s", True)


_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
MAX_EMAILS = 10  # our bound, not a documented Vertex AI limit


def notify_emails(emails: list[str]) -> None:
    """Recipients of GCPC's VertexNotificationEmailOp (compiled in, Vertex AI only)."""
    check(len(emails) <= MAX_EMAILS, f"at most {MAX_EMAILS} --notify-email, got {len(emails)}")
    for email in emails:
        check(bool(_EMAIL.match(email)), f"invalid --notify-email {email!r}: expected NAME@DOMAIN")


def load_shape(p: dict) -> None:
    """Streaming, goodput targets, load shape and extra gate checks (components/load_options.py).

    A rate of 0 means "unset" in the pipeline parameters; the CLI refuses an explicit 0.
    """
    from components.metrics_schema import parse_check

    check(float(p["rate"]) >= 0, f"--rate must be > 0 requests/s, got {p['rate']:g}")
    within(float(p["rate"]), 0, LIMITS["rate"], "the rate (requests/s)")
    within(int(p["max_concurrency"]), 1, LIMITS["users"], "max concurrency")
    within(float(p["stage_s"]), 0, LIMITS["duration_s"], "the stage length (s)", True)
    for name in ("slo_ttft_ms", "slo_tpot_ms"):
        within(float(p[name]), 0, LIMITS["slo_p95_ms"], name.replace("_", " "))
    try:
        options_from_parameters(p).validate(int(p["processes"]))
        for spec in p["slo_checks"]:
            parse_check(spec)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def rightsize(p: dict) -> None:
    """Candidates (pipelines/candidates.py) need a sweep to find each knee, an SLO to find
    it against, and a history where every branch records what it measured."""
    from pipelines.candidates import check_candidates

    candidates = check_candidates(p["candidates"])
    within(float(p["required_rps"]), 0, LIMITS["rate"], "the required requests/s")
    within(float(p["required_tokens_per_s"]), 0, LIMITS["rate"], "the required tokens/s")
    if not candidates:
        check(
            not float(p["required_rps"]) and not float(p["required_tokens_per_s"]),
            "a required rate chooses between candidates: give two or more --candidate",
        )
        return
    check(
        p["load_shape"] == "sweep",
        "right-sizing sweeps each candidate to its knee: give --load-shape sweep (with "
        f"--sweep-rates), not {p['load_shape']!r}",
    )
    check(
        bool(p["history"]),
        "right-sizing keeps each candidate's result in the run history: give --history",
    )


def options_from_parameters(p: dict):
    """The LoadOptions that pipeline parameters (0 = unset) stand for."""
    from components.load_options import LoadOptions

    rate = float(p["rate"])
    return LoadOptions(
        stream=bool(p["stream"]),
        load_shape=p["load_shape"],
        rate=rate if rate != 0 else None,
        max_concurrency=int(p["max_concurrency"]),
        steps=p["steps"],
        sweep_rates=p["sweep_rates"],
        stage_s=float(p["stage_s"]),
        slo_ttft_ms=float(p["slo_ttft_ms"]) or None,
        slo_tpot_ms=float(p["slo_tpot_ms"]) or None,
        slo_p95_ms=float(p["slo_p95_ms"]) or None,
        max_failure_ratio=float(p["max_failure_ratio"]),
        api=str(p["api"]),
    )


def key_values(pairs: list[str], what: str) -> dict[str, str]:
    """Parse repeated `k=v` options."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        check(bool(sep) and bool(key), f"invalid {what} {pair!r}: expected KEY=VALUE")
        out[key] = value
    return out
