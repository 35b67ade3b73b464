"""`deploytest history`: the runs of a series, their key figures, change points and a chart."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TREND_METRICS = (("p95_ms", "p95 latency", "ms"), ("rps", "requests/s", "1/s"))


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "history",
        help="list the runs of a series with their change points; write a trend chart",
        description="List the runs in the history by series (oldest first) with p50/p95/p99, "
        "requests/s, output tokens/s and failure ratio, and the change points Apache Otava finds "
        "per metric; write one trend chart (SVG) per series listed. Exits 2 on bad input.",
    )
    p.add_argument("--history", required=True, help="history folder or gs://BUCKET[/PREFIX]")
    p.add_argument(
        "--series",
        default="",
        help="a series key (or its first characters) or a model display name (default: all)",
    )
    p.add_argument(
        "--chart-dir",
        default=".",
        help="where trend-SERIESKEY.svg goes (default: the current folder)",
    )
    p.set_defaults(func=run)


def format_series(runs) -> str:
    """One series as a table of runs, then its change points."""
    from history.verdict import METRICS

    header = ("#", "started (UTC)", "run", "p50 ms", "p95 ms", "p99 ms", "req/s", "tok/s", "fail")
    rows = [header]
    for i, e in enumerate(runs.entries, 1):
        m = e.metrics
        rows.append(
            (
                str(i),
                e.record.started.strftime("%Y-%m-%d %H:%M"),
                e.record.run_id,
                f"{m['p50_ms']:.0f}",
                f"{m['p95_ms']:.0f}",
                f"{m['p99_ms']:.0f}",
                f"{m['rps']:.2f}",
                f"{m['output_tokens_per_s']:.1f}",
                f"{m['failure_ratio']:.2%}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [f"series {runs.key}: {runs.series.describe()} ({len(runs.entries)} runs)"]
    lines += ["  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    labels = {spec.name: spec.label for spec in METRICS}
    found = False
    for metric, points in runs.change_points.items():
        for cp in points:
            found = True
            run = runs.entries[cp.index].record.run_id
            lines.append(
                f"  change point: {labels[metric]} at run #{cp.index + 1} ({run}): "
                f"{cp.before:.4g} -> {cp.after:.4g} ({cp.change_pct:+.1f}%, p={cp.pvalue:.2g})"
            )
    if not found:
        lines.append("  change points: none")
    return "\n".join(lines)


def write_chart(runs, chart_dir: Path) -> Path:
    from reports.charts import trend_chart

    labels = [e.record.started.strftime("%m-%d %H:%M") for e in runs.entries]
    parts = [
        trend_chart(
            labels,
            runs.values(metric),
            f"{title} — {runs.series.model_display_name}",
            unit,
            change_points=[cp.index for cp in runs.change_points.get(metric, [])],
        )
        for metric, title, unit in TREND_METRICS
    ]
    path = chart_dir / f"trend-{runs.key}.svg"
    # Two charts stacked in one SVG document.
    body = "".join(
        f'<g transform="translate(0,{i * 270})">{svg}</g>' for i, svg in enumerate(parts)
    )
    path.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="640" height="{270 * len(parts)}">{body}</svg>\n',
        encoding="utf-8",
    )
    return path


def run(args: argparse.Namespace) -> int:
    from history.series import group, select
    from history.store import StoreError, open_store

    chart_dir = Path(args.chart_dir)
    if not chart_dir.is_dir():
        print(f"deploytest history: --chart-dir {chart_dir} is not a folder", file=sys.stderr)
        return 2
    try:
        listing = open_store(args.history).list()
    except StoreError as exc:
        print(f"deploytest history: {exc}", file=sys.stderr)
        return 2
    for problem in listing.problems:
        print(f"deploytest history: skipped history entry {problem}", file=sys.stderr)
    groups = group(listing.entries)
    chosen = select(groups, args.series)
    if not chosen:
        known = ", ".join(f"{g.key} ({g.series.model_display_name})" for g in groups.values())
        what = f"no series matches {args.series!r}" if args.series else "the history is empty"
        print(f"deploytest history: {what}; series: {known or 'none'}", file=sys.stderr)
        return 2
    for runs in chosen:
        print(format_series(runs))
        print(f"  trend chart: {write_chart(runs, chart_dir)}")
    return 0
