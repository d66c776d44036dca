"""Rule evaluation: latest values and findings in, alert state transitions out (pure: time is passed in).

Lifecycle pending → firing → resolved, as in Prometheus: a condition must hold
for the rule's `for` before it fires. A threshold alert resolves only once its
series passes the separate clear value (hysteresis). Missing data never
resolves anything: when the series behind a firing alert has been silent for
`nodata_after`, the alert stays firing, marked `lacking_data`, and a companion
`NoData` alert (labels: the rule and the series) fires until data returns —
the SNMP timeout, the silent agent or the flow gap is itself an alert.
Alerts are identified by a fingerprint of their labels (Alertmanager's model).
"""

from __future__ import annotations

import hashlib
import heapq
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import numpy as np

from alerting.rules import SEVERITIES, Rule, render

OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
NP_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}
VECTOR_MIN_SERIES = 64  # below this, a plain loop is cheaper than building a column
DEFAULT_NODATA_AFTER = timedelta(minutes=5)
NODATA = "NoData"
NODATA_FP_LIMIT = 1_000_000
# Series remembered (agents decide their tags, so their number is theirs to grow): past this, the least recently
# updated tenth is forgotten, counted in `evicted_series`. A forgotten series with a firing alert is "lacking data",
# which never resolves an alert.
MAX_SERIES = 1_000_000


class AlertStatus(StrEnum):
    """Where an alert is in its lifecycle; a `str`, so stored values, JSON and comparisons with text stay the same."""

    PENDING = "pending"  # the condition holds, not yet for the rule's `for`
    FIRING = "firing"
    RESOLVED = "resolved"

    def text(self, language: str = "zh") -> str:
        """The status as the console and reports show it, in `language` ("zh" or "en")."""
        zh, en = ALERT_STATUS_TEXT[self]
        return zh if language == "zh" else en


