"""Which alerts go where, and which are held back: routing tree, silences, inhibition, maintenance windows (pure).

Semantics follow Alertmanager: label matchers `name=value`, `!=`, `=~` (regex,
anchored), `!~`; a routing tree walked depth first where the first matching
child wins unless it says `continue`; a silence mutes matching alerts between
its start and end; an inhibition mutes alerts matching `target` while an alert
matching `source` fires with the same values of the `equal` labels (a site or
device down holds back what sits behind it). Maintenance windows recur daily,
weekly or monthly in local time, like Zabbix's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*\"?(.*?)\"?\s*$")


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


def parse_matcher(text: str) -> Matcher:
    """`severity=critical`, `agency!=health`, `host=~"web-.*"`. Raises ValueError."""
    match = MATCHER.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a matcher like name=value, name!=value, name=~regex")
    name, op, value = match.groups()
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{text!r}: bad regular expression: {exc}") from exc
    return Matcher(name, op, value)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True)
class Route:
    receiver: str
    matchers: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ("alertname", "agency")
    continue_: bool = False
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    repeat_interval: timedelta = timedelta(hours=4)
    escalate_after: timedelta | None = None  # a critical alert unacknowledged this long also goes to `escalate_to`
    escalate_to: str | None = None
    routes: tuple[Route, ...] = ()


def routes_for(route: Route, labels: Mapping[str, str]) -> list[Route]:
    """The routes an alert goes to: the deepest matching ones, or the parent when no child matches."""
    if not matches_all(route.matchers, labels):
        return []
    found: list[Route] = []
    for child in route.routes:
        matched = routes_for(child, labels)
        if matched:
            found.extend(matched)
            if not child.continue_:
                break
    return found or [route]


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at and matches_all(self.matchers, labels)


@dataclass(frozen=True, slots=True)
class Inhibition:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


def inhibited(labels: Mapping[str, str], firing: Sequence[Mapping[str, str]], rules: Sequence[Inhibition]) -> bool:
    for rule in rules:
        if not matches_all(rule.target, labels):
            continue
        for other in firing:
            if other is labels or other == labels:
                continue
            if matches_all(rule.source, other) and all(other.get(k, "") == labels.get(k, "") for k in rule.equal):
                return True
    return False


@dataclass(frozen=True)
class MaintenanceWindow:
    """A recurring window: `every` daily, weekly (on `days`, 0 = Monday) or monthly (on `days` of the month)."""

    name: str
    matchers: tuple[Matcher, ...]
    every: str  # daily, weekly, monthly
    start: time
    duration: timedelta
    days: tuple[int, ...] = ()
    timezone: str = "Asia/Shanghai"  # collection goes on during a window; only notifications are muted

    def active(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.timezone))
        for back in (0, 1, 31):  # a window may have started yesterday (or on a previous month day)
            day = (local - timedelta(days=back)).date()
            if self.every == "weekly" and day.weekday() not in self.days:
                continue
            if self.every == "monthly" and day.day not in self.days:
                continue
            begin = datetime.combine(day, self.start, tzinfo=local.tzinfo)
            if begin <= local < begin + self.duration:
                return True
        return False

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return matches_all(self.matchers, labels) and self.active(now)
