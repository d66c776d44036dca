"""The platform's compliance state as time series, for Grafana: findings, alerts, scorecard, and events.

Findings, alerts and duties live in SQL; the NOC wall and the security
dashboard query InfluxDB. Every minute the server writes their counts
(`egovmon_findings`, `egovmon_alerts`, `egovmon_scorecard`) and the alert and
finding changes since the last export (`egovmon_alert_events`,
`egovmon_finding_events`, which the dashboards use as annotations) through the
same TSDB writer as ingested data. `state_samples` is the pure part.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, NotRequired, TypedDict

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.models import Sample

if TYPE_CHECKING:  # the service is imported when collecting, not when the history package loads
    from server.duties.schemas import ScorecardRow


class FindingCount(TypedDict):
    """`count` findings (1 when absent) of one agency, rule and status."""

    agency: str | None
    rule_id: str
    article: str
    severity: str
    status: str
    count: NotRequired[int]


class AlertCount(TypedDict):
    """`count` alerts (1 when absent) of one agency and severity in one status."""

    agency: str | None
    severity: str
    status: str
    lacking_data: bool
    count: NotRequired[int]


class AlertEvent(TypedDict):
    """An alert that fired or resolved."""

    agency: str | None
    severity: str
    status: str
    alertname: str
    text: str
    fingerprint: str
    at: datetime


class FindingEvent(TypedDict):
    """A finding whose status changed."""

    agency: str | None
    severity: str
    status: str
    article: str
    text: str
    finding_id: int
    at: datetime


def state_samples(
    *,
    findings: Iterable[FindingCount],
    alerts: Iterable[AlertCount],
    scorecard: Iterable[ScorecardRow],
    alert_events: Iterable[AlertEvent] = (),
    finding_events: Iterable[FindingEvent] = (),
    at: datetime,
) -> list[Sample]:
    """Samples for one export. `findings`/`alerts` are rows with agency, rule/article/severity and status, each
    standing for `count` findings or alerts (1 when absent)."""
    return [
        *_finding_samples(findings, at),
        *_alert_samples(alerts, at),
        *_scorecard_samples(scorecard, at),
        *_alert_event_samples(alert_events),
        *_finding_event_samples(finding_events),
    ]


def _finding_samples(findings: Iterable[FindingCount], at: datetime) -> list[Sample]:
    """`egovmon_findings`: open and acknowledged findings per agency, rule, article and severity."""
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    for f in findings:
        counts[(f["agency"] or "-", f["rule_id"], f["article"], f["severity"], f["status"])] += f.get("count", 1)
    by_key: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for (agency, rule, article, severity, status), n in counts.items():
        by_key.setdefault((agency, rule, article, severity), {"open": 0, "acknowledged": 0})
        if status in ("open", "acknowledged"):
            by_key[(agency, rule, article, severity)][status] += n
    return [
        Sample(measurement="egovmon_findings", timestamp=at, fields=fields,
               tags={"agency": agency, "rule_id": rule, "article": article, "severity": severity})
        for (agency, rule, article, severity), fields in sorted(by_key.items())
    ]  # fmt: skip


def _alert_samples(alerts: Iterable[AlertCount], at: datetime) -> list[Sample]:
    """`egovmon_alerts`: firing alerts, and of them those lacking data, per agency and severity."""
    firing: Counter[tuple[str, str]] = Counter()
    lacking: Counter[tuple[str, str]] = Counter()
    for a in alerts:
        if a["status"] == "firing":
            n = a.get("count", 1)
            firing[(a["agency"] or "-", a["severity"])] += n
            lacking[(a["agency"] or "-", a["severity"])] += n * int(bool(a["lacking_data"]))
    return [
        Sample(measurement="egovmon_alerts", timestamp=at, tags={"agency": agency, "severity": severity},
               fields={"firing": n, "lacking_data": lacking[(agency, severity)]})
        for (agency, severity), n in sorted(firing.items())
    ]  # fmt: skip


def _scorecard_samples(scorecard: Iterable[ScorecardRow], at: datetime) -> list[Sample]:
    """`egovmon_scorecard`: each agency's ratios (-1 where there is nothing to measure) and counts."""
    return [
        Sample(measurement="egovmon_scorecard", timestamp=at, tags={"agency": row["agency"]}, fields={
            "monitoring_coverage_ratio": _ratio(row["monitoring_coverage_ratio"]),
            "backup_rpo_ratio": _ratio(row["backup_rpo_ratio"]),
            "duties_on_time_ratio": _ratio(row["duties_on_time_ratio"]),
            "duties": int(row["duties"]), "duties_overdue": int(row["duties_overdue"]),
            "open_findings": int(row["open_findings"]),
            "hosts_expected": int(row["hosts_expected"]), "hosts_reporting": int(row["hosts_reporting"]),
        })
        for row in scorecard
    ]  # fmt: skip


