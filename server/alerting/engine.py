"""The alerting engine of the server: samples and findings in, alerts and a durable notification outbox out.

`samples_received` and `findings_changed` (ingest hooks) feed the pure
evaluator; `cycle()` (every evaluation interval) evaluates, stores the alerts
and, in the same transaction, writes what must be sent into the outbox —
routed, grouped per receiver and group labels, minus what is silenced,
inhibited or in a maintenance window; repeats and escalations come from the
stored alerts. `dispatch()` delivers due outbox rows (server.alerting.delivery). On start, firing alerts are loaded back
into the evaluator, so a restart neither forgets nor re-announces them.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time as time_module
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from alerting.evaluate import Alert, Evaluator, Transition, severity_of
from alerting.notify import AlertView, build
from alerting.route import (
    Inhibition,
    MaintenanceWindow,
    Route,
    Silence,
    inhibited,
    parse_matcher,
    routes_for,
)
from alerting.pack import load_rule_pack
from core.settings import AlertingSettings, RouteSettings
from server.agencies.service import codes_by_id
from server.alerting.delivery import DeliveryMetrics, deliver_due
from server.alerting.models import AlertRecord, Lease, Notification, SilenceRecord
from server.findings.models import ACTIVE, Finding
from server.history.base import Point
from server.ingest.hooks import FindingChange, Origin

log = logging.getLogger(__name__)


class EngineMetrics(DeliveryMetrics, Protocol):
    """Where the engine reports its work (server.metrics.ServerMetrics implements it)."""

    def evaluated(self, *, seconds: float, rules: int, series: int, failed_rules: Sequence[str]) -> None: ...

LEASE = "alert-evaluation"
HOST_MAP_SECONDS = 600.0  # how long the feed's host id → (name, agency) map is kept before it is read afresh


def _pid_namespace() -> str:
    """This process's PID namespace (Linux), so a holder's pid is only judged from the namespace it lives in."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:").strip("[]")
    except OSError:
        return "-"


def lease_holder(engine: object) -> str:
    """`host:pid-namespace:pid:object`: unique per engine, and enough to tell whether a holder on this machine died."""
    return f"{socket.gethostname()}:{_pid_namespace()}:{os.getpid()}:{id(engine):x}"


def holder_died(holder: str) -> bool:
    """True only when `holder` ran in this machine's PID namespace and its process is gone: the lease can be taken
    at once instead of after its time to live. Anything else (another machine, an unknown format) is left to the TTL."""
    parts = holder.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[1] in ("-", "") or parts[1] != _pid_namespace():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


def build_route(settings: RouteSettings) -> Route:
    return Route(
        receiver=settings.receiver, matchers=tuple(parse_matcher(m) for m in settings.match),
        group_by=tuple(settings.group_by), continue_=settings.continue_,
        group_wait=timedelta(seconds=settings.group_wait_seconds), group_interval=timedelta(seconds=settings.group_interval_seconds),
        repeat_interval=timedelta(seconds=settings.repeat_interval_seconds),
        escalate_after=timedelta(seconds=settings.escalate_after_seconds) if settings.escalate_after_seconds else None,
        escalate_to=settings.escalate_to, routes=tuple(build_route(r) for r in settings.routes),
    )  # fmt: skip


def _ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def view(record: AlertRecord) -> AlertView:
    return AlertView(record.fingerprint, record.status, record.labels, record.annotations,
                     record.fired_at or record.active_since, record.resolved_at, record.lacking_data)  # fmt: skip


