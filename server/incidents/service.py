"""Incidents: creation (from an alert, a finding, or by hand), the hash-chained timeline, and the report.

Each timeline entry's hash covers the previous entry's hash and the entry's own
canonical JSON (sequence, time, actor, kind, text, data), so changing or
removing any entry afterwards breaks every hash after it; `verify` recomputes
the chain and the report prints the result with the final hash, which the
receiving department can compare with a copy sent earlier.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.jsontypes import JsonObject
from server import access as scope
from server.access import Access
from server.agencies.models import Agency
from server.alerting.models import AlertRecord
from server.audit import service as audit
from server.auth.principal import Principal
from server.errors import BadRequestError, NotFoundError
from server.findings.models import Finding
from server.incidents.models import STATUSES, Incident, TimelineEntry

GENESIS = "0" * 64
SEVERITY_ZH = {"critical": "严重", "warning": "较大", "info": "一般"}
STATUS_ZH = {"open": "已登记", "investigating": "调查中", "contained": "已控制", "resolved": "已处置", "closed": "已结案"}
KIND_ZH = {"created": "创建", "note": "记录", "evidence": "证据", "status": "状态变更", "alert": "告警", "finding": "发现"}


def entry_hash(prev_hash: str, seq: int, at: datetime, actor: str, kind: str, text: str, data: Mapping[str, object]) -> str:
    canonical = json.dumps({"seq": seq, "at": at.isoformat(), "actor": actor, "kind": kind, "text": text, "data": data},
                           ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)  # fmt: skip
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def append(session: Session, incident: Incident, *, actor: str, kind: str, text: str, data: Mapping[str, object],
           at: datetime) -> TimelineEntry:  # fmt: skip
    """Add one entry at the end of the chain (the only way entries are written). `data` is stored as JSON; a value
    JSON cannot hold (a time) as its str()."""
    last = session.scalar(select(TimelineEntry).where(TimelineEntry.incident_id == incident.id).order_by(TimelineEntry.seq.desc()).limit(1))
    seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
    stored: JsonObject = json.loads(json.dumps(data, default=str))  # a copy, exactly as the database will give it back
    entry = TimelineEntry(incident_id=incident.id, seq=seq, at=at, actor=actor, kind=kind, text=text[:20000], data=stored,
                          prev_hash=prev, hash=entry_hash(prev, seq, at, actor, kind, text[:20000], stored))  # fmt: skip
    session.add(entry)
    session.flush()
    return entry


def timeline(session: Session, incident_id: int) -> list[TimelineEntry]:
    return list(session.scalars(select(TimelineEntry).where(TimelineEntry.incident_id == incident_id).order_by(TimelineEntry.seq)))


def verify(entries: list[TimelineEntry]) -> tuple[bool, int | None]:
    """(intact, the first broken sequence number or None)."""
    prev = GENESIS
    for expected_seq, entry in enumerate(entries, start=1):
        if entry.seq != expected_seq or entry.prev_hash != prev:
            return False, expected_seq
        if entry_hash(prev, entry.seq, entry.at, entry.actor, entry.kind, entry.text, entry.data) != entry.hash:
            return False, entry.seq
        prev = entry.hash
    return True, None


@dataclass(frozen=True, slots=True)
class _Origin:
    """The alert or finding an incident is opened from: the defaults it gives and the evidence entry it adds."""

    title: str
    severity: str
    agency_code: str | None  # an alert names its agency by code
    agency_id: int | None  # a finding by id
    evidence_kind: str
    evidence_text: str
    evidence: dict[str, object]


def _from_alert(session: Session, *, access: Access, fingerprint: str, title: str | None) -> _Origin:
    """Raises NotFoundError, also for another agency's alert."""
    record = scope.get(session, AlertRecord, fingerprint, access=access, what="alert")
    title = title or record.annotations.get("summary_zh") or record.alertname
    return _Origin(title=title, severity=record.severity, agency_code=record.agency_code or None, agency_id=None,
                   evidence_kind="alert", evidence_text=f"由告警创建：{title}",
                   evidence={"fingerprint": record.fingerprint, "labels": record.labels, "annotations": record.annotations,
                             "fired_at": record.fired_at})  # fmt: skip


