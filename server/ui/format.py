"""How the console shows values: times in the configured zone, numbers with units, status words translated.

Every template gets these as Jinja filters (`register`). They read the page's language (`lang`, "zh" or "en")
and time zone (`tz`, a ZoneInfo) from the template context that `server.ui.views._page` fills, so a template
just writes `{{ f.last_seen_at|when }}`, `{{ n|bytes }}`, `{{ f.status|status('finding') }}`.

The API of this module (filter names and arguments) is shared with other console pages: keep it stable.

    when        datetime or ISO string → "2026-12-04 15:11:59" in the zone (naive values are taken as UTC); None → "—"
    bytes       1536 → "1.5 KiB" / zh "1.5 KiB"; under 1024 → "512 字节" / "512 B"
    bps         bits per second → "12.3 兆比特/秒" / "12.3 Mbit/s"
    percent     a ratio (0.153) → "15.3%"; percent(ratio=False) for a value already in per cent
    number      0.015242 → "0.0152", 1234567.0 → "1,234,567"; unit="秒" appended
    seconds     a duration in seconds → "1.5 秒" / "2 分 5 秒" / "1.5 s" / "2 min 5 s"
    status      a status word of a finding, alert, incident, notification or request, translated
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, Undefined, pass_context
from jinja2.runtime import Context

DEFAULT_ZONE = "Asia/Shanghai"
EMPTY = "—"

# Status words by kind. A word means different things in different places ("open" incident: registered;
# "open" finding: not yet handled), so the kind picks the table first and COMMON is the fallback.
STATUS_TEXT: dict[str, dict[str, dict[str, str]]] = {
    "zh": {
        "finding": {"open": "未处置", "acknowledged": "已确认", "exempted": "已豁免", "remediated": "已整改",
                    "false_positive": "误报"},
        "alert": {"pending": "待触发", "firing": "触发中", "resolved": "已恢复"},
        "incident": {"open": "已登记", "investigating": "调查中", "contained": "已控制", "resolved": "已处置",
                     "closed": "已结案"},
        "notification": {"pending": "待发送", "sending": "发送中", "sent": "已送达", "failed": "失败"},
        "request": {"pending": "待审批", "approved": "已批准", "rejected": "已驳回"},
    },
    "en": {
        "finding": {"open": "open", "acknowledged": "acknowledged", "exempted": "exempted", "remediated": "remediated",
                    "false_positive": "false positive"},
        "alert": {"pending": "pending", "firing": "firing", "resolved": "resolved"},
        "incident": {"open": "open", "investigating": "investigating", "contained": "contained", "resolved": "resolved",
                     "closed": "closed"},
        "notification": {"pending": "pending", "sending": "sending", "sent": "delivered", "failed": "failed"},
        "request": {"pending": "pending", "approved": "approved", "rejected": "rejected"},
    },
}
SEVERITY_TEXT = {"zh": {"critical": "严重", "warning": "警告", "info": "提示", "high": "高", "medium": "中", "low": "低"},
                 "en": {"critical": "critical", "warning": "warning", "info": "info", "high": "high", "medium": "medium",
                        "low": "low"}}  # fmt: skip
# Every raw status word above, for tests that check a Chinese page shows none of them.
RAW_STATUS_WORDS = frozenset(w for kinds in STATUS_TEXT["en"].values() for w in kinds) | {"false_positive"}

# What the filters are given, as templates hold it. A missing attribute reaches a filter as Jinja's `Undefined`
# (its text is ""); a measured value may still be the text it was stored as in a JSON field.
Moment = datetime | str | Undefined | None  # a datetime, or ISO 8601 text (e.g. `observed_at` of evidence)
Quantity = float | str | None  # int and bool are accepted as float; text is parsed, None is unknown
Word = str | None  # a status or severity word

BYTE_UNITS = {"zh": ("字节", "KiB", "MiB", "GiB", "TiB", "PiB"), "en": ("B", "KiB", "MiB", "GiB", "TiB", "PiB")}
BPS_UNITS = {"zh": ("比特/秒", "千比特/秒", "兆比特/秒", "吉比特/秒", "太比特/秒"),
             "en": ("bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s")}  # fmt: skip


def zone(name: str | None) -> ZoneInfo:
    """The ZoneInfo of `name`; the default zone when it is empty or unknown (a typo must not break every page)."""
    try:
        return ZoneInfo(name or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_ZONE)


def format_time(value: Moment, tz: ZoneInfo | None = None) -> str:
    """`value` (datetime or ISO 8601 text) in `tz`, to the second. Naive datetimes are UTC (as the database keeps them)."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)  # not a time: show as given (escaped by Jinja)
    if not isinstance(value, datetime):  # Undefined: its text, ""
        return str(value)
    moment: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return moment.astimezone(tz or zone(None)).strftime("%Y-%m-%d %H:%M:%S")


