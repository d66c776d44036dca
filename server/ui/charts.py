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
    scaled, magnitude = _scale(value, 1024.0 if binary else 1000.0)
    prefix = SI_PREFIXES[magnitude] + ("i" if binary and magnitude else "")
    return f"{_short_number(scaled)} {prefix}{unit}".strip()


SI_PREFIXES = ("", "K", "M", "G", "T", "P")


def _scale(value: float, base: float) -> tuple[float, int]:
    """`value` divided by `base` until it is below `base` (at most up to P): (the scaled value, the power of `base`)."""
    magnitude = 0
    scaled = abs(value)
    while scaled >= base and magnitude < len(SI_PREFIXES) - 1:
        scaled /= base
        magnitude += 1
    return math.copysign(scaled, value), magnitude


def _short_number(scaled: float) -> str:
    """Three significant digits at most: 512, 42, 1.5 → "1.50", 12.5 → "12.5"; whole numbers without decimals."""
    if abs(scaled) >= 100 or scaled == int(scaled):
        return f"{scaled:.0f}"
    return f"{scaled:.1f}" if abs(scaled) >= 10 else f"{scaled:.2f}"


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


MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 78, 12, 26, 62  # room for the y labels, title and legend


@dataclass(frozen=True, slots=True)
class _Frame:
    """The plot area of a chart in SVG pixels, and how times and values map into it."""

    left: int
    top: int
    plot_w: int
    plot_h: int
    start: float  # the time at the left edge (seconds since the epoch)
    span_t: float  # seconds across the plot (at least 1)
    y_low: float  # the value at the bottom edge (the lowest tick)
    y_high: float  # the value at the top edge (the highest tick)

    def x(self, ts: float) -> float:
        return self.left + (ts - self.start) / self.span_t * self.plot_w

    def y(self, value: float) -> float:
        return self.top + self.plot_h - (value - self.y_low) / ((self.y_high - self.y_low) or 1.0) * self.plot_h


def _value_ticks(chart: Chart, series: Sequence[Series]) -> list[float]:
    """The y ticks: round values covering the finite values drawn, from 0 when `floor_zero`, up to `ceiling` at least."""
    values = [v for s in series for _, v in s.points if math.isfinite(v)]
    low = min(values, default=0.0)
    high = max(values, default=1.0)
    if chart.floor_zero:
        low = min(low, 0.0)
    if chart.ceiling is not None:
        high = max(high, chart.ceiling) if high > chart.ceiling else chart.ceiling
    return nice_ticks(low, high)


def _header(chart: Chart, width: int, height: int) -> list[str]:
    """The opening `<svg>` tag and the title (with the unit in grey)."""
    esc = html.escape
    unit_text = f'<tspan font-weight="normal" fill="#666"> （{esc(chart.unit)}）</tspan>' if chart.unit else ""
    return [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{esc(chart.chart_id)}" width="{width}" height="{height}"'
             f' viewBox="0 0 {width} {height}" role="img" aria-label="{esc(chart.title)}" data-unit="{esc(chart.unit)}">'),
            f'<text x="{MARGIN_LEFT}" y="16" class="chart-title" font-size="13" font-weight="bold">{esc(chart.title)}{unit_text}</text>']  # fmt: skip


def _grid(frame: _Frame, ticks: list[float], chart: Chart, zone: tzinfo) -> list[str]:
    """Horizontal lines at the value ticks, vertical lines at the time ticks (with their labels) and the frame."""
    esc = html.escape
    left, top, plot_w, plot_h = frame.left, frame.top, frame.plot_w, frame.plot_h
    out = []
    for tick in ticks:
        ty = frame.y(tick)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{left - 4}" y="{ty + 4:.1f}" text-anchor="end" font-size="10" fill="#444">{esc(humanize(tick, chart.unit))}</text>')  # fmt: skip
    for ts, label in time_ticks(chart.start, chart.end, zone):
        tx = frame.x(ts)
        out.append(f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#f0f0f0"/>'
                   f'<text x="{tx:.1f}" y="{top + plot_h + 14}" text-anchor="middle" font-size="10" fill="#444">{esc(label)}</text>')  # fmt: skip
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>')
    return out