def _from_finding(session: Session, *, access: Access, finding_id: int) -> _Origin:
    """Raises NotFoundError, also for another agency's finding."""
    finding = scope.get(session, Finding, finding_id, access=access, what="finding")
    from inventory.rules import RULES  # noqa: PLC0415

    texts = RULES[finding.rule_id].text("zh", finding.subject)
    return _Origin(title=texts["title"], severity=finding.severity, agency_code=None, agency_id=finding.agency_id,
                   evidence_kind="finding", evidence_text=f"由发现创建：{texts['title']}（{texts['article']}）",
                   evidence={"finding_id": finding.id, "rule_id": finding.rule_id, "subject": finding.subject,
                             "evidence": finding.evidence})  # fmt: skip


def _origin(session: Session, *, access: Access, alert: str | None, finding_id: int | None,
            title: str | None) -> _Origin | None:  # fmt: skip
    """The alert (by fingerprint) or else the finding the incident is opened from; None when described by hand."""
    if alert:
        return _from_alert(session, access=access, fingerprint=alert, title=title)
    if finding_id is not None:
        return _from_finding(session, access=access, finding_id=finding_id)
    return None


def _owner(session: Session, *, access: Access, requested: int | None, origin: _Origin | None) -> tuple[int | None, str | None]:
    """The agency an incident belongs to, as (id, code): an agency user's own; else the agency of the alert or
    finding it is opened from, which a platform role's `requested` agency must match; else `requested`.
    Raises NotFoundError (unknown agency), BadRequestError (agency_mismatch)."""
    codes = dict(session.execute(select(Agency.code, Agency.id)).all())
    agency_id = requested
    if access.scoped:
        agency_id = access.agency_id  # an agency user opens incidents for its own agency only
    elif agency_id is not None and agency_id not in codes.values():
        raise NotFoundError(f"no agency {agency_id}", reason="unknown_agency")
    source_agency = _source_agency(origin, codes)
    if source_agency is not None:
        if agency_id is not None and agency_id != source_agency:  # its evidence would reach another agency
            raise BadRequestError("an incident opened from an alert or a finding belongs to that one's agency", reason="agency_mismatch")
        agency_id = source_agency
    return agency_id, next((c for c, i in codes.items() if i == agency_id), None)


def _source_agency(origin: _Origin | None, codes: dict[str, int]) -> int | None:
    """The id of the agency of the alert or finding an incident is opened from (None if it has none)."""
    if origin is None:
        return None
    if origin.agency_code:
        return codes.get(origin.agency_code)
    return origin.agency_id


def _title_and_severity(title: str | None, severity: str | None, origin: _Origin | None) -> tuple[str, str]:
    """The given title and severity, else the alert's or finding's. Raises BadRequestError when either is missing."""
    if origin:
        title = title or origin.title
        severity = severity or origin.severity
    if not title or severity is None or severity not in SEVERITY_ZH:
        raise BadRequestError("an incident needs a title and a severity (critical, warning, info)", reason="bad_incident")
    return title, severity


def _affected_agencies(origin: _Origin | None, own_code: str | None) -> list[str]:
    """The codes of the alert's agency and of the incident's own, sorted and without repeats."""
    named = [origin.agency_code] if origin and origin.agency_code else []
    return sorted(set(named + ([own_code] if own_code else [])))


