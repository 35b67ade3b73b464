"""`run.json`: who ran what, when, and the series a run belongs to.

A run record sits beside `metrics.json` in every run folder and in every history entry. Runs are
compared only within one series: same model display name, machine, accelerators, replicas and
load shape (see SERIES_FIELDS). Plain Python (no KFP) so the gate component, the CLI and the
local runner share one definition. Bump SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

SCHEMA_VERSION = 1
RUN_JSON = "run.json"
METRICS_JSON = "metrics.json"
TRIGGERS = ("manual", "merge", "model-upload", "schedule")

# The fields that make two runs comparable. Anything else (run id, time, template) may differ.
SERIES_FIELDS = (
    "model_display_name",
    "machine_type",
    "accelerator_type",
    "accelerator_count",
    "min_replicas",
    "max_replicas",
    "users",
    "spawn_rate",
    "duration",
    "max_new_tokens",
    "prompt_set",
    "load_shape",
    "workload",
)
# Absent from run.json files written before them (read as their default).
OPTIONAL_SERIES_FIELDS = frozenset({"workload"})

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class RecordError(ValueError):
    """run.json does not follow the schema."""


@dataclasses.dataclass(frozen=True)
class Series:
    """The fields that make runs comparable (see SERIES_FIELDS)."""

    model_display_name: str
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    min_replicas: int
    max_replicas: int
    users: int
    spawn_rate: float
    duration: str
    max_new_tokens: int
    prompt_set: str
    load_shape: str = "users"  # closed loop; metrics.json schema 2 names open-loop shapes
    # The workload's identity (loadtests/workload.py `Workload.identity`; "" = the prompts
    # file with max_new_tokens): runs on different workloads never share a series.
    workload: str = ""

    def key(self) -> str:
        """A short stable id of the series (hash of its canonical JSON). An empty workload is
        left out, so the series of runs recorded before workloads keep their keys."""
        fields = dataclasses.asdict(self)
        if not fields["workload"]:
            del fields["workload"]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def describe(self) -> str:
        accel = (
            f"{self.accelerator_count}x{self.accelerator_type}"
            if self.accelerator_type
            else "no GPU"
        )
        return (
            f"{self.model_display_name} on {self.machine_type} ({accel}, "
            f"{self.min_replicas}-{self.max_replicas} replicas), {self.users} users "
            f"@ {self.spawn_rate:g}/s for {self.duration}, {self.max_new_tokens} new tokens, "
            f"prompts {self.prompt_set}, load shape {self.load_shape}"
            + (f", workload {self.workload}" if self.workload else "")
        )


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """The contents of run.json."""

    run_id: str
    started_at: str  # ISO 8601 UTC, e.g. 2026-11-25T20:00:00+00:00
    pipeline_job: str  # the pipeline job's resource name (or the local job id)
    model_resource: str  # projects/P/locations/L/models/ID
    model_version: str
    model_display_name: str
    template: str  # template tag or git commit the pipeline came from ("" if unknown)
    trigger: str  # one of TRIGGERS
    series: Series
    schema_version: int = SCHEMA_VERSION
    # The workload's spec (loadtests/workload.py; None: the prompts file); its identity is
    # in the series. Absent from run.json files written before workloads.
    workload: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        problems = []
        if not _RUN_ID.match(self.run_id or ""):
            problems.append(f"run_id {self.run_id!r} is not a label-safe id")
        try:
            started = parse_time(self.started_at)
            if started.utcoffset() != datetime.timedelta(0):
                problems.append(f"started_at {self.started_at!r} is not UTC")
        except (TypeError, ValueError):
            problems.append(f"started_at {self.started_at!r} is not an ISO 8601 time")
        if self.trigger not in TRIGGERS:
            problems.append(f"trigger {self.trigger!r} is not one of {', '.join(TRIGGERS)}")
        for name in ("pipeline_job", "model_resource", "model_version", "template"):
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name} must be a string")
        if not self.model_display_name:
            problems.append("model_display_name may not be empty")
        s = self.series
        for name in (
            "accelerator_count",
            "min_replicas",
            "max_replicas",
            "users",
            "max_new_tokens",
        ):
            value = getattr(s, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                problems.append(f"series.{name} must be an integer >= 0, got {value!r}")
        if isinstance(s.spawn_rate, bool) or not isinstance(s.spawn_rate, int | float):
            problems.append(f"series.spawn_rate must be a number, got {s.spawn_rate!r}")
        for name in (
            "model_display_name",
            "machine_type",
            "accelerator_type",
            "duration",
            "prompt_set",
            "load_shape",
            "workload",
        ):
            if not isinstance(getattr(s, name), str):
                problems.append(f"series.{name} must be a string")
        if s.model_display_name != self.model_display_name:
            problems.append("series.model_display_name differs from model_display_name")
        if self.schema_version != SCHEMA_VERSION:
            problems.append(f"schema_version {self.schema_version!r} != {SCHEMA_VERSION}")
        if problems:
            raise RecordError("; ".join(problems))

    @property
    def started(self) -> datetime.datetime:
        return parse_time(self.started_at)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["series_key"] = self.series.key()
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        if not isinstance(data, Mapping):
            raise RecordError("run.json must hold a JSON object")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise RecordError(
                f"unsupported run.json schema_version {data.get('schema_version')!r} "
                f"(this code reads {SCHEMA_VERSION})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k != "series_key"}
        missing = sorted(names - fields.keys() - {"workload"})
        unknown = sorted(fields.keys() - names)
        if missing or unknown:
            raise RecordError(f"run.json: missing fields {missing}, unknown fields {unknown}")
        series = fields["series"]
        if not isinstance(series, Mapping) or not (
            set(SERIES_FIELDS) - OPTIONAL_SERIES_FIELDS <= set(series) <= set(SERIES_FIELDS)
        ):
            raise RecordError(f"run.json: series must hold exactly {', '.join(SERIES_FIELDS)}")
        try:
            return cls(**{**fields, "series": Series(**series)})
        except TypeError as exc:
            raise RecordError(f"run.json: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise RecordError(f"run.json is not JSON: {exc}") from None


def parse_time(text: str) -> datetime.datetime:
    """An ISO 8601 timestamp; a trailing Z is read as UTC."""
    if not isinstance(text, str):
        raise TypeError("a timestamp must be a string")
    value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return value


def now_utc() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def build_record(
    *,
    run_id: str,
    started_at: str,
    pipeline_job: str,
    model_resource: str,
    model_version: str,
    model_display_name: str,
    template: str,
    trigger: str,
    parameters: Mapping[str, Any],
    prompt_set: str,
    load_shape: str = "users",
    workload: str = "",
    workload_spec: dict[str, Any] | None = None,
) -> RunRecord:
    """A RunRecord from the pipeline parameters of one run (see pipelines.pipeline.DEFAULTS)."""
    p = parameters
    series = Series(
        model_display_name=model_display_name,
        machine_type=str(p["machine_type"]),
        accelerator_type=str(p["accelerator_type"] or ""),
        accelerator_count=int(p["accelerator_count"]),
        min_replicas=int(p["min_replicas"]),
        max_replicas=int(p["max_replicas"]),
        users=int(p["users"]),
        spawn_rate=float(p["spawn_rate"]),
        duration=str(p["duration"]).strip(),
        max_new_tokens=int(p["max_new_tokens"]),
        prompt_set=prompt_set,
        load_shape=load_shape,
        workload=workload,
    )
    return RunRecord(
        run_id=run_id,
        started_at=started_at,
        pipeline_job=pipeline_job,
        model_resource=model_resource,
        model_version=model_version,
        model_display_name=model_display_name,
        template=template,
        trigger=trigger,
        series=series,
        workload=workload_spec,
    )


def git_commit(folder) -> str:
    """`git-<short commit>` of the checkout holding `folder`, or "" outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"git-{out.stdout.strip()}"
