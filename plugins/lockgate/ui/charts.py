"""Small inline SVG charts for the Lockgate page (no JavaScript, no CDN).

:func:`rows_chart` draws, per run, three bars side by side: rows extracted, rows
loaded and rows quarantined, on one scale, with the run's details as a tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from lockgate.ui.status import RunPoint

SERIES = (
    ("extracted", "#7aa6d8", lambda r: r.rows_extracted),
    ("loaded", "#2f7d4f", lambda r: r.rows_loaded),
    ("quarantined", "#c0392b", lambda r: r.rows_quarantined),
)
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 160, 56, 22, 8


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value``."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def _tooltip(run: RunPoint) -> str:
    when = run.interval_start.date().isoformat() if run.interval_start else "manual"
    return (
        f"{run.label}\ninterval {when}\nstatus {run.status}\nextracted {run.rows_extracted:,}\n"
        f"loaded {run.rows_loaded:,}\nquarantined {run.rows_quarantined:,}"
    )


def _bars(runs: Sequence[RunPoint], top: int) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(runs), 1)
    bar = max(min(slot / 4, 14), 1)
    parts = []
    for i, run in enumerate(runs):
        x0 = LEFT + i * slot + (slot - 3 * bar) / 2
        parts.append(f"<g class='run'><title>{escape(_tooltip(run))}</title>")
        for j, (name, colour, value) in enumerate(SERIES):
            h = plot_h * value(run) / top
            y = TOP + plot_h - h
            parts.append(
                f"<rect class='{name}' x='{x0 + j * bar:.1f}' y='{y:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                f"fill='{colour}'/>"
            )
        parts.append("</g>")
    return parts


def _axes(runs: Sequence[RunPoint], top: int) -> list[str]:
    base = HEIGHT - BOTTOM
    parts = [
        f"<line x1='{LEFT}' y1='{TOP}' x2='{LEFT}' y2='{base}' stroke='#999'/>",
        f"<line x1='{LEFT}' y1='{base}' x2='{WIDTH - 4}' y2='{base}' stroke='#999'/>",
        f"<text x='{LEFT - 4}' y='{TOP + 10}' text-anchor='end'>{top:,}</text>",
        f"<text x='{LEFT - 4}' y='{base}' text-anchor='end'>0</text>",
    ]
    if runs:
        first, last = runs[0], runs[-1]
        for run, x, anchor in ((first, LEFT, "start"), (last, WIDTH - 4, "end")):
            when = (run.interval_start or run.started_at)
            label = when.date().isoformat() if when else ""
            parts.append(f"<text x='{x}' y='{HEIGHT - 6}' text-anchor='{anchor}'>{escape(label)}</text>")
    return parts


def rows_chart(runs: Sequence[RunPoint], *, title: str) -> str:
    """An SVG bar chart of rows per run (oldest left), or a note when there are no runs."""
    if not runs:
        return "<p class='muted'>No runs yet.</p>"
    top = _nice_max(max(max(value(r) for _, _, value in SERIES) for r in runs))
    legend = " ".join(
        f"<span class='key'><i style='background:{colour}'></i>{name}</span>" for name, colour, _ in SERIES
    )
    svg = (
        f"<svg class='chart' role='img' aria-label='{escape(title)}' viewBox='0 0 {WIDTH} {HEIGHT}' "
        f"width='100%' preserveAspectRatio='xMinYMin meet'>"
        + "".join(_axes(runs, top) + _bars(runs, top))
        + "</svg>"
    )
    return f"<figure><figcaption>{escape(title)} {legend}</figcaption>{svg}</figure>"