def create(session: Session, *, access: Access, now: datetime, title: str | None, severity: str | None,
           alert: str | None = None, finding_id: int | None = None, agency_id: int | None = None,
           systems: list[str] | None = None, assignee: str = "", remote_addr: str | None = None) -> Incident:
    """An incident from an alert (fingerprint), a finding, or described by hand; the alert and the finding are looked
    up through the access layer, so another agency's are unknown (Article 25). Raises BadRequestError, NotFoundError."""
    principal = access.principal
    principal.require_user()
    origin = _origin(session, access=access, alert=alert, finding_id=finding_id, title=title)
    title, severity = _title_and_severity(title, severity, origin)
    agency_id, own_code = _owner(session, access=access, requested=agency_id, origin=origin)
    incident = Incident(title=title[:300], severity=severity, status="open", agency_id=agency_id,
                        affected_agencies=_affected_agencies(origin, own_code), affected_systems=systems or [],
                        assignee=assignee, created_at=now, created_by=principal.actor)  # fmt: skip
    session.add(incident)
    session.flush()
    append(session, incident, actor=principal.actor, kind="created", text=f"登记安全事件：{incident.title}",
           data={"severity": severity, "agency": own_code}, at=now)
    if origin:
        append(session, incident, actor="system", kind=origin.evidence_kind, text=origin.evidence_text,
               data=origin.evidence, at=now)
    audit.record(session, actor=principal.actor, action="incident.create", target_type="incident", target_id=incident.id,
                 details={"title": incident.title, "severity": severity}, remote_addr=remote_addr, at=now)
    return incident


def get(session: Session, *, incident_id: int, access: Access) -> Incident:
    """Raises NotFoundError (also for another agency's incident)."""
    return scope.get(session, Incident, incident_id, access=access, what="incident")


def list_incidents(session: Session, *, access: Access) -> list[Incident]:
    return list(session.scalars(scope.scoped(Incident, access=access).order_by(Incident.id.desc())))


def set_status(session: Session, incident: Incident, *, status: str, principal: Principal, now: datetime, note: str = "") -> None:
    if status not in STATUSES:
        raise BadRequestError(f"status must be one of {', '.join(STATUSES)}", reason="bad_status")
    before = incident.status
    incident.status = status
    append(session, incident, actor=principal.actor, kind="status", text=f"状态：{STATUS_ZH[before]} → {STATUS_ZH[status]}。{note}".strip(),
           data={"from": before, "to": status}, at=now)


def report_html(session: Session, incident: Incident) -> str:
    """The incident report in Chinese, fit to send to the relevant department, with the chain check."""
    entries = timeline(session, incident.id)
    intact, broken = verify(entries)
    rows = "\n".join(
        f"<tr><td>{e.seq}</td><td>{html.escape(e.at.strftime('%Y-%m-%d %H:%M:%S'))} UTC</td><td>{html.escape(KIND_ZH.get(e.kind, e.kind))}</td>"
        f"<td>{html.escape(e.actor)}</td><td>{html.escape(e.text)}</td><td><code>{e.hash[:16]}</code></td></tr>"
        for e in entries
    )
    check = (f"完整：{len(entries)} 条记录的哈希链校验通过，末条哈希 <code>{entries[-1].hash}</code>" if intact and entries
             else f"<strong>校验失败</strong>：第 {broken} 条记录起哈希链不一致，记录可能被修改")  # fmt: skip
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>安全事件报告 #{incident.id}</title>
<style>body{{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #999;padding:4px 8px;text-align:left;vertical-align:top}}</style></head>
<body>
<h1>网络安全事件调查报告</h1>
<p>依据《电子政务管理办法》第二十六条第（六）项、第二十七条第（五）项报送。</p>
<table>
<tr><th>事件编号</th><td>#{incident.id}</td><th>事件等级</th><td>{SEVERITY_ZH[incident.severity]}</td></tr>
<tr><th>事件名称</th><td colspan="3">{html.escape(incident.title)}</td></tr>
<tr><th>当前状态</th><td>{STATUS_ZH[incident.status]}</td><th>负责人</th><td>{html.escape(incident.assignee or "—")}</td></tr>
<tr><th>涉及单位</th><td>{html.escape("、".join(incident.affected_agencies) or "—")}</td>
<th>涉及系统</th><td>{html.escape("、".join(incident.affected_systems) or "—")}</td></tr>
<tr><th>登记时间</th><td>{incident.created_at.strftime('%Y-%m-%d %H:%M:%S')} UTC</td><th>登记人</th><td>{html.escape(incident.created_by)}</td></tr>
</table>
<h2>处置时间线</h2>
<table><tr><th>序号</th><th>时间</th><th>类型</th><th>记录人</th><th>内容</th><th>哈希</th></tr>
{rows}
</table>
<h2>记录完整性</h2>
<p>{check}</p>
</body></html>
"""
