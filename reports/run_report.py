"""`report.html`: one run's own page, self-contained (inline CSS and SVG; no script, no CDN).

Sections: the verdicts (SLO and regression), the SLO table (components.metrics_schema.
gate_checks: the gate's own checks), the LLM serving metrics (TTFT, ITL, TPOT, E2E
percentiles, goodput, tokens/s) with the latency distribution, the workload and the lengths it
achieved, the cost, the correctness phase (parity with the reference model, the team's
expectations, drift from the last PASS run), the regression table, trend charts of p95,
requests/s and output tokens/s over the run's series with this run marked, the load's own time
series, the clean-up record, and where Locust's own report is (beside it as
`locust-report.html` in a run folder; the load test's `stats` artifact on Vertex AI). Locust's
report is linked, not embedded: it needs scripts with storage access, which a sandboxed frame
inside this page would refuse, and this page runs no script at all.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.charts import distribution_chart, load_chart, trend_chart

TRENDS = (
    ("p95_ms", "p95 latency", "ms"),
    ("rps", "requests/s", "1/s"),
    ("output_tokens_per_s", "output tokens/s", "1/s"),
)
LOCUST_REPORT = "locust-report.html"

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:72em;color:#222;padding:0 1em}
h1{font-size:1.4em} h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:left;font-size:.9em} th{background:#f3f3f3}
.PASS,.NO-CHANGE,.IMPROVEMENT{color:#0a7a0a;font-weight:bold}
.FAIL,.REGRESSION{color:#b00;font-weight:bold}
.NOT-ENOUGH-HISTORY,.WARN{color:#a60;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:1em} .chart svg{max-width:100%;height:auto}
.muted{color:#666;font-size:.9em} iframe{width:100%;height:60em;border:1px solid #ccc}
"""


@dataclass
class ReportData:
    """Everything one report shows; any part may be missing (a failed run has less)."""

    run_id: str
    metrics: Mapping[str, Any] | None = None
    record: Any = None  # history.records.RunRecord
    slo_checks: Sequence[Any] = ()  # components.metrics_schema.SloCheck
    verdict: Any = None  # history.verdict.Verdict
    regression_mode: str = ""
    series: Sequence[Any] = ()  # history.store.Entry, oldest first, this run included
    load_history_csv: str | Path | None = None
    cleanup: Mapping[str, Any] | None = None
    cleanup_note: str = ""
    locust_report_link: str = ""  # a relative link, or a URI shown as text
    notes: list[str] = field(default_factory=list)
    correctness: Mapping[str, Any] | None = None  # correctness.json (correctness/phase.py)
    cost: Mapping[str, Any] | None = None  # components.cost.run_cost
    cost_note: str = ""  # why there is no cost (yet)
    # a right-sizing run: recommendation.json (components/runtime/recommend.py) and each
    # candidate's own run report (a relative link, by candidate key)
    recommendation: Mapping[str, Any] | None = None
    candidate_reports: Mapping[str, str] = field(default_factory=dict)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _word(word: str) -> str:
    return f'<span class="{_e(word.replace(" ", "-"))}">{_e(word)}</span>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table; cells are HTML already (escape before)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "–" if value is None else format(value, spec)