def _ratio(value: float | None) -> float:
    return float(value) if value is not None else -1.0  # -1: nothing to measure


def _alert_event_samples(events: Iterable[AlertEvent]) -> list[Sample]:
    return [
        Sample(measurement="egovmon_alert_events", timestamp=e["at"],
               tags={"agency": e["agency"] or "-", "severity": e["severity"], "status": e["status"], "alertname": e["alertname"]},
               fields={"text": e["text"][:1000] or e["alertname"], "fingerprint": e["fingerprint"]})
        for e in events
    ]  # fmt: skip


def _finding_event_samples(events: Iterable[FindingEvent]) -> list[Sample]:
    return [
        Sample(measurement="egovmon_finding_events", timestamp=e["at"],
               tags={"agency": e["agency"] or "-", "severity": e["severity"], "status": e["status"], "article": e["article"]},
               fields={"text": e["text"][:1000], "finding_id": int(e["finding_id"])})
        for e in events
    ]  # fmt: skip


def collect_state(session: Session, *, since: datetime | None, now: datetime) -> list[Sample]:
    """Read findings, alerts, the scorecard and changes since `since` from SQL, as samples.

    Counts are grouped in SQL and only the rows that changed within (since, now] are loaded: the alert table
    keeps every resolved alert, and loading all of it each minute grew with the platform's age."""
    from inventory.rules import RULES  # noqa: PLC0415
    from server.access import operator  # noqa: PLC0415
    from server.agencies.service import codes_by_id  # noqa: PLC0415
    from server.alerting.models import AlertRecord  # noqa: PLC0415
    from server.duties.service import scorecard  # noqa: PLC0415
    from server.findings.models import Finding  # noqa: PLC0415

    codes = codes_by_id(session)
    finding_counts = session.execute(
        select(Finding.agency_id, Finding.rule_id, Finding.severity, Finding.status, func.count())
        .group_by(Finding.agency_id, Finding.rule_id, Finding.severity, Finding.status)
    ).all()  # fmt: skip
    findings: list[FindingCount] = [
        {"agency": codes.get(agency_id or -1), "rule_id": rule_id, "article": RULES[rule_id].article_zh, "severity": severity,
         "status": status, "count": count}
        for agency_id, rule_id, severity, status, count in finding_counts if rule_id in RULES
    ]  # fmt: skip
    alert_rows: list[AlertCount] = [
        {"agency": agency, "severity": severity, "status": "firing", "lacking_data": lacking, "count": count}
        for agency, severity, lacking, count in session.execute(
            select(AlertRecord.agency_code, AlertRecord.severity, AlertRecord.lacking_data, func.count())
            .where(AlertRecord.status == "firing")
            .group_by(AlertRecord.agency_code, AlertRecord.severity, AlertRecord.lacking_data)
        )
    ]  # fmt: skip
    alert_events = _alert_events(session, since=since, now=now) if since is not None else []
    finding_events = _finding_events(session, codes, since=since, now=now) if since is not None else []
    return state_samples(findings=findings, alerts=alert_rows, scorecard=scorecard(session, now=now, access=operator("state-export")),
                         alert_events=alert_events, finding_events=finding_events, at=now)


def _alert_events(session: Session, *, since: datetime, now: datetime) -> list[AlertEvent]:
    """Every firing and resolving of an alert within (since, now]."""
    from server.alerting.models import AlertRecord  # noqa: PLC0415

    changed = session.scalars(select(AlertRecord).where(or_(
        and_(AlertRecord.fired_at > since, AlertRecord.fired_at <= now),
        and_(AlertRecord.resolved_at > since, AlertRecord.resolved_at <= now),
    )))  # fmt: skip
    return [
        {"agency": a.agency_code, "severity": a.severity, "status": status, "alertname": a.alertname,
         "text": a.annotations.get("summary_zh", a.alertname), "fingerprint": a.fingerprint, "at": at}
        for a in changed
        for status, at in (("firing", a.fired_at), ("resolved", a.resolved_at))
        if at is not None and since < at <= now
    ]  # fmt: skip


def _finding_events(session: Session, codes: Mapping[int, str], *, since: datetime, now: datetime) -> list[FindingEvent]:
    """Every finding whose status changed within (since, now], under a rule this release knows."""
    from inventory.rules import RULES  # noqa: PLC0415
    from server.findings.models import Finding  # noqa: PLC0415

    changed = session.scalars(select(Finding).where(Finding.status_changed_at > since, Finding.status_changed_at <= now))
    return [
        {"agency": codes.get(f.agency_id or -1), "severity": f.severity, "status": f.status, "article": rule.article_zh,
         "text": rule.text("zh", f.subject)["title"], "finding_id": f.id, "at": f.status_changed_at}
        for f in changed
        if (rule := RULES.get(f.rule_id)) is not None
    ]  # fmt: skip
