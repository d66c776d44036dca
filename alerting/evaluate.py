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


@dataclass
class _Series:
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    at: datetime
    previous: dict[str, FieldValue] = field(default_factory=dict)
    previous_at: datetime | None = None


def per_second(now: FieldValue | None, before: FieldValue | None, seconds: float, *, counter: bool) -> float | None:
    """The per-second change between two values; a counter that dropped was reset and counts from 0."""
    if seconds <= 0 or not isinstance(now, int | float) or not isinstance(before, int | float):
        return None
    delta = float(now) - float(before)
    if counter and delta < 0:
        delta = float(now)
    return delta / seconds


@dataclass
class Evaluator:
    rules: list[Rule]
    nodata_after: timedelta = DEFAULT_NODATA_AFTER
    alerts: dict[str, Alert] = field(default_factory=dict)
    failures: list[tuple[str, Exception]] = field(default_factory=list)  # (rule, error) of the last cycle
    _series: dict[str, dict[tuple[tuple[str, str], ...], _Series]] = field(default_factory=dict)
    _findings: dict[int, dict[str, Any]] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _open: dict[str, set[str]] = field(default_factory=dict)
    _index: dict[tuple[str, str, tuple[tuple[str, str], ...]], dict[Any, str]] = field(default_factory=dict)  # per rule: series → fp
    _columns: dict[tuple[str, str], tuple[list[tuple[Any, _Series]], np.ndarray]] = field(default_factory=dict)
    _position_cache: dict[str, dict[Any, int]] = field(default_factory=dict)
    _nodata_fps: dict[tuple[str, Any], str] = field(default_factory=dict)  # (rule, series key) → its NoData alert's fingerprint
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
        self._index.clear()  # caches of fingerprints per series: recomputed on demand
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
        transitions: list[Transition] = []
        active: set[str] = set()
        self._seen: set[str] = set()  # alerts whose series or finding was looked at this cycle
        self._columns: dict[tuple[str, str], tuple[list[tuple[Any, _Series]], np.ndarray]] = {}  # per cycle
        self._position_cache: dict[str, dict[Any, int]] = {}
        self._open = {}
        for fp, a in self.alerts.items():
            if a.status != AlertStatus.RESOLVED:
                self._open.setdefault(a.labels.get("alertname", ""), set()).add(fp)
        for rule in self.rules:
            try:
                if rule.kind in ("threshold", "rate"):
                    self._threshold(rule, now, active, transitions)
                elif rule.kind == "absence":
                    self._absence(rule, now, active, transitions)
                else:
                    self._findings_rule(rule, now, active, transitions)
            except (ArithmeticError, LookupError, TypeError, ValueError) as exc:  # one rule's bad input stops no other
                self.failures.append((rule.alert, exc))
                active.update(fp for fp in self._open.get(rule.alert, set()))  # its open alerts stay as they are
        known = {rule.alert for rule in self.rules} | {NODATA}
        for alert in list(self.alerts.values()):
            if alert.fingerprint in active or alert.status == AlertStatus.RESOLVED:
                continue
            unseen = alert.fingerprint not in self._seen and alert.labels.get("alertname") in known
            if unseen and alert.status == AlertStatus.FIRING:
                # No data at all for it (e.g. since a restart): missing data never resolves an alert.
                if not alert.lacking_data:
                    alert.lacking_data = True
                    transitions.append(Transition(alert, AlertStatus.FIRING, AlertStatus.FIRING, True))
                continue
            # evaluated and no longer true: a pending one is dropped, a firing one resolved
            before = alert.status
            if before == AlertStatus.PENDING:
                del self.alerts[alert.fingerprint]
                continue
            alert.status, alert.resolved_at, alert.lacking_data = AlertStatus.RESOLVED, now, False
            transitions.append(Transition(alert, before, AlertStatus.RESOLVED, False))
        if not self.failures:  # every findings rule has seen the closed findings: their alerts resolved above
            closed = [fid for fid, f in self._findings.items() if f["status"] not in ("open", "acknowledged")]
            for finding_id in closed:
                del self._findings[finding_id]
            self.forgotten_findings += len(closed)
        return transitions

    def _set(self, labels: dict[str, str], annotations: dict[str, str] | Callable[[], dict[str, str]], condition: bool,
             since: datetime, hold: timedelta,
             now: datetime, value: float | None, active: set[str], transitions: list[Transition], *, keep: bool = False,
             fp: str | None = None) -> None:
        """Advance one alert: `condition` holds (since `since`); `keep` holds a firing alert without its condition.
        `fp`: the labels' fingerprint when the caller has it already."""
        fp = fp or fingerprint(labels)
        alert = self.alerts.get(fp)
        if alert is not None and alert.status == AlertStatus.RESOLVED:
            alert = None
        if not condition and not (keep and alert is not None and alert.status == AlertStatus.FIRING):
            return
        if callable(annotations):
            annotations = annotations()  # rendered only for an alert that is or stays active
        active.add(fp)
        if alert is None:
            alert = Alert(fp, labels, annotations, AlertStatus.PENDING, since, value=value)
            self.alerts[fp] = alert
            transitions.append(Transition(alert, None, AlertStatus.PENDING, False))
        alert.annotations, alert.value = annotations, value if value is not None else alert.value
        if alert.status == AlertStatus.PENDING and now - alert.active_since >= hold:
            alert.status, alert.fired_at = AlertStatus.FIRING, now
            transitions.append(Transition(alert, AlertStatus.PENDING, AlertStatus.FIRING, alert.lacking_data))

    def _threshold(self, rule: Rule, now: datetime, active: set[str], transitions: list[Transition]) -> None:
        test = OPS[rule.op]
        assert rule.field is not None and rule.threshold is not None
        clear = rule.clear_value
        threshold = rule.threshold
        # series key → fingerprint of this rule's alerts, so a series with no alert costs one comparison;
        # alerts not in it (restored after a restart) make this cycle look at every series once.
        index = self._index.setdefault(self._rule_key(rule), {})
        full = bool(self._open.get(rule.alert, set()) - set(index.values()))
        for key, series in self._candidates(rule, index, full):
            value = series.fields.get(rule.field)
            if rule.kind == "rate":
                if series.previous_at is None:
                    continue
                value = per_second(value, series.previous.get(rule.field), (series.at - series.previous_at).total_seconds(),
                                   counter=rule.counter)  # fmt: skip
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if rule.divide_by is not None:
                divisor = series.fields.get(rule.divide_by)
                if not isinstance(divisor, int | float) or isinstance(divisor, bool) or divisor == 0:
                    continue
                value = value / divisor
            known = index.get(key)
            if not full and (known is None or known not in self.alerts) and not test(value, threshold):
                continue  # the common case: fine, and no alert to resolve
            labels = {"alertname": rule.alert, **series.tags, **rule.labels}
            fp = known if known is not None else fingerprint(labels)  # the index is per rule and labels: still valid
            index[key] = fp
            self._seen.add(fp)
            current = self.alerts.get(fp)
            if current is not None:
                nodata = self._nodata_fps.get((rule.alert, key))
                if nodata is None:
                    if len(self._nodata_fps) >= NODATA_FP_LIMIT:
                        self._nodata_fps.clear()  # a cache: recomputed on demand
                    nodata = self._nodata_fps[(rule.alert, key)] = fingerprint(self._nodata_labels(rule, series.tags))
                self._seen.add(nodata)
            firing = current is not None and current.status == AlertStatus.FIRING
            silent = now - series.at >= self.nodata_after
            if firing:
                assert clear is not None
                condition = test(float(value), clear)  # hysteresis: firing until the clear value is passed
            else:
                condition = test(float(value), rule.threshold) and not silent
            values = {**series.tags, "value": float(value), "threshold": rule.threshold}
            annotations = lambda values=values: {k: render(v, values) for k, v in rule.annotations.items()}  # noqa: E731
            self._set(labels, annotations, condition, series.at, rule.hold, now, float(value), active, transitions, keep=silent, fp=fp)
            alert = self.alerts.get(fp)
            if alert is not None and alert.status == AlertStatus.FIRING:
                self._lacking(alert, silent, rule, series.tags, now, active, transitions)

    @staticmethod
    def _rule_key(rule: Rule) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """What an alert's fingerprint depends on besides the series: a rule edited under the same name gets a new
        index, so a cached fingerprint is never one of labels that changed."""
        return rule.alert, rule.kind, tuple(sorted(rule.labels.items()))

    def _candidates(self, rule: Rule, index: dict[Any, str], full: bool) -> Iterable[tuple[Any, _Series]]:
        """The series a threshold rule must look at: with numpy, only those past the threshold and those with an alert
        (one vectorized comparison per rule over a column built once per cycle); otherwise every series."""
        series = self._series.get(rule.measurement or "", {})
        if full or rule.kind != "threshold" or rule.divide_by is not None or len(series) < VECTOR_MIN_SERIES:
            return series.items()
        items, values = self._column(rule.measurement or "", rule.field or "")
        assert rule.threshold is not None
        picked = set(NP_OPS[rule.op](values, rule.threshold).nonzero()[0].tolist())
        if index:
            position = self._positions(rule.measurement or "", items)
            picked.update(position[k] for k, fp in index.items() if fp in self.alerts and k in position)
        return [items[i] for i in sorted(picked)]

    def _column(self, measurement: str, name: str) -> tuple[list[tuple[Any, _Series]], np.ndarray]:
        cached = self._columns.get((measurement, name))
        if cached is None:
            items = list(self._series.get(measurement, {}).items())
            raw = [s.fields.get(name) for _, s in items]
            if set(map(type, raw)) <= {float, int}:  # the common case, converted in C
                values = np.array(raw, dtype=float)
            else:  # missing fields, strings, booleans: not a number here
                values = np.fromiter(
                    (v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan for v in raw), dtype=float, count=len(raw)
                )
            cached = self._columns[(measurement, name)] = (items, values)
        return cached

    def _positions(self, measurement: str, items: list[tuple[Any, _Series]]) -> dict[Any, int]:
        cached = self._position_cache.get(measurement)
        if cached is None:
            cached = self._position_cache[measurement] = {key: i for i, (key, _) in enumerate(items)}
        return cached

    def _lacking(self, alert: Alert, silent: bool, rule: Rule, tags: Mapping[str, str], now: datetime,
                 active: set[str], transitions: list[Transition]) -> None:
        if alert.lacking_data != silent:
            alert.lacking_data = silent
            transitions.append(Transition(alert, AlertStatus.FIRING, AlertStatus.FIRING, silent))
        if silent:
            labels = self._nodata_labels(rule, tags)
            annotations = {
                "summary_zh": render("告警 {rule} 所依据的数据已中断（{host}）", {**tags, "rule": rule.alert}),
                "summary_en": render("The data behind alert {rule} stopped ({host})", {**tags, "rule": rule.alert}),
            }
            self._set(labels, annotations, True, now, timedelta(0), now, None, active, transitions)

    @staticmethod
    def _nodata_labels(rule: Rule, tags: Mapping[str, str]) -> dict[str, str]:
        return {"alertname": NODATA, "rule": rule.alert, **tags, "severity": rule.labels.get("severity", "warning"), "category": "coverage"}

    def _absence(self, rule: Rule, now: datetime, active: set[str], transitions: list[Transition]) -> None:
        newest: dict[tuple[str, ...], tuple[dict[str, str], datetime]] = {}
        for series in self._series.get(rule.measurement or "", {}).values():
            key = tuple(series.tags.get(tag, "") for tag in rule.group_by)
            if key not in newest or series.at > newest[key][1]:
                newest[key] = ({tag: series.tags.get(tag, "") for tag in rule.group_by}, series.at)
        fps = self._index.setdefault(self._rule_key(rule), {})
        for group, (tags, last) in newest.items():
            silent_for = now - last
            labels = {"alertname": rule.alert, **tags, **rule.labels}
            fp = fps.get(group)
            if fp is None:
                if len(fps) >= NODATA_FP_LIMIT:
                    fps.clear()  # a cache: recomputed on demand
                fp = fps[group] = fingerprint(labels)
            self._seen.add(fp)
            values = {**tags, "silent_seconds": int(silent_for.total_seconds()), "last_seen": last}
            annotations = lambda values=values: {  # noqa: E731
                k: render(v, {**values, "last_seen": values["last_seen"].isoformat()}) for k, v in rule.annotations.items()}
            self._set(labels, annotations, silent_for >= rule.hold, last + rule.hold, timedelta(0), now, None, active, transitions, fp=fp)

    def _findings_rule(self, rule: Rule, now: datetime, active: set[str], transitions: list[Transition]) -> None:
        floor = SEVERITIES.index(rule.min_severity)
        for finding_id, f in self._findings.items():
            if rule.rule_ids and f["rule_id"] not in rule.rule_ids:
                continue
            condition = f["status"] in ("open", "acknowledged") and SEVERITIES.index(f["severity"]) >= floor
            labels = {"alertname": rule.alert, "finding_id": str(finding_id), "finding_rule": f["rule_id"],
                      "agency": f["agency"], **rule.labels, "severity": f["severity"], "article": f["article"]}  # fmt: skip
            for severity in SEVERITIES:  # an escalated finding's earlier alert (another severity label) resolves
                self._seen.add(fingerprint({**labels, "severity": severity}))
            values = {**f, "finding_id": finding_id}
            annotations = {k: render(v, values) for k, v in rule.annotations.items()} or {
                "summary_zh": f["title_zh"], "summary_en": f["title_en"]}
            self._set(labels, annotations, condition, f["at"], rule.hold, now, None, active, transitions)


def severity_of(labels: Mapping[str, str]) -> str:
    severity = labels.get("severity", "warning")
    return severity if severity in SEVERITIES else "warning"


def firing(alerts: Iterable[Alert]) -> list[Alert]:
    return [a for a in alerts if a.status == AlertStatus.FIRING]