def _line(frame: _Frame, s: Series, colour: str, unit: str) -> list[str]:
    """One series as a `<path>` carrying its data (see the module docstring), dotted when it has few points."""
    esc = html.escape
    points = [(ts, v) for ts, v in s.points if math.isfinite(v)]
    d = " ".join(f"{'M' if i == 0 else 'L'}{frame.x(ts):.1f},{frame.y(v):.1f}" for i, (ts, v) in enumerate(points))
    out = [f'<path class="series" d="{d}" fill="none" stroke="{colour}" stroke-width="1.6" data-series="{esc(s.label)}"'
           f' data-ts="{" ".join(_number(ts) for ts, _ in points)}" data-values="{" ".join(_number(v) for _, v in points)}">'
           f'<title>{esc(s.label)}: {esc(humanize(points[-1][1], unit))}</title></path>']  # fmt: skip
    if len(points) <= FEW_POINTS:  # a lone point or a short line would be invisible without a marker
        out.extend(f'<circle cx="{frame.x(ts):.1f}" cy="{frame.y(v):.1f}" r="2.5" fill="{colour}"/>' for ts, v in points)
    return out


def _legend(series: Sequence[Series], unit: str, *, width: int, left: int, first_y: int) -> tuple[list[str], int]:
    """A colour box and "label newest-value" per series, wrapping onto a new line at `width`: (markup, last line's y)."""
    out = []
    legend_y, cursor = first_y, left
    for index, s in enumerate(series):
        text = f"{s.label} {humanize(s.points[-1][1], unit)}"
        if cursor + 12 + len(text) * 6.5 > width and cursor > left:
            cursor, legend_y = left, legend_y + 14
        out.append(f'<rect x="{cursor}" y="{legend_y - 8}" width="10" height="10" fill="{PALETTE[index % len(PALETTE)]}"/>'
                   f'<text x="{cursor + 13}" y="{legend_y + 1}" font-size="10" class="legend">{html.escape(text)}</text>')  # fmt: skip
        cursor += 24 + int(len(text) * 6.5)
    return out, legend_y


def line_chart(chart: Chart, *, zone: tzinfo = DEFAULT_ZONE, width: int = 560, height: int = 220,
               no_data: str = "无数据", more: Callable[[int], str] = lambda n: f"另有 {n} 条") -> str:
    """The chart as an inline SVG document (a string of trusted markup: every text is escaped here)."""
    drawn = [s for s in chart.series if s.points]
    series = drawn[:MAX_SERIES]
    left_out = len(drawn) - len(series)
    ticks = _value_ticks(chart, series)
    left, top = MARGIN_LEFT, MARGIN_TOP
    frame = _Frame(left=left, top=top, plot_w=width - left - MARGIN_RIGHT, plot_h=height - top - MARGIN_BOTTOM,
                   start=chart.start, span_t=max(chart.end - chart.start, 1.0), y_low=ticks[0], y_high=ticks[-1])  # fmt: skip
    out = _header(chart, width, height) + _grid(frame, ticks, chart, zone)
    if not series:
        out.append(f'<text x="{left + frame.plot_w / 2}" y="{top + frame.plot_h / 2}" text-anchor="middle" fill="#888"'
                   f' class="no-data">{html.escape(no_data)}</text>')  # fmt: skip
    for index, s in enumerate(series):
        out.extend(_line(frame, s, PALETTE[index % len(PALETTE)], chart.unit))
    legend, legend_y = _legend(series, chart.unit, width=width, left=left, first_y=top + frame.plot_h + 30)
    out.extend(legend)
    if left_out > 0:
        out.append(f'<text x="{left}" y="{legend_y + 14}" font-size="10" fill="#888">{html.escape(more(left_out))}</text>')
    out.append("</svg>")
    total = max(height, int(legend_y + (20 if left_out > 0 else 8)))  # the legend may wrap onto more lines
    out[0] = out[0].replace(f'height="{height}" viewBox="0 0 {width} {height}"', f'height="{total}" viewBox="0 0 {width} {total}"')
    return "".join(out)


def ranges() -> dict[str, timedelta]:
    """The time ranges a page offers."""
    return {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
