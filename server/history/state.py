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

from sqlalchemy import select
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
    """Samples for one export. `findings`/`alerts` are rows with agency, rule/article/severity and status."""
    out: list[Sample] = []
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    for f in findings:
        counts[(f["agency"] or "-", f["rule_id"], f["article"], f["severity"], f["status"])] += 1
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
            firing[(a["agency"] or "-", a["severity"])] += 1
            lacking[(a["agency"] or "-", a["severity"])] += int(bool(a["lacking_data"]))
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
    """Read findings, alerts, the scorecard and changes since `since` from SQL, as samples."""
    from server.access import operator  # noqa: PLC0415
    from inventory.rules import RULES  # noqa: PLC0415
    from server.agencies.service import codes_by_id  # noqa: PLC0415
    from server.alerting.models import AlertRecord  # noqa: PLC0415
    from server.duties.service import scorecard  # noqa: PLC0415
    from server.findings.models import Finding  # noqa: PLC0415

    codes = codes_by_id(session)
    findings = [
        {"agency": codes.get(f.agency_id or -1), "rule_id": f.rule_id, "article": RULES[f.rule_id].article_zh,
         "severity": f.severity, "status": f.status, "id": f.id, "changed": f.status_changed_at, "subject": f.subject}
        for f in session.scalars(select(Finding))
    ]  # fmt: skip
    alerts = list(session.scalars(select(AlertRecord)))
    alert_rows = [{"agency": a.agency_code, "severity": a.severity, "status": a.status, "lacking_data": a.lacking_data} for a in alerts]
    alert_events = []
    finding_events = []
    if since is not None:
        for a in alerts:
            for status, at in (("firing", a.fired_at), ("resolved", a.resolved_at)):
                if at is not None and since < at <= now:
                    alert_events.append({"agency": a.agency_code, "severity": a.severity, "status": status, "alertname": a.alertname,
                                         "text": a.annotations.get("summary_zh", a.alertname), "fingerprint": a.fingerprint, "at": at})
        for f in findings:
            if since < f["changed"] <= now:
                finding_events.append({"agency": f["agency"], "severity": f["severity"], "status": f["status"], "article": f["article"],
                                       "text": RULES[f["rule_id"]].text("zh", f["subject"])["title"], "finding_id": f["id"], "at": f["changed"]})
    return state_samples(findings=findings, alerts=alert_rows, scorecard=scorecard(session, now=now, access=operator("state-export")),
                         alert_events=alert_events, finding_events=finding_events, at=now)