class AlertingEngine:
    """One per server process; thread-safe."""

    name = "alerting"

    def __init__(self, settings: AlertingSettings, sessions: sessionmaker[Session], clock: Any, *, shared: bool = False,
                 on_skip: Callable[[str], None] | None = None, metrics: EngineMetrics | None = None) -> None:
        """`shared`: several server workers ingest; this engine then evaluates only while it holds the lease, over
        the latest values and findings in the database (which every worker writes), not over its own share of samples.
        `on_skip(kind)` counts a stored row (duty, silence) the cycle skipped because it is invalid."""
        self._on_skip = on_skip or (lambda kind: None)
        self.metrics = metrics
        self._posted_at: dict[tuple[str, str], datetime] = {}  # (alertmanager receiver, fingerprint) → last post queued
        self._skipped: set[tuple[str, Any]] = set()  # logged once per row
        self.settings = settings
        self.shared = shared
        self._holder = lease_holder(self)
        self._leading = False
        self._fed_ns = 0
        self._fed_findings_at: datetime | None = None
        self._host_map: dict[int, tuple[str, str]] = {}
        self._host_map_at: datetime | None = None
        self._sessions = sessions
        self._clock = clock
        self.rules = [packed.rule for packed in load_rule_pack(settings.rules_files, default_rules_too=settings.default_rules)]
        self.evaluator = Evaluator(self.rules, nodata_after=timedelta(seconds=settings.nodata_after_seconds))
        self._measurements = {r.measurement for r in self.rules if r.measurement}
        self.route = build_route(settings.route) if settings.route else None
        self.receivers = {r.name: r for r in settings.receivers}
        self.inhibitions = [
            Inhibition(tuple(map(parse_matcher, i.source)), tuple(map(parse_matcher, i.target)), tuple(i.equal))
            for i in settings.inhibit
        ]
        self.windows = [
            MaintenanceWindow(m.name, tuple(map(parse_matcher, m.match)), m.every, time.fromisoformat(m.start),
                              timedelta(minutes=m.duration_minutes), tuple(m.days), m.timezone)
            for m in settings.maintenance
        ]  # fmt: skip
        self._lock = threading.Lock()

    # inputs (ingest hooks)

    def samples_received(self, origin: Origin, points: Sequence[Point]) -> None:
        sender = {"host": origin.hostname, "agency": origin.agency_code}  # points carry the payload's tags only
        with self._lock:
            for point in points:
                if point.measurement in self._measurements:
                    self.evaluator.observe(point.measurement, {**point.tags, **sender}, point.fields, _ns_to_datetime(point.ns))

    def findings_changed(self, changes: Sequence[FindingChange]) -> None:
        with self._lock:
            for c in changes:
                self.evaluator.finding(c.finding_id, rule_id=c.rule_id, severity=c.severity, subject=c.subject, agency=c.agency_code,
                                       status=c.status, article=c.article, title_zh=c.title_zh, title_en=c.title_en, at=c.at)

    def restore(self) -> None:
        """Load firing alerts and active findings back after a start."""
        with self._sessions() as session, self._lock:
            for record in session.scalars(select(AlertRecord).where(AlertRecord.status.in_(("firing", "pending")))):
                if record.labels.get("drill") == "true":
                    continue  # drill alerts are not the evaluator's: they end when the drill ends
                self.evaluator.alerts[record.fingerprint] = Alert(
                    record.fingerprint, dict(record.labels), dict(record.annotations), record.status, record.active_since,
                    record.fired_at, None, record.value, record.lacking_data,
                )  # fmt: skip
            agencies = codes_by_id(session)
            for f in session.scalars(select(Finding).where(Finding.status.in_(ACTIVE))):
                self._feed_finding(f, agencies, at=f.first_seen_at)

    # the cycle

    def cycle(self) -> int:
        """Evaluate, store, and queue notifications; returns how many notifications were queued."""
        now = self._clock()
        if self.shared:
            if not self._lead(now):
                return 0
            self._feed_from_database(now)
        self._observe_duties(now)
        started = time_module.perf_counter()
        with self._lock:
            transitions = self.evaluator.evaluate(now)
            for rule, exc in self.evaluator.failures:
                self._skip("rule", rule, exc)
            if self.metrics is not None:
                self.metrics.evaluated(seconds=time_module.perf_counter() - started, rules=len(self.rules),
                                       series=self.evaluator.series_count, failed_rules=[rule for rule, _ in self.evaluator.failures],
                                       evicted_series=self.evaluator.evicted_series)
            snapshot = {fp: Alert(**vars(a)) for fp, a in self.evaluator.alerts.items()}
            for fp in [fp for fp, a in self.evaluator.alerts.items() if a.status == "resolved"]:
                del self.evaluator.alerts[fp]  # remembered in the database, not in memory
        with self._sessions() as session, session.begin():
            records = self._store(session, transitions, snapshot, now)
            queued = self._queue(session, transitions, records, now)
        return queued

    def _feed_finding(self, f: Finding, agencies: Mapping[int, str], *, at: datetime) -> None:
        """One stored finding into the evaluator (the caller holds the lock), with its rule's texts."""
        from inventory.rules import RULES  # noqa: PLC0415

        rule = RULES.get(f.rule_id)
        if rule is None:  # a rule since removed from the catalogue
            self._skip("finding", f.id, KeyError(f"unknown rule {f.rule_id!r}"))
            return
        self.evaluator.finding(f.id, rule_id=f.rule_id, severity=f.severity, subject=f.subject, agency=agencies.get(f.agency_id or -1),
                               status=f.status, article=rule.article_zh, title_zh=rule.text("zh", f.subject)["title"],
                               title_en=rule.text("en", f.subject)["title"], at=at)  # fmt: skip

    def _lead(self, now: datetime) -> bool:
        """Take or renew the evaluation lease; a new leader starts from the stored alerts."""
        ttl = timedelta(seconds=max(30.0, 3 * self.settings.evaluation_interval_seconds))
        try:
            with self._sessions() as session, session.begin():
                lease = session.get(Lease, LEASE, with_for_update=True)
                if lease is None:
                    session.add(Lease(name=LEASE, holder=self._holder, expires_at=now + ttl))
                elif lease.holder == self._holder or lease.expires_at <= now or holder_died(lease.holder):
                    lease.holder, lease.expires_at = self._holder, now + ttl
                else:
                    self._leading = False
                    return False
        except (IntegrityError, OperationalError):  # another worker created or took the lease at the same moment
            self._leading = False
            return False
        if not self._leading:
            log.info("alert evaluation lease taken by %s", self._holder)
            with self._lock:
                self.evaluator = Evaluator(self.rules, nodata_after=timedelta(seconds=self.settings.nodata_after_seconds))
            self._fed_ns, self._fed_findings_at = 0, None
            self._host_map_at = None
            self.restore()
            self._leading = True
        return True

    def _feed_from_database(self, now: datetime) -> None:
        """Latest values newer than the last feed, and findings changed since, from the shared database.

        At fleet size this is every rule series of every host each cycle (40,000 rows at 10,000 hosts), so
        the rows are read as plain columns with their JSON as text (orjson), and host names and agencies come
        from a map kept across cycles (a host's name and agency do not change; the map is rebuilt when the
        lease is taken and every `HOST_MAP_SECONDS`): loading them as ORM objects took 3 s per cycle."""
        from server.hosts.models import LatestSeries  # noqa: PLC0415

        with self._sessions() as session:
            rows = session.execute(
                select(LatestSeries.host_id, LatestSeries.measurement, cast(LatestSeries.tags, Text), cast(LatestSeries.fields, Text),
                       LatestSeries.ts_ns)
                .where(LatestSeries.measurement.in_(self._measurements), LatestSeries.ts_ns > self._fed_ns)
            ).all()  # fmt: skip
            hosts = self._hosts(session, {row[0] for row in rows}, now)
            query = select(Finding)
            if self._fed_findings_at is not None:
                query = query.where(Finding.status_changed_at > self._fed_findings_at)
            findings = list(session.scalars(query))
            agencies = codes_by_id(session)
        with self._lock:
            for host_id, measurement, tags_text, fields_text, ts_ns in rows:
                host = hosts.get(host_id)
                if host is None:
                    continue  # deleted since the values were read
                tags = {**orjson.loads(tags_text), "host": host[0], "agency": host[1]}
                self.evaluator.observe(measurement, tags, orjson.loads(fields_text), _ns_to_datetime(ts_ns))
                self._fed_ns = max(self._fed_ns, ts_ns)
            for f in findings:
                self._feed_finding(f, agencies, at=f.status_changed_at)
                self._fed_findings_at = max(self._fed_findings_at or f.status_changed_at, f.status_changed_at)

    def _hosts(self, session: Session, ids: set[int], now: datetime) -> dict[int, tuple[str, str]]:
        """Host id → (host name, agency code) for `ids`, from the map, reading only ids it does not hold."""
        from server.agencies.models import Agency  # noqa: PLC0415
        from server.hosts.models import Host  # noqa: PLC0415

        if self._host_map_at is None or now - self._host_map_at > timedelta(seconds=HOST_MAP_SECONDS):
            self._host_map, self._host_map_at = {}, now
        missing = sorted(ids - self._host_map.keys())
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            for host_id, hostname, agency in session.execute(
                select(Host.id, Host.hostname, Agency.code).join(Agency, Agency.id == Host.agency_id).where(Host.id.in_(part))
            ):
                self._host_map[host_id] = (hostname, agency)
        return self._host_map

    def _observe_duties(self, now: datetime) -> None:
        """Each duty as a `duty_status` series (overdue_seconds), for the DutyOverdue rule."""
        if "duty_status" not in self._measurements:
            return
        from server.duties.models import KINDS, Duty  # noqa: PLC0415
        from server.duties.service import due_at, invalid  # noqa: PLC0415

        with self._sessions() as session:
            codes = codes_by_id(session)
            duties = session.scalars(select(Duty)).all()
            with self._lock:
                for duty in duties:
                    problem = invalid(duty)
                    if problem is not None:
                        self._skip("duty", duty.id, ValueError(problem))
                        continue
                    try:
                        tags = {"agency": codes.get(duty.agency_id, ""), "duty": str(duty.id), "kind": duty.kind,
                                "name": KINDS[duty.kind][0], "system": duty.system or "-"}
                        overdue = max(0.0, (now - due_at(duty)).total_seconds())
                    except (KeyError, OverflowError, TypeError, ValueError) as exc:
                        self._skip("duty", duty.id, exc)
                        continue
                    self.evaluator.observe("duty_status", tags, {"overdue_seconds": overdue}, now)

    def _skip(self, kind: str, ident: Any, exc: Exception) -> None:
        """One invalid stored row is left out of this cycle; the others are evaluated. Logged once per row, counted."""
        self._on_skip(kind)
        if (kind, ident) not in self._skipped:
            self._skipped.add((kind, ident))
            log.error("alert evaluation skips %s %s, which is invalid: %s", kind, ident, exc)

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
        from server.incidents import service as incidents  # noqa: PLC0415
        from server.incidents.models import Incident, TimelineEntry  # noqa: PLC0415

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
                                                            Notification.attempts == 0, Notification.next_attempt_at > now))  # fmt: skip
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

    # delivery

    def dispatch(self) -> int:
        """Deliver due outbox rows; returns how many were sent (see server.alerting.delivery)."""
        return deliver_due(sessions=self._sessions, receivers=self.receivers, clock=self._clock, metrics=self.metrics)