def _summary(d: ReportData) -> str:
    slo = (
        "PASS"
        if d.slo_checks and all(c.passed for c in d.slo_checks)
        else ("FAIL" if d.slo_checks else "NOT RUN")
    )
    regression = d.verdict.overall if d.verdict is not None else "NOT JUDGED"
    mode = f" (gate mode: {_e(d.regression_mode)})" if d.regression_mode else ""
    parts = [f"<p>SLO gate: {_word(slo)} &nbsp; Regression: {_word(regression)}{mode}</p>"]
    if d.record is not None:
        r = d.record
        parts.append(
            _table(
                ("run", "started (UTC)", "trigger", "model", "version", "template", "job"),
                [
                    [
                        _e(r.run_id),
                        _e(r.started_at),
                        _e(r.trigger),
                        _e(f"{r.model_display_name} ({r.model_resource})"),
                        _e(r.model_version),
                        _e(r.template or "–"),
                        _e(r.pipeline_job),
                    ]
                ],
            )
        )
        parts.append(f'<p class="muted">series: {_e(r.series.describe())}</p>')
    if d.metrics:
        from components.metrics_schema import upgrade

        m = upgrade(d.metrics)
        source = (
            "E2E of the successful requests"
            if m["latency_source"] == "requests"
            else "Locust's histogram: every request, rounded"
        )
        parts.append(
            "<p id='headline'>"
            + _e(
                f"{m.get('requests', 0)} requests, {m.get('failures', 0)} failed; "
                f"p50 {m.get('p50_ms', 0):g} ms, p95 {m.get('p95_ms', 0):g} ms, "
                f"p99 {m.get('p99_ms', 0):g} ms ({source}); {m.get('rps', 0):.2f} requests/s, "
                f"{m.get('output_tokens_per_s', 0):.1f} output tokens/s"
            )
            + "</p>"
        )
        parts.append(
            '<p class="serving-api">'
            + _e(
                f"serving API {m.get('api', 'deploytest')}"
                f"{', streamed' if m.get('stream') else ''}; output tokens counted by "
                f"{m.get('output_tokens_source', 'answer')}"
            )
            + "</p>"
        )
    return "".join(parts)


def _slo(d: ReportData) -> str:
    if not d.slo_checks:
        return "<p>The load test did not finish: nothing to judge.</p>"
    rows = [
        [
            _e(c.name),
            _e(f"{c.op} {c.threshold:g}"),
            _e("missing" if c.measured is None else f"{c.measured:.4g}"),
            _word("PASS" if c.passed else "FAIL"),
        ]
        for c in d.slo_checks
    ]
    return _table(("check", "threshold", "measured", "result"), rows)


# The LLM table's rows: metrics.json series (components.metrics_schema.LLM_SERIES).
_LLM_ROWS = (
    ("ttft", "time to first token (TTFT)"),
    ("itl", "inter-token latency (ITL)"),
    ("tpot", "time per output token (TPOT)"),
    ("e2e", "end to end (E2E)"),
    ("normalized", "E2E per output token"),
    ("output_tokens", "output tokens per request"),
)


def _llm(d: ReportData) -> str:
    """The LLM serving metrics the summary prints: percentiles, goodput, tokens/s, and the
    latency distribution."""
    m = d.metrics
    if not m:
        return "<p>The load test did not finish: no LLM metrics.</p>"
    from components.metrics_schema import LLM_STATS, llm_field

    rows = []
    for series, label in _LLM_ROWS:
        values = [m.get(llm_field(series, stat)) for stat in LLM_STATS]
        if all(v is None for v in values):
            continue
        unit = "" if series == "output_tokens" else " ms"
        rows.append([_e(label), *(_e("–" if v is None else f"{v:.4g}{unit}") for v in values)])
    parts = []
    if rows:
        parts.append(_table(("metric", *LLM_STATS), rows))
    tokens = [f"{m.get('output_tokens_per_s', 0):.1f} output"]
    if m.get("input_tokens_per_s") is not None:
        tokens.insert(0, f"{m['input_tokens_per_s']:.1f} input")
    if m.get("total_tokens_per_s") is not None:
        tokens.append(f"{m['total_tokens_per_s']:.1f} total")
    parts.append(
        f"<p id='throughput'>tokens/s: {_e(' + '.join(tokens[:2]))}"
        f"{_e(' = ' + tokens[2]) if len(tokens) == 3 else ''}; "
        f"{_e(format(m.get('rps', 0), '.2f'))} requests/s</p>"
    )
    if m.get("goodput_rps") is not None:
        targets = ", ".join(
            f"{label} <= {m[key]:g} ms"
            for key, label in (("slo_ttft_ms", "TTFT"), ("slo_tpot_ms", "TPOT"))
            if m.get(key) is not None
        )
        parts.append(
            f"<p id='goodput'>goodput: {_e(format(m['goodput_rps'], '.2f'))} requests/s "
            f"({_e(format(m.get('goodput_ratio') or 0, '.0%'))} of requests met "
            f"{_e(targets)})</p>"
        )
    for name, reason in sorted((m.get("llm_unavailable") or {}).items()):
        parts.append(f"<p class='muted'>not measured: {_e(name)}: {_e(reason)}</p>")
    hist = m.get("histograms") or {}
    marks = [
        (f"E2E {stat} {m[f'e2e_{stat}_ms']:.4g} ms", float(m[f"e2e_{stat}_ms"]))
        for stat in ("p50", "p95")
        if m.get(f"e2e_{stat}_ms") is not None
    ]
    svg = distribution_chart(
        [
            ("E2E", (hist.get("e2e_ms") or {}).get("counts") or []),
            ("TTFT", (hist.get("ttft_ms") or {}).get("counts") or []),
        ],
        "latency of the successful requests",
        "ms",
        marks,
    )
    if svg:
        parts.append(f'<div class="chart" data-chart="latency-distribution">{svg}</div>')
    return "".join(parts)


