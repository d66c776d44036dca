"""Line charts as SVG, rendered on the server (no JavaScript), and the pure helpers that feed them.

A chart is a frame with a y axis (ticks in the series' unit, humanized), an x axis
(times in the configured zone), one `<path>` per series and a legend. Each path
carries its data as attributes, so a test (or a curious user with the inspector)
can read exactly what was drawn: `data-series` (the label), `data-ts` (seconds
since the epoch, space-separated) and `data-values` (the values, same order).

The helpers turn stored points into drawable series: `rate` makes per-second
rates of monotonically increasing counters (a counter reset starts over rather
than drawing a huge negative spike) and `last_per_bucket` keeps one point per
time bucket, which is how the console downsamples on the query side.

Do not use this for more than a few hundred points per series: the SVG grows
linearly and the browser has to lay out every point (downsample first).
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")
PALETTE = ("#1f6fb2", "#d9480f", "#2b8a3e", "#7048e8", "#c2255c", "#0b7285", "#e67700", "#495057")
FEW_POINTS = 30  # up to this many points per series, each is also marked with a dot
MAX_SERIES = 16  # a chart with more lines is unreadable; the rest are left out and counted in the legend


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a label and (seconds since the epoch, value) points, oldest first."""

    label: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Chart:
    """What to draw: a title, the unit of the y axis and the series over [start, end] (seconds since the epoch)."""

    chart_id: str
    title: str
    unit: str
    series: Sequence[Series]
    start: float
    end: float
    floor_zero: bool = True  # counts, bytes and percentages start at 0
    ceiling: float | None = None  # e.g. 100 for percentages
    notes: list[str] = field(default_factory=list)


# -- pure helpers -------------------------------------------------------------------------


