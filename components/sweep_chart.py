"""The sweep's chart: offered rate against E2E p95, TTFT p95 and goodput, the knee marked.

A self-contained SVG (no plotting library, opens in any browser, embeds in a report): three
small panels sharing the x axis, one point per stage, failed stages in red.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

PANELS = (
    ("p95_ms", "E2E p95 (ms)"),
    ("ttft_p95_ms", "TTFT p95 (ms)"),
    ("goodput_rps", "goodput (requests/s)"),
)
WIDTH, PANEL_H, LEFT, TOP, GAP = 560, 150, 70, 40, 40


def render(stages: list[dict[str, Any]], knee: float | None) -> str:
    """The SVG text for the sweep's stage rows (loadtests/shapes.py stage_row)."""
    rates = [float(s["offered_rate"]) for s in stages] or [1.0]
    x_max = max(rates) * 1.05
    plot_w = WIDTH - LEFT - 20

    def x(rate: float) -> float:
        return LEFT + plot_w * rate / x_max

    height = TOP + len(PANELS) * (PANEL_H + GAP) + 10
    title = f"rate sweep: knee {knee:g} requests/s" if knee else "rate sweep: no rate met every SLO"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="20" font-size="14">{escape(title)}</text>',
    ]
    for index, (key, label) in enumerate(PANELS):
        top = TOP + index * (PANEL_H + GAP)
        values = [s.get(key) for s in stages]
        y_max = max([v for v in values if v is not None] or [1.0]) * 1.1 or 1.0

        def y(value: float, top=top, y_max=y_max) -> float:
            return top + PANEL_H - PANEL_H * value / y_max

        out.append(
            f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" '
            'stroke="#999"/>'
        )
        out.append(f'<text x="{LEFT}" y="{top - 6}">{escape(label)}</text>')
        out.append(f'<text x="{LEFT - 6}" y="{top + 10}" text-anchor="end">{y_max:.4g}</text>')
        out.append(f'<text x="{LEFT - 6}" y="{top + PANEL_H}" text-anchor="end">0</text>')
        points = [(x(r), y(v)) for r, v in zip(rates, values, strict=False) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            out.append(f'<polyline points="{path}" fill="none" stroke="#36c"/>')
        for stage, value in zip(stages, values, strict=False):
            if value is None:
                continue
            colour = "#2a2" if stage.get("passed") else "#c22"
            cx, cy = x(float(stage["offered_rate"])), y(value)
            out.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{colour}"/>')
        if knee:
            kx = x(knee)
            out.append(
                f'<line x1="{kx:.1f}" y1="{top}" x2="{kx:.1f}" y2="{top + PANEL_H}" '
                'stroke="#2a2" stroke-dasharray="4 3"/>'
            )
        for rate in rates:
            out.append(
                f'<text x="{x(rate):.1f}" y="{top + PANEL_H + 13}" text-anchor="middle">'
                f"{rate:g}</text>"
            )
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{height - 2}" text-anchor="middle">'
        "offered rate (requests/s); green: stage met every SLO, red: it broke one</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(path: str | Path, stages: list[dict[str, Any]], knee: float | None) -> Path:
    """Write the chart to `path` and return it."""
    target = Path(path)
    target.write_text(render(stages, knee), encoding="utf-8")
    return target