# status -> (Simplified Chinese, English), the one place these labels live.
ALERT_STATUS_TEXT: Final[Mapping[AlertStatus, tuple[str, str]]] = {
    AlertStatus.PENDING: ("待触发", "pending"),
    AlertStatus.FIRING: ("触发中", "firing"),
    AlertStatus.RESOLVED: ("已恢复", "resolved"),
}


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable id of an alert: sha256 over its sorted labels, 16 hex digits (like Alertmanager's)."""
    try:
        text = "\x00".join([k + "\x01" + v for k, v in sorted(labels.items())])  # the common case: text values
    except TypeError:  # a value that is not text, formatted as it always was
        text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Alert:
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    status: AlertStatus  # a stored text value is taken too (and checked)
    active_since: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    value: float | None = None
    lacking_data: bool = False

    def __post_init__(self) -> None:
        if type(self.status) is not AlertStatus:  # the evaluator's own are already
            self.status = AlertStatus(self.status)


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert that changed: to pending, firing or resolved, or gained/lost `lacking_data`."""

    alert: Alert
    before: AlertStatus | None  # None for a new alert
    after: AlertStatus
    lacking_data: bool


# A sample's field value, as core.models.Sample carries it (alerting imports no other package).
FieldValue = bool | int | float | str


SeriesKey = tuple[tuple[str, str], ...]  # a series' tags, sorted: its identity within its measurement
RuleKey = tuple[str, str, tuple[tuple[str, str], ...]]  # what an alert's fingerprint depends on besides its series


@dataclass(slots=True)
class _Series:
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    at: datetime
    previous: dict[str, FieldValue] = field(default_factory=dict)
    previous_at: datetime | None = None


@dataclass(slots=True)
class _Members:
    """The series of one measurement in a fixed order, kept across cycles until a series is added or forgotten: a
    cycle builds its value columns from it without listing the series again."""

    keys: list[SeriesKey]
    series: list[_Series]
    positions: dict[SeriesKey, int] = field(default_factory=dict)  # filled on first use

    def position(self) -> dict[SeriesKey, int]:
        if not self.positions and self.keys:
            self.positions = {key: i for i, key in enumerate(self.keys)}
        return self.positions


@dataclass(slots=True)
class _Cycle:
    """What one evaluation cycle collects, and what it computes once for every rule that needs it."""

    now: datetime
    transitions: list[Transition] = field(default_factory=list)
    active: set[str] = field(default_factory=set)  # alerts whose condition holds (or that stay firing) this cycle
    seen: set[str] = field(default_factory=set)  # alerts whose series or finding was looked at this cycle
    open: dict[str, set[str]] = field(default_factory=dict)  # alert name → its alerts not resolved at the start
    nodata_rules: set[str] = field(default_factory=set)  # rules with an open NoData alert at the start
    columns: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (measurement, field) → values
    newest: dict[tuple[str, tuple[str, ...]], dict[tuple[str, ...], datetime]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _ThresholdRun:
    """One threshold or rate rule as a cycle evaluates it."""

    rule: Rule
    test: Callable[[float, float], bool]
    threshold: float
    clear: float  # the value a firing alert must pass to resolve
    hold: timedelta  # the rule's `for`
    index: dict[Any, str]  # series key → fingerprint (see Evaluator._held)


def _render_all(templates: Mapping[str, str], values: dict[str, Any]) -> dict[str, str]:
    return {k: render(v, values) for k, v in templates.items()} if templates else {}


def per_second(now: FieldValue | None, before: FieldValue | None, seconds: float, *, counter: bool) -> float | None:
    """The per-second change between two values; a counter that dropped was reset and counts from 0."""
    if seconds <= 0 or not isinstance(now, int | float) or not isinstance(before, int | float):
        return None
    delta = float(now) - float(before)
    if counter and delta < 0:
        delta = float(now)
    return delta / seconds


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class Evaluator:
    """The alert state of every rule over the series and findings it is fed.

    A cycle costs about one vectorized comparison per threshold rule plus work per series that is past its threshold
    or has an alert: the series of a measurement keep a fixed order across cycles (`_Members`), each cycle builds one
    value column per (measurement, field) and one newest-report map per absence grouping, shared by every rule that
    selects them, and fingerprints are kept per rule for the series that have an alert. None of this changes a
    result (`drop_caches`; tests/alerting/test_evaluate.py runs an evaluator without them beside one with them)."""

    rules: list[Rule]
    nodata_after: timedelta = DEFAULT_NODATA_AFTER
    alerts: dict[str, Alert] = field(default_factory=dict)
    failures: list[tuple[str, Exception]] = field(default_factory=list)  # (rule, error) of the last cycle
    _series: dict[str, dict[SeriesKey, _Series]] = field(default_factory=dict)
    _findings: dict[int, dict[str, Any]] = field(default_factory=dict)
    _members: dict[str, _Members] = field(default_factory=dict)  # per measurement, dropped when its series change
    # Per rule: threshold rules, series key → fingerprint of the series that have an alert (cut to those every cycle,
    # unless an open alert's series is away: see _held); absence rules, group → fingerprint (bounded by NODATA_FP_LIMIT).
    _index: dict[RuleKey, dict[Any, str]] = field(default_factory=dict)
    _nodata_fps: dict[tuple[str, str, SeriesKey], str] = field(default_factory=dict)  # (rule, severity, series) → NoData fp
    _tag_names: dict[str, set[str]] = field(default_factory=dict)  # per measurement, every tag name its series have
    max_series: int = MAX_SERIES
    evicted_series: int = 0  # series forgotten to stay within max_series
    forgotten_findings: int = 0  # closed findings dropped once their alerts were evaluated
    _series_total: int = 0

    @property
    def series_count(self) -> int:
        """Series remembered (one per measurement and tag set), the evaluator's working set."""
        return sum(len(by_key) for by_key in self._series.values())

    # inputs

    def observe(self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, FieldValue], at: datetime) -> None:
        """Remember the newest fields of one series."""
        by_key = self._series.setdefault(measurement, {})
        key = tuple(sorted(tags.items()))
        known = by_key.get(key)
        if known is None:
            by_key[key] = _Series(dict(tags), dict(fields), at)
            self._tag_names.setdefault(measurement, set()).update(tags)
            self._members.pop(measurement, None)  # listed again at the next cycle
            self._series_total += 1
            if self._series_total > self.max_series:
                self._forget_oldest_series()
        elif at > known.at:
            known.previous, known.previous_at = dict(known.fields), known.at
            known.fields.update(fields)
            known.at = at
        elif at == known.at:
            known.fields.update(fields)

    def _forget_oldest_series(self) -> None:
        """Forget the least recently updated tenth of `max_series` (at least one), and the caches keyed by series."""
        count = max(self.max_series // 10, 1)
        oldest = heapq.nsmallest(count, ((series.at, measurement, key) for measurement, by_key in self._series.items()
                                         for key, series in by_key.items()), key=lambda item: item[0])
        for _at, measurement, key in oldest:
            del self._series[measurement][key]
        self._series_total -= len(oldest)
        self.evicted_series += len(oldest)
        # the tag names of the series kept (agents choose tag names: the forgotten series' names go with them)
        self._tag_names = {m: {name for key in by_key for name, _ in key} for m, by_key in self._series.items() if by_key}
        self.drop_caches()

    def drop_caches(self) -> None:
        """Forget what is kept across cycles to make them cheaper (series order, fingerprints): rebuilt on demand, the
        next cycle looking at every series once. No result depends on them."""
        self._members.clear()
        self._index.clear()
        self._nodata_fps.clear()

    def finding(self, finding_id: int, *, rule_id: str, severity: str, subject: str, agency: str | None, status: str,
                article: str, title_zh: str, title_en: str, at: datetime) -> None:
        """A finding opened, escalated or changed status (see server.ingest.hooks.FindingChange)."""
        self._findings[finding_id] = {
            "rule_id": rule_id, "severity": severity, "subject": subject, "agency": agency or "", "status": status,
            "article": article, "title_zh": title_zh, "title_en": title_en, "at": at,
        }  # fmt: skip

    # evaluation

    def evaluate(self, now: datetime) -> list[Transition]:
        """One cycle over every rule; returns what changed.

        A rule that fails on the values it meets (a number too large for a float, a field of the wrong type) is left
        out of this cycle and named in `failures`; the other rules are evaluated.
        """
        self.failures = []
        cycle = self._start(now)
        for rule in self.rules:
            try:
                if rule.kind in ("threshold", "rate"):
                    self._threshold(rule, cycle)
                elif rule.kind == "absence":
                    self._absence(rule, cycle)
                else:
                    self._findings_rule(rule, cycle)
            except (ArithmeticError, LookupError, TypeError, ValueError) as exc:  # one rule's bad input stops no other
                self.failures.append((rule.alert, exc))
                cycle.active.update(cycle.open.get(rule.alert, ()))  # its open alerts stay as they are
        self._settle(cycle)
        if not self.failures:  # every findings rule has seen the closed findings: their alerts resolved above
            self._forget_closed_findings()
        return cycle.transitions

    def _start(self, now: datetime) -> _Cycle:
        cycle = _Cycle(now)
        for fp, a in self.alerts.items():
            if a.status != AlertStatus.RESOLVED:
                cycle.open.setdefault(a.labels.get("alertname", ""), set()).add(fp)
        cycle.nodata_rules = {self.alerts[fp].labels.get("rule", "") for fp in cycle.open.get(NODATA, ())}
        return cycle

    def _settle(self, cycle: _Cycle) -> None:
        """The open alerts no rule kept active: a pending one is dropped, a firing one resolved — unless nothing was
        seen of it (no data since a restart): missing data never resolves an alert, it marks it lacking data."""
        known = {rule.alert for rule in self.rules} | {NODATA}
        for alert in list(self.alerts.values()):
            if alert.fingerprint in cycle.active or alert.status == AlertStatus.RESOLVED:
                continue
            if alert.status == AlertStatus.FIRING and alert.fingerprint not in cycle.seen and alert.labels.get("alertname") in known:
                if not alert.lacking_data:
                    alert.lacking_data = True
                    cycle.transitions.append(Transition(alert, AlertStatus.FIRING, AlertStatus.FIRING, True))
            elif alert.status == AlertStatus.PENDING:
                del self.alerts[alert.fingerprint]
            else:
                alert.status, alert.resolved_at, alert.lacking_data = AlertStatus.RESOLVED, cycle.now, False
                cycle.transitions.append(Transition(alert, AlertStatus.FIRING, AlertStatus.RESOLVED, False))

    def _forget_closed_findings(self) -> None:
        closed = [fid for fid, f in self._findings.items() if f["status"] not in ("open", "acknowledged")]
        for finding_id in closed:
            del self._findings[finding_id]
        self.forgotten_findings += len(closed)

    def _set(self, cycle: _Cycle, fp: str, labels: dict[str, str] | Callable[[], dict[str, str]],
             annotations: dict[str, str] | Callable[[], dict[str, str]], since: datetime, hold: timedelta,
             value: float | None) -> None:
        """Keep alert `fp` active this cycle: a new one (with `labels`) is pending since `since`, and fires once that
        was `hold` ago. `labels` and `annotations` may be functions, called only when needed."""
        alert = self.alerts.get(fp)
        if callable(annotations):
            annotations = annotations()
        cycle.active.add(fp)
        if alert is None or alert.status == AlertStatus.RESOLVED:
            alert = Alert(fp, labels() if callable(labels) else labels, annotations, AlertStatus.PENDING, since, value=value)
            self.alerts[fp] = alert
            cycle.transitions.append(Transition(alert, None, AlertStatus.PENDING, False))
        alert.annotations = annotations
        if value is not None:
            alert.value = value
        if alert.status == AlertStatus.PENDING and cycle.now - alert.active_since >= hold:
            alert.status, alert.fired_at = AlertStatus.FIRING, cycle.now
            cycle.transitions.append(Transition(alert, AlertStatus.PENDING, AlertStatus.FIRING, alert.lacking_data))

    # threshold and rate rules

    def _threshold(self, rule: Rule, cycle: _Cycle) -> None:
        """Every series of the rule's measurement that is past the threshold, or has an alert of this rule."""
        assert rule.threshold is not None and rule.clear_value is not None
        index, held = self._held(rule, cycle)
        run = _ThresholdRun(rule, OPS[rule.op], rule.threshold, rule.clear_value, rule.hold, index)
        for key, series in self._candidates(rule, held, cycle):
            value = self._value(rule, series)
            if value is None:
                continue
            known = index.get(key)
            if (known is None or known not in self.alerts) and not run.test(value, run.threshold):
                continue  # the common case: fine, and no alert to resolve
            self._threshold_series(run, cycle, key, series, value)

    def _held(self, rule: Rule, cycle: _Cycle) -> tuple[dict[Any, str], dict[Any, str]]:
        """The rule's index (series key → fingerprint), and the part of it naming series with an alert: those the
        cycle must look at whatever their value.

        The index keeps only those, unless an open alert of the rule is in none of its entries (restored after a
        restart, or its index dropped): then every series is fingerprinted to find it, and while such an alert stays
        open (its series may never come back) the index keeps every fingerprint, so only new series cost one."""
        rule_key = self._rule_key(rule)
        index = self._index.setdefault(rule_key, {})
        wanted = cycle.open.get(rule.alert, set())
        if not wanted <= set(index.values()):
            self._find_series(rule, index, wanted - set(index.values()))
        held = {k: fp for k, fp in index.items() if fp in self.alerts}
        if wanted <= set(held.values()):
            index = self._index[rule_key] = held  # every open alert found: the rest is not needed
        return index, held

    def _find_series(self, rule: Rule, index: dict[Any, str], missing: set[str]) -> None:
        """Index the series of open alerts the index does not name: the series their labels name (the labels less
        the rule's own). Only when a series of the measurement has a tag the rule's labels override (several series
        may then share one alert) are the alerts not found that way looked for by fingerprinting every series."""
        by_key = self._series.get(rule.measurement or "", {})
        for fp in missing:
            key = self._named_series(rule, self.alerts[fp].labels)
            series = by_key.get(key)
            if series is not None and fingerprint(self._threshold_labels(rule, series)) == fp:
                index[key] = fp
        if self._overrides_tags(rule) and not missing <= set(index.values()) and len(index) < len(by_key):  # (no forgotten series in it)
            for key, series in by_key.items():
                if key not in index:
                    index[key] = fingerprint(self._threshold_labels(rule, series))

    def _overrides_tags(self, rule: Rule) -> bool:
        return bool(self._tag_names.get(rule.measurement or "", set()) & (rule.labels.keys() | {"alertname"}))

    @staticmethod
    def _named_series(rule: Rule, labels: Mapping[str, str]) -> SeriesKey:
        """The key of the series an alert of `rule` with `labels` was raised for (unless a tag was overridden)."""
        return tuple(sorted((k, v) for k, v in labels.items() if k != "alertname" and k not in rule.labels))

    @staticmethod
    def _rule_key(rule: Rule) -> RuleKey:
        """What an alert's fingerprint depends on besides the series: a rule edited under the same name gets a new
        index, so a cached fingerprint is never one of labels that changed."""
        return rule.alert, rule.kind, tuple(sorted(rule.labels.items()))

    @staticmethod
    def _value(rule: Rule, series: _Series) -> float | None:
        """What a threshold or rate rule compares for one series; None when there is nothing to compare (no number,
        no previous value for a rate, a zero divisor)."""
        value = series.fields.get(rule.field or "") if rule.kind != "rate" else Evaluator._rate(rule, series)
        if not _is_number(value):
            return None
        assert isinstance(value, int | float)
        if rule.divide_by is not None:
            divisor = series.fields.get(rule.divide_by)
            if not _is_number(divisor) or divisor == 0:
                return None
            assert isinstance(divisor, int | float)
            value = value / divisor
        return value

    @staticmethod
    def _rate(rule: Rule, series: _Series) -> float | None:
        if series.previous_at is None:
            return None
        return per_second(series.fields.get(rule.field or ""), series.previous.get(rule.field or ""),
                          (series.at - series.previous_at).total_seconds(), counter=rule.counter)  # fmt: skip

    def _threshold_series(self, run: _ThresholdRun, cycle: _Cycle, key: SeriesKey, series: _Series, value: float) -> None:
        """Advance the alert of one series past its threshold or with an alert (hysteresis, no data)."""
        rule = run.rule
        fp, current, labels = self._see(run, cycle, key, series)
        firing = current is not None and current.status == AlertStatus.FIRING
        silent = cycle.now - series.at >= self.nodata_after
        # hysteresis: a firing alert holds until the clear value is passed; a new one needs the threshold and data
        condition = run.test(float(value), run.clear) if firing else run.test(float(value), run.threshold) and not silent
        if condition or (firing and silent):  # missing data keeps a firing alert as it is
            values = {**series.tags, "value": float(value), "threshold": run.threshold}
            self._set(cycle, fp, labels or (lambda: self._threshold_labels(rule, series)),
                      lambda: _render_all(rule.annotations, values), series.at, run.hold, float(value))  # fmt: skip
        alert = self.alerts.get(fp)
        if alert is not None and alert.status == AlertStatus.FIRING:
            self._lacking(alert, silent, rule, series.tags, cycle)

    def _see(self, run: _ThresholdRun, cycle: _Cycle, key: SeriesKey, series: _Series) -> tuple[str, Alert | None, dict[str, str] | None]:
        """The fingerprint of the series' alert (from the index, or computed and kept there), the alert if known, and
        its labels if they were built for the fingerprint; the alert and its NoData companion count as seen."""
        fp = run.index.get(key)
        labels = None
        if fp is None:
            labels = self._threshold_labels(run.rule, series)
            fp = run.index[key] = fingerprint(labels)
        cycle.seen.add(fp)
        current = self.alerts.get(fp)
        if current is not None and run.rule.alert in cycle.nodata_rules:  # only an open NoData alert needs it
            cycle.seen.add(self._nodata_fp(run.rule, key, series))
        return fp, current, labels

    @staticmethod
    def _threshold_labels(rule: Rule, series: _Series) -> dict[str, str]:
        return {"alertname": rule.alert, **series.tags, **rule.labels}

    def _nodata_fp(self, rule: Rule, key: SeriesKey, series: _Series) -> str:
        severity = rule.labels.get("severity", "warning")
        fp = self._nodata_fps.get((rule.alert, severity, key))
        if fp is None:
            if len(self._nodata_fps) >= NODATA_FP_LIMIT:
                self._nodata_fps.clear()  # a cache: recomputed on demand
            fp = self._nodata_fps[(rule.alert, severity, key)] = fingerprint(self._nodata_labels(rule, series.tags))
        return fp

    def _candidates(self, rule: Rule, held: dict[Any, str], cycle: _Cycle) -> Iterable[tuple[SeriesKey, _Series]]:
        """The series a threshold rule must look at: with numpy, only those past the threshold and those with an alert
        (`held`; one vectorized comparison per rule over a column built once per cycle); otherwise every series."""
        measurement = rule.measurement or ""
        by_key = self._series.get(measurement, {})
        if not self._vectorizable(rule, by_key):
            return by_key.items()
        members = self._members_of(measurement, by_key)
        assert rule.threshold is not None
        picked = set(NP_OPS[rule.op](self._column(cycle, measurement, rule.field or "", members), rule.threshold).nonzero()[0].tolist())
        if held:
            position = members.position()
            picked.update(position[k] for k in held if k in position)
        return [(members.keys[i], members.series[i]) for i in sorted(picked)]

    @staticmethod
    def _vectorizable(rule: Rule, by_key: dict[SeriesKey, _Series]) -> bool:
        """A plain threshold over enough series to be worth a column (a ratio or a rate is computed per series)."""
        return rule.kind == "threshold" and rule.divide_by is None and len(by_key) >= VECTOR_MIN_SERIES

    def _members_of(self, measurement: str, by_key: dict[SeriesKey, _Series]) -> _Members:
        members = self._members.get(measurement)
        if members is None:
            members = self._members[measurement] = _Members(list(by_key), list(by_key.values()))
        return members

    @staticmethod
    def _column(cycle: _Cycle, measurement: str, name: str, members: _Members) -> np.ndarray:
        values = cycle.columns.get((measurement, name))
        if values is None:
            raw = [s.fields.get(name) for s in members.series]
            if set(map(type, raw)) <= {float, int}:  # the common case, converted in C
                values = np.array(raw, dtype=float)
            else:  # missing fields, strings, booleans: not a number here
                values = np.fromiter((v if _is_number(v) else np.nan for v in raw), dtype=float, count=len(raw))
            cycle.columns[(measurement, name)] = values
        return values

    def _lacking(self, alert: Alert, silent: bool, rule: Rule, tags: Mapping[str, str], cycle: _Cycle) -> None:
        if alert.lacking_data != silent:
            alert.lacking_data = silent
            cycle.transitions.append(Transition(alert, AlertStatus.FIRING, AlertStatus.FIRING, silent))
        if silent:
            labels = self._nodata_labels(rule, tags)
            annotations = {
                "summary_zh": render("告警 {rule} 所依据的数据已中断（{host}）", {**tags, "rule": rule.alert}),
                "summary_en": render("The data behind alert {rule} stopped ({host})", {**tags, "rule": rule.alert}),
            }
            self._set(cycle, fingerprint(labels), labels, annotations, cycle.now, timedelta(0), None)

    @staticmethod
    def _nodata_labels(rule: Rule, tags: Mapping[str, str]) -> dict[str, str]:
        return {"alertname": NODATA, "rule": rule.alert, **tags, "severity": rule.labels.get("severity", "warning"), "category": "coverage"}

    # absence and findings rules

    def _absence(self, rule: Rule, cycle: _Cycle) -> None:
        """Each group of series (by `group_by`) whose newest report is `for` old; with no open alert of the rule, the
        groups that still report cost one comparison each."""
        fps = self._index.setdefault(self._rule_key(rule), {})
        tracked = bool(cycle.open.get(rule.alert))
        hold = rule.hold
        for group, last in self._newest(rule.measurement or "", tuple(rule.group_by), cycle).items():
            silent_for = cycle.now - last
            if silent_for < hold and not tracked:
                continue  # not silent, and no alert of this rule it could be
            tags = dict(zip(rule.group_by, group, strict=True))
            fp = fps.get(group)
            if fp is None:
                if len(fps) >= NODATA_FP_LIMIT:
                    fps.clear()  # a cache: recomputed on demand
                fp = fps[group] = fingerprint({"alertname": rule.alert, **tags, **rule.labels})
            cycle.seen.add(fp)
            if silent_for >= hold:
                values = {**tags, "silent_seconds": int(silent_for.total_seconds()), "last_seen": last.isoformat()}
                annotations = lambda values=values: _render_all(rule.annotations, values)  # noqa: E731
                self._set(cycle, fp, {"alertname": rule.alert, **tags, **rule.labels}, annotations, last + hold, timedelta(0), None)

    def _newest(self, measurement: str, group_by: tuple[str, ...], cycle: _Cycle) -> dict[tuple[str, ...], datetime]:
        """Group (the values of the `group_by` tags) → when its newest series last reported; built once per cycle for
        every absence rule of the same measurement and grouping."""
        newest = cycle.newest.get((measurement, group_by))
        if newest is None:
            newest = cycle.newest[(measurement, group_by)] = {}
            for series in self._series.get(measurement, {}).values():
                tags = series.tags
                group = tuple([tags.get(tag, "") for tag in group_by])
                last = newest.get(group)
                if last is None or series.at > last:
                    newest[group] = series.at
        return newest

    def _findings_rule(self, rule: Rule, cycle: _Cycle) -> None:
        floor = SEVERITIES.index(rule.min_severity)
        for finding_id, f in self._findings.items():
            if rule.rule_ids and f["rule_id"] not in rule.rule_ids:
                continue
            labels = {"alertname": rule.alert, "finding_id": str(finding_id), "finding_rule": f["rule_id"],
                      "agency": f["agency"], **rule.labels, "severity": f["severity"], "article": f["article"]}  # fmt: skip
            for severity in SEVERITIES:  # an escalated finding's earlier alert (another severity label) resolves
                cycle.seen.add(fingerprint({**labels, "severity": severity}))
            if f["status"] in ("open", "acknowledged") and SEVERITIES.index(f["severity"]) >= floor:
                values = {**f, "finding_id": finding_id}
                annotations = _render_all(rule.annotations, values) or {"summary_zh": f["title_zh"], "summary_en": f["title_en"]}
                self._set(cycle, fingerprint(labels), labels, annotations, f["at"], rule.hold, None)


def severity_of(labels: Mapping[str, str]) -> str:
    severity = labels.get("severity", "warning")
    return severity if severity in SEVERITIES else "warning"


def firing(alerts: Iterable[Alert]) -> list[Alert]:
    return [a for a in alerts if a.status == AlertStatus.FIRING]
