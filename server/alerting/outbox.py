"""Storage, grouping and the outbox: alerts stored with their transitions, noted in linked incidents, routed,
grouped per receiver and group labels (minus what is silenced, inhibited or in a maintenance window), repeated,
escalated, and written into the outbox as messages built once."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerting.channel import ReceiverBase
from alerting.channels.alertmanager import AlertmanagerReceiver
from alerting.evaluate import Alert, Transition, severity_of
from alerting.notify import AlertView, build
from alerting.route import Inhibition, MaintenanceWindow, Route, Silence, inhibited, parse_matcher, routes_for
from core.jsontypes import JsonObject
from server.agencies.service import codes_by_id
from server.alerting.models import AlertRecord, Notification, SilenceRecord
from server.alerting.state import EngineState
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


class OutboxMixin(EngineState):
    """The engine's storage and outbox (AlertingEngine in server.alerting.engine)."""

    _posted_at: dict[tuple[str, str], datetime]  # (alertmanager receiver, fingerprint) → last post queued

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
        linked = _linked_incidents(session, changed.keys())
        codes = codes_by_id(session)
        for fp, incident_ids in linked.items():
            transition = changed[fp]
            owner = transition.alert.labels.get("agency", "")
            for incident_id in sorted(incident_ids):
                incident = _open_incident_of(session, incident_id, owner, codes)
                if incident is not None:
                    incidents.append(session, incident, actor="system", kind="alert", at=now,
                                     text=f"{INCIDENT_NOTES[transition.after]}：{transition.alert.annotations.get('summary_zh', fp)}",
                                     data={"fingerprint": fp, "status": transition.after})

    def _queue(self, session: Session, transitions: Sequence[Transition], records: Mapping[str, AlertRecord], now: datetime) -> int:
        """Route and group this cycle's messages and write them into the outbox; returns how many rows were added.

        An alert is announced when it fires or resolves, repeated every `repeat_interval` while firing and not
        acknowledged, escalated once after `escalate_after`, and kept alive in Alertmanager; the muted are left out."""
        if self.route is None:
            return 0
        muting = self._muting(session, now)
        groups = _Groups()
        announce = {t.alert.fingerprint for t in transitions if t.after in ("firing", "resolved") and (t.before != t.after or t.after == "firing")}
        self._announce(self.route, [records[fp] for fp in announce], muting, groups, now)
        self._repeat_and_escalate(session, self.route, announce, muting, groups, now)
        self._resend_to_alertmanagers(session, self.route, muting, groups, now)
        return self._enqueue_groups(session, groups, now)

    def _muting(self, session: Session, now: datetime) -> _Muting:
        """The active silences (an invalid stored one is skipped), the maintenance windows and the firing alerts."""
        firing = [r.labels for r in session.scalars(select(AlertRecord).where(AlertRecord.status == "firing"))]
        silences = []
        for s in session.scalars(select(SilenceRecord).where(SilenceRecord.ends_at > now)):
            try:
                silences.append(Silence(s.id, tuple(map(parse_matcher, s.matchers)), s.starts_at, s.ends_at))
            except (TypeError, ValueError) as exc:
                self._skip("silence", s.id, exc)
        return _Muting(silences, self.windows, self.inhibitions, firing, now)

    @staticmethod
    def _announce(root: Route, announced: Sequence[AlertRecord], muting: _Muting, groups: _Groups, now: datetime) -> None:
        """Alerts that fired or resolved this cycle go to their routes (and count as notified, even when no route
        takes them); a resolved alert that was never announced, or a muted one, is not."""
        for record in announced:
            if record.status == "resolved" and record.last_notified_at is None:
                continue  # it was never announced (muted while firing): nothing to take back
            if muting.mutes(record.labels):
                continue
            for route in routes_for(root, record.labels):
                groups.add(record, route, route.receiver)
            record.last_notified_at = now

    @staticmethod
    def _repeat_and_escalate(session: Session, root: Route, announced: Set[str], muting: _Muting, groups: _Groups,
                             now: datetime) -> None:
        """Firing, unacknowledged alerts not announced this cycle: repeated after `repeat_interval`, and critical
        ones escalated once, `escalate_after` their firing, to the route's `escalate_to`."""
        for record in session.scalars(select(AlertRecord).where(AlertRecord.status == "firing", AlertRecord.acknowledged_at.is_(None))):
            if record.fingerprint in announced or muting.mutes(record.labels):
                continue
            for route in routes_for(root, record.labels):
                if _repeat_due(record, route, now):
                    groups.add(record, route, route.receiver)
                    record.last_notified_at = now
                if route.escalate_to and _escalation_due(record, route, now):
                    groups.add(record, route, route.escalate_to)
                    record.escalated_at = now

    def _resend_to_alertmanagers(self, session: Session, root: Route, muting: _Muting, groups: _Groups, now: datetime) -> None:
        """Firing alerts routed to an `alertmanager` receiver are posted again every `resend_seconds` (acknowledged or
        not: Alertmanager has no acknowledgement and would end them after its resolve_timeout). What was posted when
        is kept in memory: after a restart every firing alert is posted once more at once, which Alertmanager merges."""
        if not any(isinstance(r, AlertmanagerReceiver) for r in self.receivers.values()):
            return
        alive: set[tuple[str, str]] = set()
        for record in session.scalars(select(AlertRecord).where(AlertRecord.status == "firing")):
            if muting.mutes(record.labels) or record.last_notified_at is None:
                continue  # never announced (muted, or still waiting for its first message): nothing to keep alive
            for route in routes_for(root, record.labels):
                receiver = self.receivers.get(route.receiver)
                if not isinstance(receiver, AlertmanagerReceiver):
                    continue
                key = (receiver.name, record.fingerprint)
                alive.add(key)
                if self._resend_due(key, record.last_notified_at, timedelta(seconds=receiver.resend_seconds), now):
                    groups.add(record, route, receiver.name)
        for key in set(self._posted_at) - alive:  # resolved or muted since: forget (bounded by the firing alerts)
            del self._posted_at[key]

    def _resend_due(self, key: tuple[str, str], last_notified_at: datetime, every: timedelta, now: datetime) -> bool:
        """True (and remembered as posted now) when the alert of `key` was last posted `every` ago or longer."""
        last = self._posted_at.get(key, last_notified_at)
        if now - last >= every:
            self._posted_at[key] = now
            return True
        self._posted_at.setdefault(key, last)
        return False

    def _enqueue_groups(self, session: Session, groups: _Groups, now: datetime) -> int:
        """Each group into the outbox (see _enqueue); a route naming an unconfigured receiver is logged and left out."""
        queued = 0
        for (receiver_name, group), (route, members) in groups.by_key.items():
            receiver = self.receivers.get(receiver_name)
            if receiver is None:
                log.error("route names receiver %r, which is not configured", receiver_name)
                continue
            group_key = json.dumps([receiver_name, group], ensure_ascii=False)[:512]
            queued += self._enqueue(session, receiver, route, group_key, dict(group), members, now)
        return queued

    def _enqueue(self, session: Session, receiver: ReceiverBase, route: Route, group_key: str, group: dict[str, str],
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
            waiting.body = self._build(receiver, group, known.values())
            return 0
        due = _first_attempt_at(session, group_key, route, receiver.kind, now)
        session.add(Notification(receiver=receiver.name, group_key=group_key, kind=receiver.kind, body=self._build(receiver, group, members),
                                 fingerprints=[r.fingerprint for r in members], status="pending", attempts=0, created_at=now,
                                 next_attempt_at=due, last_error=""))  # fmt: skip
        return 1

    def _build(self, receiver: ReceiverBase, group: Mapping[str, str], records: Iterable[AlertRecord]) -> JsonObject:
        """The message to `receiver` about `records`, in its language, built once when queued."""
        return build(receiver.kind, receiver.name, group, [view(r) for r in records], language=receiver.language,
                     external_url=self.settings.external_url)


INCIDENT_NOTES = {"firing": "关联告警再次触发", "resolved": "关联告警已恢复"}  # timeline texts by the alert's new status

GroupKey = tuple[str, tuple[tuple[str, str], ...]]  # (receiver name, the route's group_by labels with their values)


@dataclass(frozen=True, slots=True)
class _Muting:
    """What keeps an alert quiet this cycle: an active silence, a maintenance window, or inhibition by a firing alert."""

    silences: Sequence[Silence]
    windows: Sequence[MaintenanceWindow]
    inhibitions: Sequence[Inhibition]
    firing: Sequence[Mapping[str, str]]  # the labels of every firing alert
    now: datetime

    def mutes(self, labels: Mapping[str, str]) -> bool:
        return (
            any(s.mutes(labels, self.now) for s in self.silences)
            or any(w.mutes(labels, self.now) for w in self.windows)
            or inhibited(labels, self.firing, self.inhibitions)
        )


class _Groups:
    """One cycle's messages: the alerts per receiver and group labels, each group with the route that formed it."""

    def __init__(self) -> None:
        self.by_key: dict[GroupKey, tuple[Route, list[AlertRecord]]] = {}

    def add(self, record: AlertRecord, route: Route, receiver: str) -> None:
        key = (receiver, tuple((k, record.labels.get(k, "")) for k in route.group_by))
        members = self.by_key.setdefault(key, (route, []))[1]
        if record not in members:
            members.append(record)


def _repeat_due(record: AlertRecord, route: Route, now: datetime) -> bool:
    """An announced alert is repeated `repeat_interval` after its last notification."""
    return record.last_notified_at is not None and now - record.last_notified_at >= route.repeat_interval


def _escalation_due(record: AlertRecord, route: Route, now: datetime) -> bool:
    """A critical alert not yet escalated is escalated `escalate_after` after it fired (when the route escalates)."""
    after = route.escalate_after
    if not after or record.severity != "critical" or record.escalated_at is not None or record.fired_at is None:
        return False
    return now - record.fired_at >= after


def _first_attempt_at(session: Session, group_key: str, route: Route, kind: str, now: datetime) -> datetime:
    """When a new message for the group is sent: after `group_wait` for a new group, `group_interval` after the
    group's last message otherwise; at once to Alertmanager, which groups and waits itself."""
    if kind == "alertmanager":
        return now  # a late post only delays it
    last_sent = session.scalar(select(Notification.created_at).where(Notification.group_key == group_key)
                               .order_by(Notification.id.desc()).limit(1))  # fmt: skip
    return now + route.group_wait if last_sent is None else max(now, last_sent + route.group_interval)


def _linked_incidents(session: Session, fingerprints: Set[str]) -> dict[str, set[int]]:
    """Fingerprint → the incidents opened from that alert (its alert entry is among their first two)."""
    linked: dict[str, set[int]] = {}
    for entry in session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "alert", TimelineEntry.seq <= 2)):
        fp = entry.data.get("fingerprint")
        if isinstance(fp, str) and fp in fingerprints:
            linked.setdefault(fp, set()).add(entry.incident_id)
    return linked


def _open_incident_of(session: Session, incident_id: int, owner: str, codes: Mapping[int, str]) -> Incident | None:
    """The incident, when it is open and of the alert's agency `owner` (or of no agency): another agency's alert
    never writes into an incident (Article 25)."""
    incident = session.get(Incident, incident_id)
    if incident is None or incident.status == "closed":
        return None
    if incident.agency_id is not None and codes.get(incident.agency_id) != owner:
        return None
    return incident
