"""Charts as inline SVG, drawn by matplotlib (object API: no pyplot state, no display needed).

Each function returns an `<svg>` element as a string, ready to inline into an HTML page: the
page stays self-contained and opens offline.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path

_XML_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)


def _svg(fig) -> str:
    import matplotlib

    buffer = io.StringIO()
    # Text as <text> (small, searchable) and a fixed hash salt, so the same data gives the same SVG.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "deploytest"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    return _XML_PROLOGUE.sub("", buffer.getvalue(), count=1)


def trend_chart(
    labels: Sequence[str],
    values: Sequence[float],
    title: str,
    unit: str = "",
    highlight: int | None = None,
    change_points: Sequence[int] = (),
    baseline: float | None = None,
) -> str:
    """A metric over the runs of a series; `highlight` marks one run, change points get lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.6), dpi=96)
    ax = fig.subplots()
    xs = list(range(len(values)))
    ax.plot(xs, values, marker="o", markersize=4, linewidth=1.2, color="#3465a4", label=title)
    if highlight is not None and 0 <= highlight < len(values):
        ax.plot(
            [highlight],
            [values[highlight]],
            marker="*",
            markersize=14,
            color="#cc0000",
            linestyle="none",
            label="this run",
        )
    for index in change_points:
        ax.axvline(index - 0.5, color="#f57900", linestyle="--", linewidth=1)
    if baseline is not None:
        ax.axhline(baseline, color="#73d216", linestyle=":", linewidth=1, label="baseline")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(unit, fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=6)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)


def load_chart(history_csv: str | Path) -> str | None:
    """Users, requests/s and p95 over the load test, from Locust's `*_stats_history.csv`.

    None when the file is missing or holds no aggregated rows.
    """
    path = Path(history_csv)
    if not path.is_file():
        return None
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("Name") != "Aggregated":
                continue
            try:
                rows.append(
                    (
                        float(row["Timestamp"]),
                        float(row["User Count"]),
                        float(row["Requests/s"]),
                        float(row["95%"]) if row.get("95%") not in ("", "N/A", None) else None,
                    )
                )
            except (KeyError, ValueError):
                continue
    if not rows:
        return None
    from matplotlib.figure import Figure

    t0 = rows[0][0]
    t = [r[0] - t0 for r in rows]
    fig = Figure(figsize=(6.4, 2.8), dpi=96)
    ax = fig.subplots()
    ax.plot(t, [r[2] for r in rows], color="#3465a4", label="requests/s")
    ax.plot(t, [r[1] for r in rows], color="#75507b", linestyle="--", label="users")
    ax.set_xlabel("seconds into the load test", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    right = ax.twinx()
    p95 = [(x, r[3]) for x, r in zip(t, rows, strict=True) if r[3] is not None]
    right.plot([x for x, _ in p95], [v for _, v in p95], color="#cc0000", label="p95 ms")
    right.set_ylabel("p95 ms", fontsize=8)
    right.tick_params(labelsize=7)
    lines = ax.get_lines() + right.get_lines()
    ax.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="upper left")
    ax.set_title("the load over time", fontsize=10)
    return _svg(fig)


def distribution_chart(
    series: Sequence[tuple[str, Sequence[Sequence[float]]]],
    title: str,
    unit: str,
    marks: Sequence[tuple[str, float]] = (),
) -> str | None:
    """Distributions as step histograms: `series` is (label, [[value, count], ...]) each, as
    metrics.json's `histograms` hold them; `marks` draws labelled vertical lines (e.g. p95).

    None when no series has data.
    """
    series = [(label, counts) for label, counts in series if counts]
    if not series:
        return None
    from matplotlib.figure import Figure

    low = min(float(v) for _, counts in series for v, _ in counts)
    high = max(float(v) for _, counts in series for v, _ in counts)
    if high <= low:
        high = low + 1.0
    edges = [low + (high - low) * i / 40 for i in range(41)]
    fig = Figure(figsize=(6.4, 2.6), dpi=96)
    ax = fig.subplots()
    colors = ("#3465a4", "#f57900", "#4e9a06", "#75507b")
    for (label, counts), color in zip(series, colors, strict=False):
        ax.hist(
            [float(v) for v, _ in counts],
            bins=edges,
            weights=[int(n) for _, n in counts],
            histtype="step",
            linewidth=1.4,
            color=color,
            label=label,
        )
    for (label, value), color in zip(marks, ("#cc0000", "#888a85", "#c4a000"), strict=False):
        ax.axvline(value, color=color, linestyle="--", linewidth=1, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit, fontsize=8)
    ax.set_ylabel("requests", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)


def cost_throughput_chart(points: Sequence[tuple[str, float, float, bool]]) -> str | None:
    """Right-sizing: one dot per candidate at (output tokens/s at its knee, USD per million
    output tokens there), labelled, the recommended one filled. None without two points."""
    points = [p for p in points if p[1] and p[2] is not None]
    if len(points) < 2:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.0), dpi=96)
    ax = fig.subplots()
    for label, tokens, usd, chosen in points:
        ax.scatter(
            [tokens],
            [usd],
            s=46,
            color="#4e9a06" if chosen else "white",
            edgecolors="#4e9a06" if chosen else "#3465a4",
            linewidths=1.4,
            zorder=3,
        )
        ax.annotate(label, (tokens, usd), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_title("cost against throughput at each candidate's knee", fontsize=10)
    ax.set_xlabel("output tokens/s at the knee", fontsize=8)
    ax.set_ylabel("USD per million output tokens", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.margins(0.25)
    return _svg(fig)