def _scaled(value: float, units: tuple[str, ...], base: float) -> str:
    index = 0
    while abs(value) >= base and index < len(units) - 1:
        value /= base
        index += 1
    text = f"{value:.0f}" if index == 0 or abs(value) >= 100 else f"{value:.1f}"
    return f"{text} {units[index]}"


def _number(value: Quantity) -> float | None:
    """`value` as a finite float; None when it is unknown, not a number, NaN or infinite."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):  # text that is not a number (or an object a template passed)
        return None
    return number if math.isfinite(number) else None


def format_bytes(value: Quantity, lang: str = "zh") -> str:
    number = _number(value)
    return EMPTY if number is None else _scaled(number, BYTE_UNITS.get(lang, BYTE_UNITS["zh"]), 1024)


def format_bps(value: Quantity, lang: str = "zh") -> str:
    number = _number(value)
    return EMPTY if number is None else _scaled(number, BPS_UNITS.get(lang, BPS_UNITS["zh"]), 1000)


def format_number(value: Quantity, unit: str = "") -> str:
    """Thousands separators for large values, three significant digits for small ones; `unit` appended."""
    number = _number(value)
    if number is None:
        return EMPTY
    if number == int(number) or abs(number) >= 1000:
        text = f"{number:,.0f}"
    elif abs(number) >= 1:
        text = f"{number:.2f}".rstrip("0").rstrip(".")
    else:
        text = f"{number:.3g}"
    return f"{text} {unit}" if unit else text


def format_percent(value: Quantity, ratio: bool = True) -> str:
    number = _number(value)
    if number is None:
        return EMPTY
    number = number * 100 if ratio else number
    return f"{number:.0f}%" if number == int(number) or abs(number) >= 100 else f"{number:.1f}%"


SECOND_UNITS = {"zh": ("毫秒", "秒", "分", "小时"), "en": ("ms", "s", "min", "h")}


def format_seconds(value: Quantity, lang: str = "zh") -> str:
    """A duration: milliseconds below a second, seconds below a minute, else "1 小时 2 分 5 秒" (zero parts left out)."""
    number = _number(value)
    if number is None:
        return EMPTY
    ms, s, minute, hour = SECOND_UNITS["zh" if lang == "zh" else "en"]
    if 0 < abs(number) < 1:  # probe and poll durations: milliseconds, whole above 10 ms
        return f"{format_number(_milliseconds(number))} {ms}"
    if abs(number) < 60:
        return f"{format_number(number)} {s}"
    minutes, secs = divmod(round(number), 60)
    hours, minutes = divmod(minutes, 60)
    return " ".join(f"{n} {u}" for n, u in ((hours, hour), (minutes, minute), (secs, s)) if n) or f"0 {s}"


def _milliseconds(seconds: float) -> float:
    """`seconds` in milliseconds: whole from 10 ms, one decimal below."""
    ms = seconds * 1000
    return round(ms) if abs(ms) >= 10 else round(ms, 1)


def status_text(word: Word, kind: str = "", lang: str = "zh") -> str:
    """The status `word` of a `kind` (finding, alert, incident, notification, request) in `lang`."""
    if word is None or word == "":
        return EMPTY
    tables = STATUS_TEXT.get(lang, STATUS_TEXT["zh"])
    if kind in tables and word in tables[kind]:
        return tables[kind][word]
    for table in tables.values():  # an unknown kind: the first table that knows the word
        if word in table:
            return table[word]
    return str(word)


def severity_text(word: Word, lang: str = "zh") -> str:
    return SEVERITY_TEXT.get(lang, SEVERITY_TEXT["zh"]).get(str(word), str(word))


def _lang(context: Context) -> str:
    return "en" if context.get("lang") == "en" else "zh"


def register(env: Environment) -> None:
    """Install the filters on the console's Jinja environment."""

    @pass_context
    def when(context: Context, value: Moment) -> str:
        return format_time(value, context.get("tz"))

    @pass_context
    def bytes_(context: Context, value: Quantity) -> str:
        return format_bytes(value, _lang(context))

    @pass_context
    def bps(context: Context, value: Quantity) -> str:
        return format_bps(value, _lang(context))

    @pass_context
    def seconds(context: Context, value: Quantity) -> str:
        return format_seconds(value, _lang(context))

    @pass_context
    def status(context: Context, value: Word, kind: str = "") -> str:
        return status_text(value, kind, _lang(context))

    @pass_context
    def severity(context: Context, value: Word) -> str:
        return severity_text(value, _lang(context))

    env.filters.update({"when": when, "bytes": bytes_, "bps": bps, "seconds": seconds, "status": status,
                        "severity": severity, "number": format_number, "percent": format_percent})  # fmt: skip
