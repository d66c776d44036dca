"""Storage, grouping and the outbox: alerts stored with their transitions, noted in linked incidents, routed,
grouped per receiver and group labels (minus what is silenced, inhibited or in a maintenance window), repeated,
escalated, and written into the outbox as messages built once."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.evaluate import Alert, Transition, severity_of
from alerting.notify import AlertView, build
from alerting.route import Route, Silence, inhibited, parse_matcher, routes_for
from server.agencies.service import codes_by_id
from server.alerting.models import AlertRecord, Notification, SilenceRecord
from server.incidents import service as incidents
from server.incidents.models import Incident, TimelineEntry
from server.settings import RouteSettings

log = logging.getLogger("server.alerting.engine")


def build_route(settings: RouteSettings) -> Route:
    return Route(
        receiver=settings.receiver, matchers=tuple(parse_matcher(m) for m in settings.match),
        group_by=tuple(settings.group_by), continue_=settings.continue_,
        group_wait=timedelta(seconds=settings.group_wait_seconds), group_interval=timedelta(seconds=settings.group_interval_seconds),
        repeat_interval=timedelta(seconds=settings.repeat_interval_seconds),
        escalate_after=timedelta(seconds=settings.escalate_after_seconds) if settings.escalate_after_seconds else None,
        escalate_to=settings.escalate_to, routes=tuple(build_route(r) for r in settings.routes),
    )  # fmt: skip

def view(record: AlertRecord) -> AlertView:
    return AlertView(record.fingerprint, record.status, record.labels, record.annotations,
                     record.fired_at or record.active_since, record.resolved_at, record.lacking_data)  # fmt: skip


class OutboxMixin:
    """The engine's storage and outbox (AlertingEngine in server.alerting.engine)."""

    def _store(self, session: Session, transitions: Sequence[Transition], snapshot: Mapping[str, Alert], now: datetime) -> dict[str, AlertRecord]:
        changed = {t.alert.fingerprint for t in transitions}
        records = {r.fingerprint: r for r in session.scalars(select(AlertRecord).where(AlertRecord.fingerprint.in_(changed)))} if changed else {}
        for fp in changed:
            alert = snapshot[fp]
            record = records.get(fp)
            if record is None:
                record = AlertRecord(fingerprint=fp, alertname=alert.labels.get("alertname", ""), active_since=alert.active_since)
                session.add(record)
                records[fp] = record
            record.agency_code = alert.labels.get("agency", "")
            record.severity = severity_of(alert.labels)
            record.labels, record.annotations = dict(alert.labels), dict(alert.annotations)
            if record.status == "resolved" and alert.status != "resolved":  # the same alert again: a new episode
                record.acknowledged_by = record.acknowledged_at = record.escalated_at = record.last_notified_at = None
                record.active_since = alert.active_since
            record.status, record.lacking_data, record.value = alert.status, alert.lacking_data, alert.value
            record.fired_at, record.resolved_at = alert.fired_at, alert.resolved_at
        session.flush()
        self._note_in_incidents(session, transitions, now)
        return records

    def _note_in_incidents(self, session: Session, transitions: Sequence[Transition], now: datetime) -> None:
        """Incidents opened from an alert get an automatic timeline entry when it fires again or resolves."""

        changed = {t.alert.fingerprint: t for t in transitions if t.after in ("firing", "resolved") and t.before != t.after}
        if not changed:
            return
        linked: dict[str, set[int]] = {}
        for entry in session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "alert", TimelineEntry.seq <= 2)):
            fp = entry.data.get("fingerprint")
            if fp in changed:
                linked.setdefault(fp, set()).add(entry.incident_id)
        texts = {"firing": "关联告警再次触发", "resolved": "关联告警已恢复"}
        codes = codes_by_id(session)
        for fp, incident_ids in linked.items():
            transition = changed[fp]
            owner = transition.alert.labels.get("agency", "")
            for incident_id in sorted(incident_ids):
                incident = session.get(Incident, incident_id)
                if incident is None or incident.status == "closed":
                    continue
                if incident.agency_id is not None and codes.get(incident.agency_id) != owner:
                    continue  # another agency's alert never writes into this incident (Article 25)
                incidents.append(session, incident, actor="system", kind="alert", at=now,
                                 text=f"{texts[transition.after]}：{transition.alert.annotations.get('summary_zh', fp)}",
                                 data={"fingerprint": fp, "status": transition.after})

    def _muted(self, silences: Sequence[Silence], labels: Mapping[str, str], now: datetime, firing: list[Mapping[str, str]]) -> bool:
        return (
            any(s.mutes(labels, now) for s in silences)
            or any(w.mutes(labels, now) for w in self.windows)
            or inhibited(labels, firing, self.inhibitions)
        )

    def _queue(self, session: Session, transitions: Sequence[Transition], records: Mapping[str, AlertRecord], now: datetime) -> int:
        if self.route is None:
            return 0
        firing = [r.labels for r in session.scalars(select(AlertRecord).where(AlertRecord.status == "firing"))]
        silences = []
        for s in session.scalars(select(SilenceRecord).where(SilenceRecord.ends_at > now)):
            try:
                silences.append(Silence(s.id, tuple(map(parse_matcher, s.matchers)), s.starts_at, s.ends_at))
            except (TypeError, ValueError) as exc:
                self._skip("silence", s.id, exc)
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Route, list[AlertRecord]]] = {}

        def add(record: AlertRecord, route: Route, receiver: str) -> None:
            key = (receiver, tuple((k, record.labels.get(k, "")) for k in route.group_by))
            members = groups.setdefault(key, (route, []))[1]
            if record not in members:
                members.append(record)

        announce = {t.alert.fingerprint for t in transitions if t.after in ("firing", "resolved") and (t.before != t.after or t.after == "firing")}
        for fp in announce:
            record = records[fp]
            if record.status == "resolved" and record.last_notified_at is None:
                continue  # it was never announced (muted while firing): nothing to take back
            if self._muted(silences, record.labels, now, firing):
                continue
            for route in routes_for(self.route, record.labels):
                add(record, route, route.receiver)
            record.last_notified_at = now
        for record in session.scalars(select(AlertRecord).where(AlertRecord.status == "firing", AlertRecord.acknowledged_at.is_(None))):
            if record.fingerprint in announce or self._muted(silences, record.labels, now, firing):
                continue
            for route in routes_for(self.route, record.labels):
                if record.last_notified_at is not None and now - record.last_notified_at >= route.repeat_interval:
                    add(record, route, route.receiver)
                    record.last_notified_at = now
                if (route.escalate_after and route.escalate_to and record.severity == "critical" and record.escalated_at is None
                        and record.fired_at is not None and now - record.fired_at >= route.escalate_after):
                    add(record, route, route.escalate_to)
                    record.escalated_at = now
        self._resend_to_alertmanagers(session, silences, firing, now, add)
        queued = 0
        for (receiver_name, group), (route, members) in groups.items():
            receiver = self.receivers.get(receiver_name)
            if receiver is None:
                log.error("route names receiver %r, which is not configured", receiver_name)
                continue
            group_key = json.dumps([receiver_name, group], ensure_ascii=False)[:512]
            queued += self._enqueue(session, receiver, route, group_key, dict(group), members, now)
        return queued

    def _resend_to_alertmanagers(self, session: Session, silences: Sequence[Silence], firing: list[Mapping[str, str]], now: datetime,
                                 add: Callable[[AlertRecord, Route, str], None]) -> None:
        """Firing alerts routed to an `alertmanager` receiver are posted again every `resend_seconds` (acknowledged or
        not: Alertmanager has no acknowledgement and would end them after its resolve_timeout). What was posted when
        is kept in memory: after a restart every firing alert is posted once more at once, which Alertmanager merges."""
        if self.route is None or not any(r.kind == "alertmanager" for r in self.receivers.values()):
            return
        alive = set()
        for record in session.scalars(select(AlertRecord).where(AlertRecord.status == "firing")):
            if self._muted(silences, record.labels, now, firing) or record.last_notified_at is None:
                continue  # never announced (muted, or still waiting for its first message): nothing to keep alive
            for route in routes_for(self.route, record.labels):
                receiver = self.receivers.get(route.receiver)
                if receiver is None or receiver.kind != "alertmanager":
                    continue
                key = (receiver.name, record.fingerprint)
                alive.add(key)
                last = self._posted_at.get(key, record.last_notified_at)
                if now - last >= timedelta(seconds=receiver.resend_seconds):
                    add(record, route, receiver.name)
                    self._posted_at[key] = now
                else:
                    self._posted_at.setdefault(key, last)
        for key in set(self._posted_at) - alive:  # resolved or muted since: forget (bounded by the firing alerts)
            del self._posted_at[key]

    def _enqueue(self, session: Session, receiver: Any, route: Route, group_key: str, group: dict[str, str],
                 members: list[AlertRecord], now: datetime) -> int:
        """Alertmanager's grouping: a message not yet sent for this group absorbs the new alerts; a new group waits
        `group_wait`; a group sent before waits until `group_interval` after its last message."""
        waiting = session.scalar(select(Notification).where(Notification.group_key == group_key, Notification.status == "pending",
                                                            Notification.attempts == 0, Notification.next_attempt_at > now)
                                   .with_for_update())  # fmt: skip  # not claimed for sending while it absorbs alerts
        if waiting is not None:
            known = {fp: record for fp, record in ((fp, session.get(AlertRecord, fp)) for fp in waiting.fingerprints) if record is not None}
            known.update({r.fingerprint: r for r in members})
            waiting.fingerprints = list(known)
            waiting.body = build(receiver.kind, receiver.name, group, [view(r) for r in known.values()],
                                 language=receiver.language, external_url=self.settings.external_url)
            return 0
        last_sent = session.scalar(select(Notification.created_at).where(Notification.group_key == group_key)
                                   .order_by(Notification.id.desc()).limit(1))  # fmt: skip
        due = now + route.group_wait if last_sent is None else max(now, last_sent + route.group_interval)
        if receiver.kind == "alertmanager":
            due = now  # Alertmanager groups and waits itself; a late post only delays it
        body = build(receiver.kind, receiver.name, group, [view(r) for r in members], language=receiver.language,
                     external_url=self.settings.external_url)
        session.add(Notification(receiver=receiver.name, group_key=group_key, kind=receiver.kind, body=body,
                                 fingerprints=[r.fingerprint for r in members], status="pending", attempts=0, created_at=now,
                                 next_attempt_at=due, last_error=""))  # fmt: skip
        return 1
