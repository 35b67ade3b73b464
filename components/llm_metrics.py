"""The LLM part of metrics.json, from the summary the locustfile writes (`llm_metrics.json`).

Plain Python, data only: the locustfile (loadtests/llm_stats.py) computes the percentiles; this
module maps them onto metrics.json's fields and says, for each metric it cannot give, why not.
A locustfile of the user's own writes no summary: then only what Locust itself measures is
reported (latency, requests/s, failures) and every LLM metric is listed as unavailable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.metrics_schema import (
    HISTOGRAM_SERIES,
    LATENCY_FIELDS,
    LLM_SERIES,
    LLM_STATS,
    MAX_HISTOGRAM_BINS,
    llm_field,
)

LLM_STATS_NAME = "llm_metrics.json"
STREAM_ONLY = ("ttft", "itl", "tpot")
# llm_stats.py names its histograms by unit; metrics.json by series.
_HIST = {
    "ttft": "ttft_ms",
    "itl": "itl_ms",
    "tpot": "tpot_ms",
    "e2e": "e2e_ms",
    "normalized": "normalized_ms",
    "output_tokens": "output_tokens",
}

NO_SUMMARY = (
    "the locustfile wrote no LLM summary (a locustfile of your own: Locust measures end-to-end "
    "latency, requests/s and failures only)"
)
NOT_STREAMING = "requests were not streamed (--stream): the first token came with the whole answer"


def read_summary(out_dir: str | Path) -> dict[str, Any] | None:
    """The locustfile's summary, or None when it wrote none (or an unreadable one)."""
    path = Path(out_dir) / LLM_STATS_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def llm_fields(summary: dict[str, Any] | None, requests: int, duration_s: float) -> dict[str, Any]:
    """The version-2 fields of LoadTestMetrics (components/metrics_schema.py).

    `requests` and `duration_s` are Locust's (all requests, its load window): goodput is good
    requests over that same window, so it compares with requests/s.
    """
    llm = {llm_field(name, stat): None for name in LLM_SERIES for stat in LLM_STATS}
    if summary is None:
        unavailable = {name: NO_SUMMARY for name in LLM_SERIES}
        unavailable["goodput"] = NO_SUMMARY
        return {"llm": llm, "llm_unavailable": unavailable}
    unavailable: dict[str, str] = {}
    stream = bool(summary.get("stream"))
    for name in LLM_SERIES:
        hist = summary.get(_HIST[name]) or {}
        if not hist.get("count"):
            if name in STREAM_ONLY and not stream:
                unavailable[name] = NOT_STREAMING
            elif name == "tpot":
                unavailable[name] = "no successful request had 2 or more tokens"
            else:
                unavailable[name] = "no successful request"
            continue
        for stat in LLM_STATS:
            value = hist.get(stat)
            llm[llm_field(name, stat)] = float(value) if value is not None else None
    counts = summary.get("counts") or {}
    good = int(counts.get("good", 0))
    ttft, tpot = summary.get("slo_ttft_ms"), summary.get("slo_tpot_ms")
    fields: dict[str, Any] = {
        "llm": llm,
        "stream": stream,
        "slo_ttft_ms": ttft,
        "slo_tpot_ms": tpot,
        "load_shape": str(summary.get("load_shape") or "users"),
    }
    if ttft is None and tpot is None:
        unavailable["goodput"] = "no per-request target given (--slo-ttft-ms, --slo-tpot-ms)"
    elif ttft is not None and not stream:
        unavailable["goodput"] = "a TTFT target needs streamed requests (--stream)"
    else:
        fields["good_requests"] = good
        fields["goodput_rps"] = good / duration_s if duration_s > 0 else 0.0
        fields["goodput_ratio"] = good / requests if requests else 0.0
    arrivals = summary.get("arrivals") or {}
    if fields["load_shape"] != "users":
        fields["offered_rate"] = summary.get("rate")
        fields["arrival_rate"] = arrivals.get("rate")
        fields["max_concurrency"] = summary.get("max_concurrency")
        fields["delayed"] = int(arrivals.get("delayed") or 0)
        fields["dropped"] = int(arrivals.get("dropped") or 0)
    fields["knee_rps"] = summary.get("knee_rps")
    knee_stage = [
        s for s in summary.get("stages") or () if s.get("offered_rate") == fields["knee_rps"]
    ]
    if fields["knee_rps"] is not None and knee_stage:
        fields["knee_output_tokens_per_s"] = knee_stage[-1].get("output_tokens_per_s")
    cpu = summary.get("client_cpu_s")
    if isinstance(cpu, int | float) and requests:
        fields["client_cpu_ms_per_request"] = cpu * 1000 / requests
    fields["llm_unavailable"] = unavailable
    fields["api"] = str(summary.get("api") or "deploytest")
    fields["output_tokens_source"] = token_source(counts)
    fields.update(workload_fields(summary, duration_s))
    return fields