def rate(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Per-second rates between consecutive points of a counter, stamped at the later point.

    A decrease is a counter reset (reboot, wrap of a 32-bit counter): that interval is skipped.
    """
    out: list[tuple[float, float]] = []
    previous: tuple[float, float] | None = None
    for ts, value in points:
        if previous is not None and ts > previous[0] and value >= previous[1]:
            out.append((ts, (value - previous[1]) / (ts - previous[0])))
        previous = (ts, value)
    return out


def last_per_bucket(points: Iterable[tuple[float, float]], bucket_seconds: float) -> list[tuple[float, float]]:
    """The newest point of each `bucket_seconds` bucket (points oldest first). For a counter this loses nothing:
    the rate between bucket ends is the exact mean rate over the bucket."""
    if bucket_seconds <= 0:
        return list(points)
    kept: dict[int, tuple[float, float]] = {}
    for ts, value in points:
        kept[int(ts // bucket_seconds)] = (ts, value)
    return [kept[k] for k in sorted(kept)]


def humanize(value: float, unit: str) -> str:
    """A short label for an axis tick: 1.5 G字节, 20 M比特/秒, 42 %, 0.75."""
    if not math.isfinite(value):
        return "—"
    if unit == "%":
        return f"{value:.0f} %" if abs(value) >= 10 or value == 0 else f"{value:.1f} %"
    binary = unit == "B" or unit.startswith(("字节", "B/"))
    base = 1024.0 if binary else 1000.0
    prefixes = ("", "K", "M", "G", "T", "P")
    magnitude = 0
    scaled = abs(value)
    while scaled >= base and magnitude < len(prefixes) - 1:
        scaled /= base
        magnitude += 1
    scaled = math.copysign(scaled, value)
    number = f"{scaled:.0f}" if abs(scaled) >= 100 or scaled == int(scaled) else f"{scaled:.1f}" if abs(scaled) >= 10 else f"{scaled:.2f}"
    prefix = prefixes[magnitude] + ("i" if binary and magnitude else "")
    return f"{number} {prefix}{unit}".strip()


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5, 5 × 10^n steps)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    exponent = math.floor(math.log10(raw))
    step = min((m * 10**exponent for m in (1, 2, 2.5, 5, 10) if m * 10**exponent >= raw), default=raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def time_ticks(start: float, end: float, zone: tzinfo, count: int = 6) -> list[tuple[float, str]]:
    """Evenly spaced x ticks with labels in `zone`: HH:MM for a day or less, MM-DD HH:MM beyond."""
    span = max(end - start, 1.0)
    fmt = "%H:%M" if span <= 86400 * 1.01 else "%m-%d %H:%M"
    return [(t, datetime.fromtimestamp(t, zone).strftime(fmt)) for t in (start + span * i / (count - 1) for i in range(count))]


def _number(value: float) -> str:
    """The shortest text that reads back as exactly `value` (integers without ".0")."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


# -- SVG ----------------------------------------------------------------------------------


def line_chart(chart: Chart, *, zone: tzinfo = DEFAULT_ZONE, width: int = 560, height: int = 220,
               no_data: str = "无数据", more: Callable[[int], str] = lambda n: f"另有 {n} 条") -> str:
    """The chart as an inline SVG document (a string of trusted markup: every text is escaped here)."""
    left, right, top, bottom = 78, 12, 26, 62
    plot_w, plot_h = width - left - right, height - top - bottom
    series = [s for s in chart.series if s.points][:MAX_SERIES]
    left_out = len([s for s in chart.series if s.points]) - len(series)
    values = [v for s in series for _, v in s.points if math.isfinite(v)]
    low = min(values, default=0.0)
    high = max(values, default=1.0)
    if chart.floor_zero:
        low = min(low, 0.0)
    if chart.ceiling is not None:
        high = max(high, chart.ceiling) if high > chart.ceiling else chart.ceiling
    ticks = nice_ticks(low, high)
    y_low, y_high = ticks[0], ticks[-1]
    span_t = max(chart.end - chart.start, 1.0)

    def x(ts: float) -> float:
        return left + (ts - chart.start) / span_t * plot_w

    def y(value: float) -> float:
        return top + plot_h - (value - y_low) / ((y_high - y_low) or 1.0) * plot_h

    esc = html.escape
    unit_text = f'<tspan font-weight="normal" fill="#666"> （{esc(chart.unit)}）</tspan>' if chart.unit else ""
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{esc(chart.chart_id)}" width="{width}" height="{height}"'
            f' viewBox="0 0 {width} {height}" role="img" aria-label="{esc(chart.title)}" data-unit="{esc(chart.unit)}">'),
           f'<text x="{left}" y="16" class="chart-title" font-size="13" font-weight="bold">{esc(chart.title)}{unit_text}</text>']  # fmt: skip
    for tick in ticks:
        ty = y(tick)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{left - 4}" y="{ty + 4:.1f}" text-anchor="end" font-size="10" fill="#444">{esc(humanize(tick, chart.unit))}</text>')  # fmt: skip
    for ts, label in time_ticks(chart.start, chart.end, zone):
        tx = x(ts)
        out.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#f0f0f0"/>'
                   f'<text x="{tx:.1f}" y="{top + plot_h + 14}" text-anchor="middle" font-size="10" fill="#444">{esc(label)}</text>')  # fmt: skip
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    if not series:
        out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#888" class="no-data">{esc(no_data)}</text>')
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        points = [(ts, v) for ts, v in s.points if math.isfinite(v)]
        d = " ".join(f"{'M' if i == 0 else 'L'}{x(ts):.1f},{y(v):.1f}" for i, (ts, v) in enumerate(points))
        out.append(f'<path class="series" d="{d}" fill="none" stroke="{colour}" stroke-width="1.6" data-series="{esc(s.label)}"'
                   f' data-ts="{" ".join(_number(ts) for ts, _ in points)}" data-values="{" ".join(_number(v) for _, v in points)}">'
                   f'<title>{esc(s.label)}: {esc(humanize(points[-1][1], chart.unit))}</title></path>')  # fmt: skip
        if len(points) <= FEW_POINTS:  # a lone point or a short line would be invisible without a marker
            out.extend(f'<circle cx="{x(ts):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>' for ts, v in points)
    legend_y = top + plot_h + 30
    cursor = left
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        text = f"{s.label} {humanize(s.points[-1][1], chart.unit)}"
        if cursor + 12 + len(text) * 6.5 > width and cursor > left:
            cursor, legend_y = left, legend_y + 14
        out.append(f'<rect x="{cursor}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{cursor + 13}" y="{legend_y + 1}" font-size="10" class="legend">{esc(text)}</text>')  # fmt: skip
        cursor += 24 + int(len(text) * 6.5)
    if left_out > 0:
        out.append(f'<text x="{left}" y="{legend_y + 14}" font-size="10" fill="#888">{esc(more(left_out))}</text>')
    out.append("</svg>")
    total = max(height, int(legend_y + (20 if left_out > 0 else 8)))  # the legend may wrap onto more lines
    out[0] = out[0].replace(f'height="{height}" viewBox="0 0 {width} {height}"', f'height="{total}" viewBox="0 0 {width} {total}"')
    return "".join(out)


def ranges() -> dict[str, timedelta]:
    """The time ranges a page offers."""
    return {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
