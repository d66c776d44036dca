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
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from core.models import Sample


def state_samples(
    *,
    findings: Iterable[Mapping[str, Any]],
    alerts: Iterable[Mapping[str, Any]],
    scorecard: Iterable[Mapping[str, Any]],
    alert_events: Iterable[Mapping[str, Any]] = (),
    finding_events: Iterable[Mapping[str, Any]] = (),
    at: datetime,
) -> list[Sample]:
    """Samples for one export. `findings`/`alerts` are rows with agency, rule/article/severity and status, each
    standing for `count` findings or alerts (1 when absent)."""
    out: list[Sample] = []
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    for f in findings:
        counts[(f["agency"] or "-", f["rule_id"], f["article"], f["severity"], f["status"])] += f.get("count", 1)
    by_key: dict[tuple[str, str, str, str], dict[str, int]] = {}
    for (agency, rule, article, severity, status), n in counts.items():
        by_key.setdefault((agency, rule, article, severity), {"open": 0, "acknowledged": 0})
        if status in ("open", "acknowledged"):
            by_key[(agency, rule, article, severity)][status] += n
    for (agency, rule, article, severity), fields in sorted(by_key.items()):
        out.append(Sample(measurement="egovmon_findings", timestamp=at, fields=fields,
                          tags={"agency": agency, "rule_id": rule, "article": article, "severity": severity}))
    firing: Counter[tuple[str, str]] = Counter()
    lacking: Counter[tuple[str, str]] = Counter()
    for a in alerts:
        if a["status"] == "firing":
            n = a.get("count", 1)
            firing[(a["agency"] or "-", a["severity"])] += n
            lacking[(a["agency"] or "-", a["severity"])] += n * int(bool(a["lacking_data"]))
    for (agency, severity), n in sorted(firing.items()):
        out.append(Sample(measurement="egovmon_alerts", timestamp=at, tags={"agency": agency, "severity": severity},
                          fields={"firing": n, "lacking_data": lacking[(agency, severity)]}))
    for row in scorecard:
        fields = {k: (float(row[k]) if row[k] is not None else -1.0) for k in
                  ("monitoring_coverage_ratio", "backup_rpo_ratio", "duties_on_time_ratio")}  # -1: nothing to measure
        fields.update({k: int(row[k]) for k in ("duties", "duties_overdue", "open_findings", "hosts_expected", "hosts_reporting")})
        out.append(Sample(measurement="egovmon_scorecard", timestamp=at, tags={"agency": row["agency"]}, fields=fields))
    for e in alert_events:
        out.append(Sample(measurement="egovmon_alert_events", timestamp=e["at"],
                          tags={"agency": e["agency"] or "-", "severity": e["severity"], "status": e["status"], "alertname": e["alertname"]},
                          fields={"text": e["text"][:1000] or e["alertname"], "fingerprint": e["fingerprint"]}))
    for e in finding_events:
        out.append(Sample(measurement="egovmon_finding_events", timestamp=e["at"],
                          tags={"agency": e["agency"] or "-", "severity": e["severity"], "status": e["status"], "article": e["article"]},
                          fields={"text": e["text"][:1000], "finding_id": int(e["finding_id"])}))
    return out


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
    findings = [
        {"agency": codes.get(agency_id or -1), "rule_id": rule_id, "article": RULES[rule_id].article_zh, "severity": severity,
         "status": status, "count": count}
        for agency_id, rule_id, severity, status, count in finding_counts if rule_id in RULES
    ]  # fmt: skip
    alert_rows = [
        {"agency": agency, "severity": severity, "status": "firing", "lacking_data": lacking, "count": count}
        for agency, severity, lacking, count in session.execute(
            select(AlertRecord.agency_code, AlertRecord.severity, AlertRecord.lacking_data, func.count())
            .where(AlertRecord.status == "firing")
            .group_by(AlertRecord.agency_code, AlertRecord.severity, AlertRecord.lacking_data)
        )
    ]  # fmt: skip
    alert_events = []
    finding_events = []
    if since is not None:
        changed_alerts = session.scalars(select(AlertRecord).where(or_(
            and_(AlertRecord.fired_at > since, AlertRecord.fired_at <= now),
            and_(AlertRecord.resolved_at > since, AlertRecord.resolved_at <= now),
        )))  # fmt: skip
        for a in changed_alerts:
            for status, at in (("firing", a.fired_at), ("resolved", a.resolved_at)):
                if at is not None and since < at <= now:
                    alert_events.append({"agency": a.agency_code, "severity": a.severity, "status": status, "alertname": a.alertname,
                                         "text": a.annotations.get("summary_zh", a.alertname), "fingerprint": a.fingerprint, "at": at})
        changed_findings = session.scalars(
            select(Finding).where(Finding.status_changed_at > since, Finding.status_changed_at <= now)
        )
        for f in changed_findings:
            rule = RULES.get(f.rule_id)
            if rule is None:
                continue
            finding_events.append({"agency": codes.get(f.agency_id or -1), "severity": f.severity, "status": f.status,
                                   "article": rule.article_zh, "text": rule.text("zh", f.subject)["title"], "finding_id": f.id,
                                   "at": f.status_changed_at})
    return state_samples(findings=findings, alerts=alert_rows, scorecard=scorecard(session, now=now, access=operator("state-export")),
                         alert_events=alert_events, finding_events=finding_events, at=now)