def workload_fields(summary: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """The workload's part of metrics.json: its spec, what the requests achieved, and the
    throughput in tokens (input, output and both over the load window, as the benchmarks
    report them beside requests/s)."""
    from loadtests.workload import achieved, output_warning

    got = achieved(summary)
    spec = summary.get("workload")
    out: dict[str, Any] = {
        "workload": spec if isinstance(spec, dict) else None,
        "workload_id": str(summary.get("workload_id") or ""),
        "workload_requests": summary.get("workload_requests"),
        "achieved": got,
    }
    inputs = summary.get("input_tokens") or {}
    if inputs.get("count"):
        total_in = round(float(inputs.get("mean") or 0) * int(inputs["count"]))
        out["input_tokens"] = total_in
        if duration_s > 0:
            out["input_tokens_per_s"] = total_in / duration_s
            out["total_tokens_per_s"] = (total_in + output_tokens(summary)) / duration_s
    if out["workload"] is not None:
        out["workload_warning"] = output_warning(summary.get("workload_output_tokens"), got) or ""
    return out


def latency_fields(locust: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Any]:
    """p50_ms .. mean_ms and `latency_source` of metrics.json (schema 6).

    The successful requests' own E2E from the locustfile's summary (loadtests/llm_stats.py:
    to 1 ms or better, nearest-rank percentiles): what the gate, the summary, the report and
    the regression verdict use. Without it (a locustfile of your own, or no successful
    request) Locust's figures (`locust` holds parse_results' locust_p50_ms .. locust_mean_ms),
    with `latency_source` "locust" saying so.
    """
    e2e = (summary or {}).get(_HIST["e2e"]) or {}
    exact = {name: e2e.get(name.removesuffix("_ms")) for name in LATENCY_FIELDS}
    if e2e.get("count") and all(isinstance(v, int | float) for v in exact.values()):
        return {**{k: float(v) for k, v in exact.items()}, "latency_source": "requests"}
    return {name: float(locust[f"locust_{name}"]) for name in LATENCY_FIELDS} | {
        "latency_source": "locust"
    }


# Bin widths (ms or tokens) tried, finest first, when a distribution has too many values.
_STEPS = tuple(m * 10.0**k for k in range(-2, 7) for m in (1, 2, 5))


def bounded_histogram(counts: list, max_bins: int = MAX_HISTOGRAM_BINS) -> dict[str, Any]:
    """{counts: [[value, n], ...] sorted, n: total, step} with at most `max_bins` values: the
    values as given (step None) when few enough, else each rounded to the nearest multiple of
    the finest step of 1, 2 or 5 x 10^k (ms or tokens) that keeps them within `max_bins`."""
    merged: dict[float, int] = {}
    for value, n in counts:
        merged[float(value)] = merged.get(float(value), 0) + int(n)
    step = None
    if len(merged) > max_bins:
        for step in _STEPS:
            if len({round(v / step) for v in merged}) <= max_bins:
                break
        coarse: dict[float, int] = {}
        for value, n in merged.items():
            key = round(round(value / step) * step, 6)
            coarse[key] = coarse.get(key, 0) + n
        merged = coarse
    pairs = [[value, n] for value, n in sorted(merged.items())]
    return {"counts": pairs, "n": sum(n for _, n in pairs), "step": step}


def histograms(summary: dict[str, Any] | None) -> dict[str, Any]:
    """metrics.json's `histograms`: the successful requests' E2E, TTFT, input and output
    length distributions (from the locustfile's summary, bounded by bounded_histogram); only
    those with data."""
    out = {}
    for name in HISTOGRAM_SERIES:
        counts = (((summary or {}).get("histograms") or {}).get(name) or {}).get("counts")
        if counts:
            out[name] = bounded_histogram(counts)
    return out


def token_source(counts: dict[str, Any]) -> str:
    """How the successful requests' output tokens were counted (metrics.json's
    `output_tokens_source`): one source, or each source's share of the requests."""
    from loadtests.apis import TOKEN_SOURCES

    shares = {s: int(counts.get(f"tokens_from_{s}", 0)) for s in TOKEN_SOURCES}
    total = sum(shares.values())
    if not total:
        return "none"
    used = [(s, n) for s, n in shares.items() if n]
    if len(used) == 1:
        return used[0][0]
    return ", ".join(f"{s} {n / total:.0%}" for s, n in used)


def output_tokens(summary: dict[str, Any] | None) -> int:
    """Output tokens of all successful requests (0 without a summary)."""
    hist = (summary or {}).get("output_tokens") or {}
    mean, count = hist.get("mean"), hist.get("count") or 0
    return round(mean * count) if mean is not None else 0


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def describe(m: dict[str, Any]) -> str:
    """One line: TTFT, TPOT, ITL, goodput, arrivals; and which LLM metrics are missing."""
    parts = []
    for name, label in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL")):
        if m.get(f"{name}_p50_ms") is not None:
            parts.append(f"{label} p50 {_ms(m[f'{name}_p50_ms'])} p95 {_ms(m[f'{name}_p95_ms'])}")
    if m.get("goodput_rps") is not None:
        parts.append(f"goodput {m['goodput_rps']:.2f} req/s ({m['goodput_ratio']:.0%} good)")
    if m.get("arrival_rate") is not None:
        parts.append(
            f"arrivals {m['arrival_rate']:.2f}/s (offered {m.get('offered_rate') or 'stages'}), "
            f"{m.get('delayed', 0)} delayed, {m.get('dropped', 0)} dropped"
        )
    if m.get("knee_rps") is not None:
        parts.append(f"knee {m['knee_rps']:g} req/s")
    if m.get("client_cpu_ms_per_request") is not None:
        parts.append(f"client CPU {m['client_cpu_ms_per_request']:.2f} ms/request")
    if m.get("output_tokens_source") not in (None, "answer", "none"):
        parts.append(f"output tokens counted by {m['output_tokens_source']}")
    missing = m.get("llm_unavailable") or {}
    if missing:
        reasons = sorted(set(missing.values()))
        parts.append(f"not measured: {', '.join(sorted(missing))} ({'; '.join(reasons)})")
    return "LLM: " + ("; ".join(parts) if parts else "no LLM metrics")


def workload_lines(m: dict[str, Any]) -> list[str]:
    """The workload, the lengths it achieved and the throughput in tokens (summary lines)."""
    from loadtests.workload import WorkloadError, parse_workload

    lines = []
    spec = m.get("workload")
    if isinstance(spec, dict):
        try:
            described = parse_workload(spec).describe()
        except WorkloadError:
            described = str(spec)
        lines.append(f"  workload     {described} ({m.get('workload_id', '')})")
    got = m.get("achieved") or {}
    if got:
        lines.append(
            "  achieved     "
            + "; ".join(
                f"{name.split('_')[0]} tokens p50 {v.get('p50', 0):g} p90 {v.get('p90', 0):g} "
                f"max {v.get('max', 0):g}"
                for name, v in got.items()
            )
        )
    if m.get("total_tokens_per_s") is not None:
        lines.append(
            f"  tokens/s     {m['input_tokens_per_s']:.1f} input + "
            f"{m.get('output_tokens_per_s', 0):.1f} output = {m['total_tokens_per_s']:.1f} "
            f"total ({m.get('rps', 0):.2f} requests/s)"
        )
    if m.get("workload_warning"):
        lines.append(f"  WARNING      {m['workload_warning']}")
    return lines


def summary_lines(m: dict[str, Any]) -> list[str]:
    """The LLM lines of `deploytest run`'s summary (aligned with its other lines)."""
    lines = workload_lines(m)
    for name, label in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL")):
        if m.get(f"{name}_p50_ms") is not None:
            lines.append(
                f"  {label:<12} "
                + "   ".join(f"{s} {_ms(m[f'{name}_{s}_ms'])}" for s in ("p50", "p95", "p99"))
            )
    if m.get("goodput_rps") is not None:
        targets = ", ".join(
            f"{label} <= {m[key]:g} ms"
            for key, label in (("slo_ttft_ms", "TTFT"), ("slo_tpot_ms", "TPOT"))
            if m.get(key) is not None
        )
        lines.append(
            f"  goodput      {m['goodput_rps']:.1f} requests/s ({m['goodput_ratio']:.0%} of "
            f"requests met {targets})"
        )
    if m.get("arrival_rate") is not None:
        offered = f"{m['offered_rate']:g}/s" if m.get("offered_rate") else "in stages"
        lines.append(
            f"  arrivals     {m['arrival_rate']:.1f}/s (offered {offered}, open loop, "
            f"cap {m.get('max_concurrency')}), {m.get('delayed', 0)} delayed, "
            f"{m.get('dropped', 0)} dropped"
        )
    if m.get("load_shape") == "sweep":
        knee = m.get("knee_rps")
        lines.append(
            "  knee         "
            + (f"{knee:g} requests/s (highest rate meeting every SLO)" if knee else "none")
        )
    if m.get("client_cpu_ms_per_request") is not None:
        lines.append(f"  client CPU   {m['client_cpu_ms_per_request']:.2f} ms per request")
    for name, reason in sorted((m.get("llm_unavailable") or {}).items()):
        lines.append(f"  not measured {name}: {reason}")
    return lines