def _workload(d: ReportData) -> str:
    """The workload the requests came from and the lengths they achieved."""
    m = d.metrics or {}
    spec, got = m.get("workload"), m.get("achieved") or {}
    if not isinstance(spec, dict) and not got:
        return "<p>No workload: the prompts came from a prompts file as they are.</p>"
    parts = []
    if isinstance(spec, dict):
        from loadtests.workload import WorkloadError, parse_workload

        try:
            described = parse_workload(spec).describe()
        except WorkloadError:
            described = json.dumps(spec, sort_keys=True)
        parts.append(
            f"<p id='workload'>{_e(described)} <span class='muted'>(identity "
            f"{_e(m.get('workload_id', ''))}; {_e(m.get('workload_requests'))} distinct "
            "requests)</span></p>"
        )
        parts.append(f"<pre class='muted'>{_e(json.dumps(spec, indent=1, sort_keys=True))}</pre>")
    if m.get("workload_warning"):
        parts.append(f"<p class='WARN'>{_e(m['workload_warning'])}</p>")
    if got:
        rows = [
            [
                _e(name.replace("_", " ")),
                *(_e(_fmt(v.get(k))) for k in ("p50", "p90", "max", "mean")),
            ]
            for name, v in got.items()
            if isinstance(v, Mapping)
        ]
        parts.append("<p>Achieved lengths (tokens, by the model's tokenizer):</p>")
        parts.append(_table(("length", "p50", "p90", "max", "mean"), rows))
    hist = m.get("histograms") or {}
    svg = distribution_chart(
        [
            ("input tokens", (hist.get("input_tokens") or {}).get("counts") or []),
            ("output tokens", (hist.get("output_tokens") or {}).get("counts") or []),
        ],
        "achieved lengths of the successful requests",
        "tokens",
    )
    if svg:
        parts.append(f'<div class="chart" data-chart="length-distribution">{svg}</div>')
    return "".join(parts)


def _cost(d: ReportData) -> str:
    if not d.cost:
        return f"<p>{_e(d.cost_note or 'No cost: no clean-up record to compute it from.')}</p>"
    from components.cost import describe

    c = d.cost
    rows = [
        [
            _e(i.get("endpoint", "")),
            _e(i.get("machine_type", "") or "–"),
            _e(f"{i['seconds']:.1f} s" if i.get("seconds") is not None else "–"),
            _e(i.get("replicas", "")),
            _e(f"${i['usd_per_hour']:.4f}" if i.get("usd_per_hour") is not None else "–"),
            _e(f"${i['usd']:.4f}" if i.get("usd") is not None else i.get("reason", "–")),
        ]
        for i in c.get("items", [])
    ]
    out = f"<p id='cost'>{_e(describe(c))}</p><p class='muted'>{_e(c.get('basis', ''))}</p>"
    if rows:
        out += _table(("endpoint", "machine", "billed", "replicas", "per hour", "cost"), rows)
    return out


