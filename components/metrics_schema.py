"""The `metrics.json` a load test writes into the run folder, and the SLO decision on it.

Plain Python (no KFP, no Locust) so the load-test component, the SLO gate component and the CLI
summary all share one definition. Bump SCHEMA_VERSION on any incompatible change (a field removed,
renamed or its unit changed); adding an optional field does not need a bump.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

SCHEMA_VERSION = 6
# Older files still read: version 1 (no LLM fields), 2 (no serving API), 3 (no correctness
# phase), 4 (no workload) and 5 (Locust's latencies) take the defaults of the fields added
# after them. Version 6 changed what p50_ms .. mean_ms mean (Locust's rounded histogram before,
# the exact per-request E2E now): `upgrade` maps an older object onto version 6's meaning.
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)

# LLM serving metrics (version 2, components/llm_metrics.py): percentiles of per-request values.
LLM_SERIES: dict[str, str] = {
    "ttft": "milliseconds (time to first token; streaming only)",
    "itl": "milliseconds (inter-token latency: between consecutive chunks; streaming only)",
    "tpot": "milliseconds (time per output token: (E2E - TTFT) / (tokens - 1); streaming only)",
    "e2e": "milliseconds (request sent to answer complete, successful requests)",
    "normalized": "milliseconds per output token (E2E / output tokens)",
    "output_tokens": "tokens per successful request",
}
LLM_STATS = ("p50", "p90", "p95", "p99", "mean")


def llm_field(series: str, stat: str) -> str:
    """metrics.json name of one LLM statistic, e.g. ttft_p95_ms, output_tokens_p50."""
    return f"{series}_{stat}" if series == "output_tokens" else f"{series}_{stat}_ms"


# The latencies the gate, the summary, the report and the regression verdict use (version 6):
# the E2E of each *successful* request as the locustfile measured it (loadtests/llm_stats.py
# keeps it to 0.01 ms below 10 ms, 0.1 ms below 100 ms, 1 ms above; nearest-rank percentiles),
# `latency_source` "requests"; Locust's own figures where no per-request data was kept
# ("locust": a locustfile of the user's own, or no successful request).
LATENCY_FIELDS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms")
# Locust's own figures, always kept beside them: every request, failed ones included, with
# Locust's bucketing (exact below 100 ms, rounded to 10 ms below 1 s, to two significant digits
# above: 1547 ms reads 1500).
LOCUST_LATENCY_FIELDS = tuple(f"locust_{name}" for name in LATENCY_FIELDS)
LATENCY_SOURCES = ("requests", "locust")
# The per-request distributions metrics.json keeps for the report's charts (latency, and the
# achieved lengths in tokens), each at most MAX_HISTOGRAM_BINS values.
HISTOGRAM_SERIES = ("e2e_ms", "ttft_ms", "input_tokens", "output_tokens")
MAX_HISTOGRAM_BINS = 200

# Every field, with its unit.
FIELD_UNITS: dict[str, str] = {
    "schema_version": "integer",
    "requests": "count (all requests, failures included)",
    "failures": "count (non-200, or a body that breaks the predict contract)",
    "failure_ratio": "ratio 0..1 (failures / requests; 1.0 when there were no requests)",
    "rps": "requests per second (all requests, over Locust's measured load window)",
    **{
        name: "milliseconds (E2E of the successful requests, exact: see latency_source)"
        for name in LATENCY_FIELDS
    },
    "latency_source": (
        "requests (p50_ms .. mean_ms are the successful requests' own E2E) or locust (they are "
        "Locust's rounded figures: no per-request data was kept)"
    ),
    **{
        name: "milliseconds (Locust's: every request, failed ones included, rounded by Locust)"
        for name in LOCUST_LATENCY_FIELDS
    },
    "min_ms": "milliseconds (Locust's, exact: every request, failed ones included)",
    "max_ms": "milliseconds (Locust's, exact: every request, failed ones included)",
    "output_tokens": "count (sum of output_tokens over successful requests)",
    "output_tokens_per_s": "tokens per second (output_tokens over the load window)",
    "duration_s": "seconds (Locust's load window: first to last request)",
    "wall_s": "seconds (wall-clock time of the whole Locust process)",
    "users": "count (concurrent simulated users)",
    "spawn_rate": "users per second",
    "run_time": "Locust time span as requested, e.g. 30s, 2m, 1h30m",
    "processes": "count (Locust processes generating load as requested; -1 = one per core)",
    "max_new_tokens": "tokens requested per prediction",
    "host": "base URL the load went to",
    "path": "predict path",
    "locust_version": "version string",
    "started_at": "ISO 8601 UTC timestamp",
    **{llm_field(name, stat): unit for name, unit in LLM_SERIES.items() for stat in LLM_STATS},
    "stream": "bool (requests asked for a token stream)",
    "slo_ttft_ms": "milliseconds (per-request TTFT target for goodput; null: none)",
    "slo_tpot_ms": "milliseconds (per-request TPOT target for goodput; null: none)",
    "good_requests": "count (successful requests meeting every per-request target)",
    "goodput_rps": "requests per second meeting every per-request target (null: no target)",
    "goodput_ratio": "ratio 0..1 (good requests / requests; null: no target)",
    "load_shape": "users (closed loop), rate, steps or sweep (open loop)",
    "offered_rate": "requests per second asked for (rate shape; null otherwise)",
    "arrival_rate": "requests per second sent at their arrival times (open loop; null otherwise)",
    "max_concurrency": "count (open-loop users carrying the arrivals; null: closed loop)",
    "delayed": "count (arrivals sent late: every user was busy)",
    "dropped": "count (arrivals never sent before the test stopped)",
    "knee_rps": "requests per second (sweep: highest offered rate meeting every SLO)",
    "client_cpu_ms_per_request": "milliseconds of load-generator CPU per request",
    "llm_unavailable": "object: LLM metric -> why it was not measured",
    "api": "the serving API the load test spoke (loadtests/apis.py)",
    "output_tokens_source": (
        "how output tokens were counted: answer (the server's own count), tokenizer (the "
        "model's), chunks (one per streamed chunk: an estimate), estimate (UTF-8 bytes / 4), "
        "or a mix such as 'answer 90%, estimate 10%'; none without successful requests"
    ),
    "parity_ratio": (
        "ratio 0..1 (correctness phase: share of prompts whose first K tokens match the "
        "reference model's greedy answer; null: not measured)"
    ),
    "expect_pass_ratio": "ratio 0..1 (share of the team's expectations met; null: none given)",
    "correctness": "object: the correctness phase's summary (correctness.json has the answers)",
    "workload": "object: the workload spec the requests were built from (null: a prompts file)",
    "workload_id": "the workload's identity (history series compare only on the same one)",
    "workload_requests": "count (distinct requests the workload built; null: a prompts file)",
    "achieved": (
        "object: input_tokens and output_tokens of the successful requests, each "
        "{p50, p90, max, mean} (input: the prompt's tokens by the model's tokenizer)"
    ),
    "input_tokens": "count (prompt tokens of successful requests; null: no tokenizer counted)",
    "input_tokens_per_s": "tokens per second (input_tokens over the load window)",
    "total_tokens_per_s": "tokens per second (input and output tokens over the load window)",
    "workload_warning": "why the achieved output lengths are far from those asked ('' if not)",
    "knee_output_tokens_per_s": (
        "tokens per second (sweep: output tokens the knee's stage generated per second)"
    ),
    "histograms": (
        "object: e2e_ms, ttft_ms, input_tokens, output_tokens -> {counts: [[value, requests], "
        "...], n, step}: the successful requests' values in ms or tokens (step null: as the "
        "locustfile keeps them; else rounded to a multiple of step, at most "
        f"{MAX_HISTOGRAM_BINS} values)"
    ),
}

# The numbers a KFP Metrics artifact gets (`metrics.log_metric(name, value)`).
LOGGED_METRICS: tuple[str, ...] = (
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "mean_ms",
    "rps",
    "failure_ratio",
    "output_tokens_per_s",
    "requests",
    "failures",
    "output_tokens",
    "duration_s",
    *LOCUST_LATENCY_FIELDS,
)


class SchemaError(ValueError):
    """metrics.json does not follow the schema."""


@dataclasses.dataclass(frozen=True)
class LoadTestMetrics:
    requests: int
    failures: int
    failure_ratio: float
    rps: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    output_tokens: int
    output_tokens_per_s: float
    duration_s: float
    wall_s: float
    users: int
    spawn_rate: float
    run_time: str
    processes: int
    max_new_tokens: int
    host: str
    path: str
    locust_version: str
    started_at: str
    schema_version: int = SCHEMA_VERSION
    # -- version 2: LLM serving metrics and load shapes (all optional) ----------------------
    stream: bool = False
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    good_requests: int | None = None
    goodput_rps: float | None = None
    goodput_ratio: float | None = None
    load_shape: str = "users"
    offered_rate: float | None = None
    arrival_rate: float | None = None
    max_concurrency: int | None = None
    delayed: int = 0
    dropped: int = 0
    knee_rps: float | None = None
    client_cpu_ms_per_request: float | None = None
    llm_unavailable: dict[str, str] = dataclasses.field(default_factory=dict)
    # -- version 3: the serving API -------------------------------------------------------
    api: str = "deploytest"
    output_tokens_source: str = "answer"
    # -- version 4: the correctness phase (correctness/phase.py) --------------------------
    parity_ratio: float | None = None
    expect_pass_ratio: float | None = None
    correctness: dict[str, Any] = dataclasses.field(default_factory=dict)
    # -- version 5: the workload (loadtests/workload.py) ----------------------------------
    workload: dict[str, Any] | None = None
    workload_id: str = ""
    workload_requests: int | None = None
    achieved: dict[str, Any] = dataclasses.field(default_factory=dict)
    input_tokens: int | None = None
    input_tokens_per_s: float | None = None
    total_tokens_per_s: float | None = None
    workload_warning: str = ""
    # -- version 6: exact latencies in p50_ms .. mean_ms; Locust's kept as locust_* ------
    latency_source: str = "locust"  # what p50_ms .. mean_ms meant before version 6
    locust_p50_ms: float | None = None
    locust_p90_ms: float | None = None
    locust_p95_ms: float | None = None
    locust_p99_ms: float | None = None
    locust_mean_ms: float | None = None
    histograms: dict[str, Any] = dataclasses.field(default_factory=dict)
    knee_output_tokens_per_s: float | None = None
    # The LLM_SERIES x LLM_STATS numbers (llm_field names); flat at the top level of the JSON.
    llm: dict[str, float | None] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        problems: list[str] = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", int):
                if not isinstance(value, int) or isinstance(value, bool):
                    problems.append(f"{field.name} must be an int, got {value!r}")
            elif field.type in ("float", float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append(f"{field.name} must be a number, got {value!r}")
                elif not math.isfinite(value) or value < 0:
                    problems.append(f"{field.name} must be finite and >= 0, got {value!r}")
            elif field.type in ("str", str) and not isinstance(value, str):
                problems.append(f"{field.name} must be a str, got {value!r}")
            elif field.type in ("float | None", "int | None") and value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    problems.append(f"{field.name} must be a number or null, got {value!r}")
                elif not math.isfinite(value) or value < 0:
                    problems.append(f"{field.name} must be finite and >= 0, got {value!r}")
            elif field.type == "bool" and not isinstance(value, bool):
                problems.append(f"{field.name} must be true or false, got {value!r}")
        problems += _llm_problems(self.llm, self.llm_unavailable)
        for name in ("parity_ratio", "expect_pass_ratio"):
            value = getattr(self, name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 1:
                problems.append(f"{name} must be a ratio in 0..1, got {value!r}")
        if not isinstance(self.correctness, dict):
            problems.append("correctness must be an object")
        if self.workload is not None and not isinstance(self.workload, dict):
            problems.append("workload must be an object or null")
        if not isinstance(self.achieved, dict):
            problems.append("achieved must be an object")
        if self.latency_source not in LATENCY_SOURCES:
            problems.append(f"latency_source must be one of {LATENCY_SOURCES}")
        problems += _histogram_problems(self.histograms)
        if problems:
            raise SchemaError("; ".join(problems))
        if self.schema_version not in READABLE_VERSIONS:
            problems.append(f"schema_version {self.schema_version} != {SCHEMA_VERSION}")
        if self.requests < 0 or self.failures < 0 or self.output_tokens < 0:
            problems.append("counts must be >= 0")
        if self.failures > self.requests:
            problems.append(f"failures ({self.failures}) > requests ({self.requests})")
        if not 0.0 <= self.failure_ratio <= 1.0:
            problems.append(f"failure_ratio {self.failure_ratio} outside 0..1")
        if self.requests and not math.isclose(
            self.failure_ratio, self.failures / self.requests, rel_tol=1e-6, abs_tol=1e-9
        ):
            problems.append("failure_ratio != failures / requests")
        if self.requests == 0 and self.failure_ratio != 1.0:
            problems.append("failure_ratio must be 1.0 when there were no requests")
        # Not min/max: the percentiles are rounded (Locust's into buckets, the requests' own to
        # 1 ms at most) and cover other requests (successful ones) than Locust's exact min/max.
        if not self.p50_ms <= self.p90_ms <= self.p95_ms <= self.p99_ms:
            problems.append("latency percentiles must satisfy p50 <= p90 <= p95 <= p99")
        if self.users < 1 or self.spawn_rate <= 0 or self.max_new_tokens < 1:
            problems.append("users and max_new_tokens must be >= 1, spawn_rate > 0")
        if problems:
            raise SchemaError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """The metrics.json object: every field, the LLM numbers flat beside them."""
        data = dataclasses.asdict(self)
        llm = data.pop("llm")
        data.update({name: llm.get(name) for name in LLM_FIELDS})
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadTestMetrics:
        if not isinstance(data, Mapping):
            raise SchemaError("metrics must be a JSON object")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise SchemaError(
                f"unsupported schema_version {version!r} (this code reads {READABLE_VERSIONS})"
            )
        data = dict(data)
        llm = {name: data.pop(name) for name in LLM_FIELDS if name in data}
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields} - {"llm"}
        # Each version must have the fields it introduced and those before, none after.
        required = {
            f.name for f in fields if f.name in V1_FIELDS or FIELD_VERSION.get(f.name, 2) <= version
        } - {"llm"}
        missing = sorted(required - data.keys())
        unknown = sorted(data.keys() - names)
        if version >= 2 and len(llm) != len(LLM_FIELDS):
            missing += sorted(set(LLM_FIELDS) - llm.keys())
        if missing or unknown:
            raise SchemaError(f"missing fields {missing}, unknown fields {unknown}")
        return cls(**data, llm=llm)

    @classmethod
    def from_json(cls, text: str) -> LoadTestMetrics:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"metrics.json is not JSON: {exc}") from exc
        return cls.from_dict(data)


LLM_FIELDS: tuple[str, ...] = tuple(
    llm_field(name, stat) for name in LLM_SERIES for stat in LLM_STATS
)
# The fields of schema version 1 (everything before `stream`).
V1_FIELDS = frozenset(
    f.name
    for f in dataclasses.fields(LoadTestMetrics)[
        : [f.name for f in dataclasses.fields(LoadTestMetrics)].index("stream")
    ]
)


# The fields added in schema version 3.
V3_FIELDS = frozenset({"api", "output_tokens_source"})
# The fields added in schema version 4.
V4_FIELDS = frozenset({"parity_ratio", "expect_pass_ratio", "correctness"})
# The fields added in schema version 5.
V5_FIELDS = frozenset(
    {
        "workload",
        "workload_id",
        "workload_requests",
        "achieved",
        "input_tokens",
        "input_tokens_per_s",
        "total_tokens_per_s",
        "workload_warning",
    }
)
# The fields added in schema version 6 (which also changed what p50_ms .. mean_ms mean).
V6_FIELDS = frozenset(
    {"latency_source", *LOCUST_LATENCY_FIELDS, "histograms", "knee_output_tokens_per_s"}
)
# The version that added each field after 2 (fields past version 1 without an entry: 2).
FIELD_VERSION = {
    **dict.fromkeys(V3_FIELDS, 3),
    **dict.fromkeys(V4_FIELDS, 4),
    **dict.fromkeys(V5_FIELDS, 5),
    **dict.fromkeys(V6_FIELDS, 6),
}


def upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """A metrics.json object of any readable version with version 6's latency meaning.

    Before version 6, p50_ms .. mean_ms were Locust's (every request, rounded to two
    significant digits above 1 s). Here they become locust_p50_ms .. locust_mean_ms, and
    p50_ms .. mean_ms take the successful requests' own E2E where the file holds them
    (e2e_p50_ms .. e2e_mean_ms, written by our locustfile since version 2), `latency_source`
    "requests"; otherwise they stay Locust's, `latency_source` "locust". `schema_version` stays
    the file's own. An object that has `latency_source` already comes back as a copy. History
    entries of older runs are read through this, so a verdict compares like with like.
    """
    out = dict(data)
    if "latency_source" in out:
        return out
    for name, locust in zip(LATENCY_FIELDS, LOCUST_LATENCY_FIELDS, strict=True):
        out[locust] = out.get(name)
    exact = {name: out.get(f"e2e_{name}") for name in LATENCY_FIELDS}
    if all(_finite(value) for value in exact.values()):
        out.update(exact)
        out["latency_source"] = "requests"
    else:
        out["latency_source"] = "locust"
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _histogram_problems(histograms: Any) -> list[str]:
    if not isinstance(histograms, dict):
        return ["histograms must be an object"]
    problems = []
    for name, h in histograms.items():
        if name not in HISTOGRAM_SERIES:
            problems.append(f"histograms: unknown series {name!r}")
            continue
        counts = h.get("counts") if isinstance(h, dict) else None
        if not isinstance(counts, list) or len(counts) > MAX_HISTOGRAM_BINS:
            problems.append(
                f"histograms.{name}.counts must be a list of at most {MAX_HISTOGRAM_BINS} "
                "[value, requests] pairs"
            )
            continue
        for pair in counts:
            ok = isinstance(pair, list | tuple) and len(pair) == 2
            if not ok or not _finite(pair[0]) or pair[0] < 0:
                problems.append(f"histograms.{name}: bad value in {pair!r}")
                break
            if not isinstance(pair[1], int) or isinstance(pair[1], bool) or pair[1] < 0:
                problems.append(f"histograms.{name}: bad count in {pair!r}")
                break
    return problems


# Logged into the KFP Metrics artifact when measured (the gate can then check any of them).
LLM_LOGGED_METRICS: tuple[str, ...] = LLM_FIELDS + (
    "good_requests",
    "goodput_rps",
    "goodput_ratio",
    "arrival_rate",
    "delayed",
    "dropped",
    "knee_rps",
    "knee_output_tokens_per_s",
    "client_cpu_ms_per_request",
    "input_tokens_per_s",
    "total_tokens_per_s",
)


# The correctness phase's ratios, logged when measured (the gate checks them).
CORRECTNESS_LOGGED_METRICS: tuple[str, ...] = ("parity_ratio", "expect_pass_ratio")


def _llm_problems(llm: Mapping[str, Any], unavailable: Mapping[str, Any]) -> list[str]:
    problems = []
    unknown = sorted(set(llm) - set(LLM_FIELDS))
    if unknown:
        problems.append(f"unknown LLM fields {unknown}")
    for name, value in llm.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{name} must be a number or null, got {value!r}")
        elif not math.isfinite(value) or value < 0:
            problems.append(f"{name} must be finite and >= 0, got {value!r}")
    if not isinstance(unavailable, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in unavailable.items()
    ):
        problems.append("llm_unavailable must map metric names to reasons (strings)")
    return problems


def validate_metrics(data: Mapping[str, Any]) -> LoadTestMetrics:
    """Raises SchemaError unless `data` is a valid metrics.json object."""
    return LoadTestMetrics.from_dict(data)


class SloCheck(NamedTuple):
    name: str  # the metric, e.g. "p95_ms"
    op: str  # "<=" or ">="
    threshold: float
    measured: float | None  # None when the metric is missing
    passed: bool

    def describe(self) -> str:
        measured = "missing" if self.measured is None else f"{self.measured:g}"
        return f"{self.name} {measured} (required {self.op} {self.threshold:g})"


def _number(metrics: Mapping[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def evaluate_slo(
    metrics: Mapping[str, Any],
    max_p95_ms: float,
    max_failure_ratio: float,
    min_rps: float,
) -> tuple[bool, list[SloCheck]]:
    """The SLO decision: every check must pass. A missing metric fails its check.

    Besides the three thresholds, at least one request must have been made: a run with no
    requests has no latency to judge.
    """
    wanted = (
        ("requests", ">=", 1.0),
        ("p95_ms", "<=", float(max_p95_ms)),
        ("failure_ratio", "<=", float(max_failure_ratio)),
        ("rps", ">=", float(min_rps)),
    )
    checks = []
    for name, op, threshold in wanted:
        measured = _number(metrics, name)
        if measured is None:
            passed = False
        elif op == "<=":
            passed = measured <= threshold
        else:
            passed = measured >= threshold
        checks.append(SloCheck(name, op, threshold, measured, passed))
    return all(c.passed for c in checks), checks


_CHECK = re.compile(r"^\s*([a-z0-9_]+)\s*(<=|>=)\s*([0-9.eE+-]+)\s*$")


def parse_check(text: str) -> tuple[str, str, float]:
    """`ttft_p95_ms<=500` -> ("ttft_p95_ms", "<=", 500.0); ValueError naming the problem."""
    match = _CHECK.match(text or "")
    if not match:
        raise ValueError(f"bad SLO check {text!r}: expected METRIC<=VALUE or METRIC>=VALUE")
    name, op, raw = match.groups()
    if name not in FIELD_UNITS:
        raise ValueError(f"bad SLO check {text!r}: no metric {name!r} in metrics.json")
    if name not in GATE_METRICS:
        raise ValueError(
            f"bad SLO check {text!r}: {name!r} is not among the numbers the gate task sees "
            "(the load test's logged metrics: components/metrics_schema.GATE_METRICS)"
        )
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"bad SLO check {text!r}: {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"bad SLO check {text!r}: the threshold must be finite")
    return name, op, value


def evaluate_checks(metrics: Mapping[str, Any], specs: list[str]) -> list[SloCheck]:
    """Extra checks on any metrics.json number (e.g. ttft_p95_ms<=500, goodput_ratio>=0.9);
    a metric that was not measured fails its check."""
    checks = []
    for spec in specs:
        name, op, threshold = parse_check(spec)
        measured = _number(metrics, name)
        passed = measured is not None and (
            measured <= threshold if op == "<=" else measured >= threshold
        )
        checks.append(SloCheck(name, op, threshold, measured, passed))
    return checks


# The numbers the pipeline's gate task sees: those the load test logs into its Metrics artifact
# (components/load_test.py). A check on any other field could never pass there.
GATE_METRICS = frozenset(LOGGED_METRICS + LLM_LOGGED_METRICS + CORRECTNESS_LOGGED_METRICS)


def correctness_checks(
    metrics: Mapping[str, Any], min_parity: float, min_expect_pass: float
) -> list[str]:
    """The checks on the correctness phase's ratios that it measured (a parity check that
    was skipped, as for an API that cannot decode greedily, is not judged)."""
    checks = []
    if metrics.get("parity_ratio") is not None:
        checks.append(f"parity_ratio>={min_parity}")
    if metrics.get("expect_pass_ratio") is not None:
        checks.append(f"expect_pass_ratio>={min_expect_pass}")
    return checks


def gate_checks(metrics: Mapping[str, Any] | None, params: Mapping[str, Any]) -> list[SloCheck]:
    """Every check of the SLO gate, in its order: requests, p95_ms, failure_ratio, rps, the
    extra checks (`--slo`), then the correctness phase's ratios that were measured.

    The one definition that the gate task (components/runtime/slo_gate.judge), `deploytest
    run`'s summary and the run report use, so their tables agree. `metrics` is metrics.json or
    the load test's logged Metrics: either way only what the gate task sees (GATE_METRICS) is
    judged, with version 6's meaning (an older metrics.json is upgraded: p95_ms is the exact
    E2E p95). `params`: slo_p95_ms, max_failure_ratio, min_rps and optionally slo_checks
    (["ttft_p95_ms<=500", ...]), min_parity and min_expect_pass (default 1.0). No metrics (the
    load test did not finish): no checks.
    """
    if not metrics:
        return []
    seen = {name: value for name, value in upgrade(metrics).items() if name in GATE_METRICS}
    _, checks = evaluate_slo(
        seen, params["slo_p95_ms"], params["max_failure_ratio"], params["min_rps"]
    )
    extra = [
        *(params.get("slo_checks") or ()),
        *correctness_checks(
            seen, params.get("min_parity", 1.0), params.get("min_expect_pass", 1.0)
        ),
    ]
    return checks + evaluate_checks(seen, extra)


def format_slo_table(checks: list[SloCheck]) -> str:
    rows = [("check", "threshold", "measured", "result")]
    for c in checks:
        measured = "missing" if c.measured is None else f"{c.measured:.4g}"
        rows.append((c.name, f"{c.op} {c.threshold:g}", measured, "PASS" if c.passed else "FAIL"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdict = "PASS" if all(c.passed for c in checks) else "FAIL"
    return "\n".join(lines + [f"SLO verdict: {verdict}"])
