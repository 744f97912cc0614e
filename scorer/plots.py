"""Line plots of trace series as self-contained SVG (no JavaScript), for the registry's pages and
the reports. Every text is escaped; the numbers are drawn, not embedded as script data."""

from __future__ import annotations

import html
import math

from trainmark.scorer import units

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
BAND_COLOURS = {"warm-up": "#fde7c8", "profiled": "#dcd3f2"}
PLOT_KINDS = {"loss": "Loss", "step_time": "Step time", "power": "Power", "memory": "Memory"}
OVERLAY_MAX_SERIES = 8
"""Runs are drawn in one plot per quantity while that makes at most this many lines; past it, one
plot per device (or node) with every run in it."""


def human(value: float, unit: str) -> str:
    """A value with a readable unit prefix (trainmark.scorer.units: IEC bytes, SI, durations)."""
    return units.human(value, unit)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick positions (1, 2, 5 x 10^k) covering [low, high]."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, tick = [], first
    while tick <= high + step * 0.5:
        ticks.append(round(tick, 12))
        tick += step
    return ticks


def line_plot(
    title: str,
    series: list[tuple[str, list[list[float]]]],
    unit: str,
    x_label: str = "seconds since the run started",
    width: int = 680,
    height: int = 240,
    bands: list[tuple[str, float, float]] = (),
    y_max: float | None = None,
) -> str:
    """An SVG line chart of one or more (label, [[x, y], ...]) series sharing a y unit; `bands`
    (label, x from, x to) shade phases of the x axis behind the lines. With `y_max` the axis ends
    there: higher points are drawn on the top edge and a note says how high they went."""
    points = [point for _, data in series for point in data]
    # The legend sits between the title and the plot area, never over the data; its columns are
    # as wide as its longest label, so two labels never overlap.
    column_w = max(120, 7 * max((len(label) for label, _ in series), default=0) + 24)
    per_row = max(1, (width - 72 - 16) // column_w)
    legend_rows = (len(series) + per_row - 1) // per_row
    left, right, top, bottom = 72, 16, 28 + 15 * legend_rows, 40
    height += 15 * legend_rows
    plot_w, plot_h = width - left - right, height - top - bottom
    title_text = html.escape(title)
    if not points:
        return (
            f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 60" role="img" '
            f'aria-label="{title_text}"><text x="8" y="36">{title_text}: no data</text></svg>'
        )
    x_max = max([x for x, _ in points] + [end for _, _, end in bands]) or 1.0
    y_values = [y for _, y in points]
    off_scale = [y for y in y_values if y_max is not None and y > y_max]
    y_low, y_high = min(0.0, min(y_values)), max(y_values) if not off_scale else y_max
    # Bytes tick at round binary multiples (1, 2, 4 GiB), not at round decimal byte counts.
    scale = 1024.0 ** max(0, int(math.log(max(abs(y_high), 1.0), 1024))) if unit == "By" else 1.0
    y_ticks = [tick * scale for tick in nice_ticks(y_low / scale, y_high / scale)]
    y_low, y_high = min(y_ticks[0], y_low), max(y_ticks[-1], y_high)
    x_ticks = nice_ticks(0.0, x_max)
    x_max = max(x_ticks[-1], x_max)

    def sx(x: float) -> float:
        return left + plot_w * x / x_max

    def sy(y: float) -> float:
        return top + plot_h * (1 - (min(y, y_high) - y_low) / ((y_high - y_low) or 1.0))

    parts = [
        f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{title_text}" font-family="sans-serif" font-size="11">',
        f"<title>{title_text}</title>",
        f'<text x="{left}" y="16" font-size="13" font-weight="bold">{title_text}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{html.escape(human(tick, unit))}</text>')
    for tick in x_ticks:
        x = sx(tick)
        parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{html.escape(x_label)}</text>')
    for label, start, end in bands:
        shade = BAND_COLOURS.get(label, "#eeeeee")
        x0, x1 = sx(max(0.0, start)), sx(min(end, x_max))
        parts.append(
            f'<rect class="phase" data-label="{html.escape(label)}" x="{x0:.1f}" y="{top}" '
            f'width="{max(x1 - x0, 0.5):.1f}" height="{plot_h}" fill="{shade}" fill-opacity="0.55">'
            f"<title>{html.escape(label)}</title></rect>"
        )
    labelled = []
    for label, start, _ in bands:
        if label not in labelled:  # one caption per phase kind, at its first span, each on its own line
            parts.append(
                f'<text class="phase-label" x="{sx(max(0.0, start)) + 2:.1f}" '
                f'y="{top + plot_h - 4 - 13 * len(labelled)}" fill="#666">{html.escape(label)}</text>'
            )
            labelled.append(label)
    if off_scale:
        parts.append(
            f'<text class="off-scale" x="{left + plot_w - 4}" y="{top + 12}" text-anchor="end" fill="#666">'
            f"{len(off_scale)} point(s) above, up to {html.escape(human(max(off_scale), unit))} "
            f"(scaled to the steady state)</text>"
        )
    for index, (label, data) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        coordinates = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in data)
        parts.append(
            f'<polyline class="series" data-label="{html.escape(label)}" data-points="{len(data)}" '
            f'fill="none" stroke="{colour}" stroke-width="1.5" points="{coordinates}"/>'
        )
        legend_x = left + column_w * (index % per_row)
        legend_y = 36 + 15 * (index // per_row)
        parts.append(f'<rect x="{legend_x}" y="{legend_y - 8}" width="10" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{legend_y - 4}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def steady_state_ceiling(values: list[float]) -> float | None:
    """Where a step-time axis should end so that the steady state fills it: twice the median, when
    some steps (the warm-up, the profiled ones) run past that; else None (no cut needed)."""
    if len(values) < 4:
        return None
    ordered = sorted(values)
    ceiling = 2 * ordered[len(ordered) // 2]
    return ceiling if ordered[-1] > ceiling else None


def overlaid_plots(series: list[dict]) -> list[str]:
    """One plot per quantity (loss, step time, power, memory) with every run in it and a legend;
    past OVERLAY_MAX_SERIES lines, one plot per device or node, every run in it. Step times end
    at the steady state (see steady_state_ceiling), and the first run's warm-up and profiled steps
    are shaded."""
    kinds: dict[str, list[dict]] = {}
    bands: list[tuple[str, float, float]] = []
    first_run = next((item["run_id"] for item in series), None)
    for item in series:
        if item["kind"] == "phase":
            if item["run_id"] == first_run:
                bands.extend((item["label"], start, end) for start, end in item["points"])
            continue
        kinds.setdefault(item["kind"], []).append(item)
    ordered = sorted(
        kinds.items(), key=lambda pair: list(PLOT_KINDS).index(pair[0]) if pair[0] in PLOT_KINDS else len(PLOT_KINDS)
    )
    plots = []
    for kind, items in ordered:
        labels = sorted({item["label"] for item in items})
        groups = (
            [("", items)]
            if len(items) <= OVERLAY_MAX_SERIES or len(labels) == 1
            else [(f", {label}", [item for item in items if item["label"] == label]) for label in labels]
        )
        for suffix, group in groups:
            single_label = len({item["label"] for item in group}) == 1
            lines = [
                (item["run_id"] if single_label else f"{item['run_id']} {item['label']}", item["points"])
                for item in group
            ]
            ceiling = (
                steady_state_ceiling([y for item in group for _, y in item["points"]]) if kind == "step_time" else None
            )
            plots.append(
                line_plot(
                    f"{PLOT_KINDS.get(kind, kind)}{suffix}: {len({i['run_id'] for i in group})} run(s)",
                    lines,
                    group[0]["unit"],
                    bands=bands if kind in ("step_time", "loss") else (),
                    y_max=ceiling,
                )
            )
    return plots


def interval_plot(
    title: str, rows: list[tuple[str, float, float | None, float | None]], reference: float = 1.0, width: int = 680
) -> str:
    """Ratios with their 95 % intervals as dots and whiskers, one row each, with a line at
    `reference` ("no change"); a row without an interval is a hollow dot."""
    # The labels name whole configurations: the margin fits the longest (about 6.2 px a character
    # at 11 px), and the figure widens rather than cut a label or squeeze the axis.
    longest = max((len(label) for label, *_ in rows), default=0)
    left, right, top, row_h = max(120, round(6.2 * longest) + 16), 24, 30, 26
    width = max(width, left + right + 320)
    height = top + row_h * len(rows) + 34
    plot_w = width - left - right
    values = [reference] + [v for _, value, low, high in rows for v in (value, low, high) if v is not None]
    low_x, high_x = min(values), max(values)
    span = (high_x - low_x) or abs(reference) or 1.0
    low_x, high_x = low_x - 0.08 * span, high_x + 0.08 * span
    ticks = [tick for tick in nice_ticks(low_x, high_x) if low_x <= tick <= high_x]

    def sx(x: float) -> float:
        return left + plot_w * (x - low_x) / (high_x - low_x)

    title_text = html.escape(title)
    parts = [
        f'<svg class="plot interval" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{title_text}" font-family="sans-serif" font-size="11">',
        f"<title>{title_text}</title>",
        f'<text x="8" y="16" font-size="13" font-weight="bold">{title_text}</text>',
    ]
    bottom = top + row_h * len(rows)
    for tick in ticks:
        parts.append(f'<line x1="{sx(tick):.1f}" y1="{top}" x2="{sx(tick):.1f}" y2="{bottom}" stroke="#eee"/>')
        parts.append(f'<text x="{sx(tick):.1f}" y="{bottom + 14}" text-anchor="middle">{tick:g}</text>')
    parts.append(
        f'<line class="reference" x1="{sx(reference):.1f}" y1="{top - 4}" x2="{sx(reference):.1f}" '
        f'y2="{bottom}" stroke="#555" stroke-dasharray="4 3"/>'
    )
    parts.append(
        f'<text x="{sx(reference):.1f}" y="{bottom + 28}" text-anchor="middle" fill="#555">'
        f"{reference:g} = no change</text>"
    )
    for index, (label, value, low, high) in enumerate(rows):
        y = top + row_h * index + row_h / 2
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{html.escape(label)}</text>')
        if low is not None and high is not None:
            parts.append(
                f'<line class="interval" x1="{sx(low):.1f}" y1="{y:.1f}" x2="{sx(high):.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        fill = colour if low is not None else "#fff"
        parts.append(
            f'<circle class="ratio" data-label="{html.escape(label)}" data-value="{value!r}" '
            f'cx="{sx(value):.1f}" cy="{y:.1f}" r="4.5" fill="{fill}" stroke="{colour}"/>'
        )
    parts.append("</svg>")
    return "\n".join(parts)