def _bill(d: ReportData, candidate: Mapping[str, Any]) -> str:
    """What this run paid for the candidate's endpoint (its deploy and sweep)."""
    for item in (d.cost or {}).get("items", []):
        same = (item.get("machine_type"), item.get("accelerator_type") or "") == (
            candidate.get("machine_type"),
            candidate.get("accelerator_type") or "",
        ) and int(item.get("replicas") or 1) == int(candidate.get("replicas", 1))
        if same and item.get("usd") is not None:
            return f"${item['usd']:.4f} ({item['seconds']:.0f} s)"
    return "–"


def _rightsize(d: ReportData) -> str:
    from components.runtime.candidate_labels import candidate_run_id
    from reports.charts import cost_throughput_chart

    rec = d.recommendation or {}
    chosen = rec.get("recommended")
    rows, points = [], []
    for row in rec.get("candidates", []):
        key = row.get("key", "")
        name = _e(row.get("description") or key)
        link = d.candidate_reports.get(
            candidate_run_id(rec.get("run_label", ""), row.get("candidate") or {})
        )
        if link:
            name = f'<a href="{_e(link)}">{name}</a>'
        is_chosen = chosen is not None and row.get("candidate") == chosen
        rows.append(
            [
                name + (" <b>(recommended)</b>" if is_chosen else ""),
                _word("PASS" if row.get("meets") else "FAIL"),
                _e(_fmt(row.get("knee_rps"), "g"))
                + (" (sweep's top)" if row.get("knee_capped") else ""),
                _e(_fmt(row.get("output_tokens_per_s"), ".0f")),
                _e(_fmt(row.get("usd_per_hour"), ".4f")),
                _e(_fmt(row.get("usd_per_million_output_tokens"), ".2f")),
                _e(_fmt(row.get("replicas_needed"), "d")),
                _e(_fmt(row.get("usd_per_hour_needed"), ".4f")),
                _e(_bill(d, row.get("candidate") or {})),
                _e(row.get("reason") or row.get("price_note") or ""),
            ]
        )
        points.append(
            (
                key,
                row.get("output_tokens_per_s"),
                row.get("usd_per_million_output_tokens"),
                is_chosen,
            )
        )
    if chosen:
        from components.runtime.candidate_labels import describe

        need = rec.get("required_rps") or rec.get("required_output_tokens_per_s")
        unit = "requests/s" if rec.get("required_rps") else "output tokens/s"
        why = f"for {need:g} {unit}" if need else "lowest USD per million output tokens"
        head = (
            f"<p id='recommended'>Recommended: <b>{_e(describe(chosen))}</b> x "
            f"{_e(rec.get('replicas'))} replica(s), {_e(why)}, "
            f"${_e(_fmt(rec.get('usd_per_hour'), '.4f'))} per hour.</p>"
        )
    else:
        head = f"<p id='recommended'>{_word('FAIL')} No recommendation: {_e(rec.get('reason'))}</p>"
    chart = cost_throughput_chart(points)
    notes = (
        "<p class='muted'>A candidate's capacity is its knee: the highest offered rate whose "
        "stage, and every one before it, met every SLO. Replicas are assumed to share the "
        "load evenly (not measured). Prices come from the run's price table (see Cost); a "
        "type the table lacks is never guessed. Offline, machine types differ only through "
        "the embedded Vertex AI's machine profiles (emulator/machine_profiles.json): those "
        "figures are the emulator's, not the machines'.</p>"
    )
    table = _table(
        (
            "candidate",
            "meets SLO",
            "knee req/s",
            "out tok/s at knee",
            "USD/h",
            "USD/1M out tokens",
            "replicas needed",
            "USD/h needed",
            "this run's bill",
            "note",
        ),
        rows,
    )
    return head + table + (f"<div class='chart'>{chart}</div>" if chart else "") + notes


def _clip(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _correctness(d: ReportData) -> str:
    c = d.correctness
    if not c:
        return "<p>No correctness phase ran (no reference model and no expectations).</p>"
    parts = []
    if c.get("note"):
        parts.append(f"<p class='muted'>{_e(c['note'])}</p>")
    parity = c.get("parity") or {}
    if parity.get("skipped"):
        parts.append(f"<p>Parity not measured: {_e(parity['skipped'])}</p>")
    elif parity:
        parts.append(
            f"<p id='parity'>Parity with <code>{_e(parity['reference'])}</code>: "
            f"{parity['matched']} of {len(parity['prompts'])} prompts match over their first "
            f"{c.get('tokens_compared')} tokens ({parity['ratio']:.0%}).</p>"
        )
        rows = [
            [
                _e(_clip(r["prompt"], 60)),
                _e(f"{r['common_prefix']}"),
                _word("PASS" if r["matched"] else "FAIL"),
                _e(_clip(r["error"] or r["answer"])),
                _e(_clip(r["reference"])),
            ]
            for r in parity["prompts"]
        ]
        parts.append(_table(("prompt", "common prefix", "match", "answer", "reference"), rows))
    expect = c.get("expectations") or {}
    if expect:
        parts.append(
            f"<p id='expectations'>Expectations: {expect['passed']} of "
            f"{len(expect['results'])} met ({expect['ratio']:.0%}).</p>"
        )
        rows = [
            [
                _e(f"{r['line']}"),
                _e(r.get("name") or _clip(r["prompt"], 60)),
                _word("FAIL" if r["failed"] else "PASS"),
                _e("; ".join(r["failed"]) or _clip(r["answer"])),
            ]
            for r in expect["results"]
        ]
        parts.append(_table(("line", "expectation", "result", "answer or why"), rows))
    drift = (d.verdict.correctness_drift if d.verdict is not None else None) or {}
    if drift:
        from history.drift import describe

        parts.append(f"<p id='drift'>Drift: {_e(describe(drift))}</p>")
        rows = [[_e(_clip(r["prompt"], 60)), _e(_clip(r["before"])), _e(_clip(r["now"]))]
                for r in drift.get("prompts", [])]  # fmt: skip
        if rows:
            parts.append(_table(("prompt", "last PASS run", "this run"), rows))
    return "".join(parts)


def _regression(d: ReportData) -> str:
    v = d.verdict
    if v is None:
        return "<p>No regression verdict (no history given, or the run did not finish).</p>"
    rows = []
    for m in v.metrics:
        pvalues = " / ".join(f"{p:.2g}" for p in (m.pvalue, m.request_pvalue) if p is not None)
        rows.append(
            [
                _e(m.label + ("" if m.gated else " (not gated)")),
                _e(_fmt(m.candidate)),
                _e("–" if m.baseline is None else f"{m.baseline:.4g} (n={m.baseline_runs})"),
                _e("–" if m.change_pct is None else f"{m.change_pct:+.1f} %"),
                _e(m.method),
                _e(pvalues or "–"),
                _word(m.word),
            ]
        )
    from history.verdict import notes as verdict_notes

    notes = "".join(f"<li>{_e(note)}</li>" for note in verdict_notes(v))
    notes += "".join(f"<li>skipped history entry {_e(p)}</li>" for p in v.skipped)
    return (
        f"<p>Against {v.history_runs} earlier run(s) of series <code>{_e(v.series_key)}</code>: "
        f"{_word(v.overall)}</p>"
        + _table(("metric", "this run", "baseline", "change", "method", "p-value", "verdict"), rows)
        + (f"<ul class='muted'>{notes}</ul>" if notes else "")
    )


def _trends(d: ReportData) -> str:
    if not d.series:
        return "<p>No history for this series.</p>"
    from history.changepoints import change_points

    entries = list(d.series)
    labels = [e.record.started.strftime("%m-%d %H:%M:%S") for e in entries]
    here = next((i for i, e in enumerate(entries) if e.record.run_id == d.run_id), None)
    charts = []
    for metric, title, unit in TRENDS:
        values = [float(e.metrics.get(metric, float("nan"))) for e in entries]
        points = [cp.index for cp in change_points(values)] if len(values) >= 3 else []
        svg = trend_chart(labels, values, title, unit, highlight=here, change_points=points)
        charts.append(f'<div class="chart" data-chart="trend-{_e(metric)}">{svg}</div>')
    return (
        f"<p class='muted'>{len(entries)} run(s) of this series; ★ marks this run, dashed lines "
        "the change points Apache Otava finds.</p>"
        f'<div class="charts">{"".join(charts)}</div>'
    )


def _load(d: ReportData) -> str:
    svg = load_chart(d.load_history_csv) if d.load_history_csv else None
    if svg is None:
        return "<p>No load time series (the load test did not run).</p>"
    return f'<div class="chart" data-chart="load">{svg}</div>'


def _cleanup(d: ReportData) -> str:
    c = d.cleanup
    if not c:
        return f"<p>{_e(d.cleanup_note or 'No clean-up record.')}</p>"
    rows = [
        [
            _e(e.get("name", "")),
            _e(", ".join(e.get("undeployed_models", [])) or "–"),
            _word("PASS" if e.get("deleted") else "FAIL"),
            _e(f"{float(e.get('seconds', 0)):.1f} s"),
            _e(e.get("error") or ""),
        ]
        for e in c.get("endpoints", [])
    ]
    left = c.get("left") or []
    return (
        f"<p>label <code>{_e(c.get('run_label', ''))}</code>: {len(rows)} endpoint(s) in "
        f"{float(c.get('seconds', 0)):.1f} s; left behind: {_e(', '.join(left) or 'nothing')}</p>"
        + _table(("endpoint", "undeployed models", "deleted", "took", "error"), rows)
    )


def _locust(d: ReportData) -> str:
    link = d.locust_report_link
    if not link:
        return "<p>No Locust report (the load test did not run).</p>"
    if "://" in link:  # an artifact URI: not something a browser here can open
        return f"<p>Locust's own report: <code>{_e(link)}</code></p>"
    return f'<p>Locust\'s own report: <a id="locust-report" href="{_e(link)}">{_e(link)}</a></p>'


def render(d: ReportData) -> str:
    """The report page as one HTML string."""
    if d.recommendation is not None:
        sections = [
            ("Right-sizing", _rightsize(d)),
            ("Cost", _cost(d)),
            ("Clean-up", _cleanup(d)),
        ]
        return _page(d, sections)
    sections = [
        ("Verdict", _summary(d)),
        ("SLO gate", _slo(d)),
        ("LLM serving", _llm(d)),
        ("Workload", _workload(d)),
        ("Cost", _cost(d)),
        ("Correctness", _correctness(d)),
        ("Regression against history", _regression(d)),
        ("Trends over the series", _trends(d)),
        ("The load over time", _load(d)),
        ("Clean-up", _cleanup(d)),
        ("Locust report", _locust(d)),
    ]
    return _page(d, sections)


def _page(d: ReportData, sections: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<section><h2>{_e(t)}</h2>{html_}</section>" for t, html_ in sections)
    notes = "".join(f"<p class='muted'>{_e(n)}</p>" for n in d.notes)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>deploytest run {_e(d.run_id)}</title>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<style>{_CSS}</style></head><body><h1>deploytest run {_e(d.run_id)}</h1>"
        f"{notes}{body}</body></html>\n"
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def build_report(
    run_id: str,
    *,
    stats_dir: str | Path | None,
    record=None,
    metrics: Mapping[str, Any] | None = None,
    series: Sequence[Any] = (),
    verdict=None,
    gate: Mapping[str, Any] | None = None,
    regression_mode: str = "",
    cleanup: Mapping[str, Any] | None = None,
    cleanup_note: str = "",
    locust_report_link: str = "",
    cost: Mapping[str, Any] | None = None,
    cost_note: str = "",
    recommendation: Mapping[str, Any] | None = None,
    candidate_reports: Mapping[str, str] | None = None,
) -> str:
    """The report page of one run from what it left: its stats folder, record and verdict.

    `gate` holds the gate's parameters (slo_p95_ms, max_failure_ratio, min_rps, slo_checks,
    min_parity, min_expect_pass): the SLO table is components.metrics_schema.gate_checks,
    the gate task's own checks. `cost` is components.cost.run_cost's answer (`cost_note`
    says why there is none).
    """
    from components.metrics_schema import gate_checks
    from components.runtime.load_test import output_files
    from correctness.phase import RESULT_NAME

    checks = gate_checks(metrics, gate) if gate else []
    files = output_files(stats_dir) if stats_dir else {}
    correctness = read_json(Path(stats_dir) / RESULT_NAME) if stats_dir else None
    return render(
        ReportData(
            run_id=run_id,
            metrics=metrics,
            record=record,
            slo_checks=checks,
            verdict=verdict,
            regression_mode=regression_mode,
            series=series,
            load_history_csv=files.get("history_csv"),
            cleanup=cleanup,
            cleanup_note=cleanup_note,
            locust_report_link=locust_report_link,
            correctness=correctness if isinstance(correctness, dict) else None,
            cost=cost,
            cost_note=cost_note,
            recommendation=recommendation,
            candidate_reports=dict(candidate_reports or {}),
        )
    )


def write_run_report(run_dir: str | Path, parameters: Mapping[str, Any]) -> Path:
    """(Re)write `run_dir/report.html` from what the run left there, the clean-up included.

    The pipeline's record task renders the report before the exit handler cleans up; a local run
    renders it again afterwards so the page also holds the clean-up record.
    """
    from history.recorder import VERDICT_JSON, load_verdict, read_record, regression_mode
    from history.records import RecordError
    from history.store import Entry, StoreError, entry_name, open_store

    run_dir = Path(run_dir)
    notes = []
    try:
        record = read_record(run_dir)
    except RecordError as exc:
        record, notes = None, [f"run.json unreadable: {exc}"]
    metrics = read_json(run_dir / "metrics.json")
    verdict = load_verdict(run_dir / VERDICT_JSON)
    series = []
    if record is not None and isinstance(metrics, dict):
        series = [Entry(entry_name(record), record, metrics)]
        if parameters.get("history"):
            try:
                listing = open_store(parameters["history"]).list()
                key = record.series.key()
                series = [e for e in listing.entries if e.record.series.key() == key]
                if not any(e.record.run_id == record.run_id for e in series):
                    series.append(Entry(entry_name(record), record, metrics))
                series.sort(key=lambda e: e.record.started)
            except StoreError as exc:
                notes.append(f"history unreadable: {exc}")
    stats_dir = run_dir / "stats"
    page = build_report(
        record.run_id if record else run_dir.name,
        stats_dir=stats_dir if stats_dir.is_dir() else None,
        record=record,
        metrics=metrics if isinstance(metrics, dict) else None,
        series=series,
        verdict=verdict,
        gate=parameters,
        regression_mode=regression_mode(
            parameters.get("regression", ""), parameters.get("trigger", "manual")
        ),
        cleanup=read_json(run_dir / "cleanup.json"),
        cost=(read_json(run_dir / "summary.json") or {}).get("cost"),
        cost_note="No cost: the run has no summary with a clean-up record.",
        cleanup_note="No clean-up record: the exit task did not write one.",
        locust_report_link=LOCUST_REPORT if (run_dir / LOCUST_REPORT).is_file() else "",
        recommendation=read_json(run_dir / "recommendation.json")
        if (run_dir / "recommendation.json").is_file()
        else None,
        candidate_reports=_candidate_reports(run_dir),
    )
    if notes:
        page = page.replace("<body>", "<body>" + "".join(f"<p>{_e(n)}</p>" for n in notes), 1)
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


def _candidate_reports(run_dir: Path) -> dict[str, str]:
    """Each right-sizing branch's own run report in the job's outputs, by candidate key
    (from the branch's run.json: its run id ends with the key)."""
    out = {}
    for report in sorted(run_dir.glob("kfp/*/for-loop-*-iteration-*/record-run/report")):
        record = read_json(report.parent / "record" / "run.json")
        if isinstance(record, dict) and record.get("run_id"):
            out[record["run_id"]] = str(report.relative_to(run_dir))
    return out
