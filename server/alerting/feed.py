"""The evaluation feed: samples and findings from the ingest hooks, or from the shared database when several
workers ingest, the duties as `duty_status` series, and the alerts and findings loaded back after a start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from alerting.evaluate import Alert, AlertStatus
from inventory.rules import RULES
from server.agencies.models import Agency
from server.agencies.service import codes_by_id
from server.alerting.models import AlertRecord
from server.alerting.state import EngineState
from server.duties.models import KINDS, Duty
from server.duties.service import due_at, invalid
from server.findings.models import ACTIVE, Finding
from server.history.base import Point
from server.hosts.models import Host, LatestSeries
from server.ingest.hooks import FindingChange, Origin

HOST_MAP_SECONDS = 600.0  # how long the feed's host id → (name, agency) map is kept before it is read afresh


def _ns_to_datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


class FeedMixin(EngineState):
    """The engine's inputs (AlertingEngine in server.alerting.engine); the evaluator is fed under its lock."""

    _fed_ns: int  # newest latest-value time fed from the shared database
    _fed_findings_at: datetime | None  # newest finding change fed from it
    _host_map: dict[int, tuple[str, str]]  # host id → (host name, agency code), see _hosts
    _host_map_at: datetime | None  # when _host_map was started

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
                    record.fingerprint, dict(record.labels), dict(record.annotations), AlertStatus(record.status), record.active_since,
                    record.fired_at, None, record.value, record.lacking_data,
                )  # fmt: skip
            agencies = codes_by_id(session)
            for f in session.scalars(select(Finding).where(Finding.status.in_(ACTIVE))):
                self._feed_finding(f, agencies, at=f.first_seen_at)

    def _feed_finding(self, f: Finding, agencies: Mapping[int, str], *, at: datetime) -> None:
        """One stored finding into the evaluator (the caller holds the lock), with its rule's texts."""

        rule = RULES.get(f.rule_id)
        if rule is None:  # a rule since removed from the catalogue
            self._skip("finding", f.id, KeyError(f"unknown rule {f.rule_id!r}"))
            return
        self.evaluator.finding(f.id, rule_id=f.rule_id, severity=f.severity, subject=f.subject, agency=agencies.get(f.agency_id or -1),
                               status=f.status, article=rule.article_zh, title_zh=rule.text("zh", f.subject)["title"],
                               title_en=rule.text("en", f.subject)["title"], at=at)  # fmt: skip

    def _feed_from_database(self, now: datetime) -> None:
        """Latest values newer than the last feed, and findings changed since, from the shared database.

        At fleet size this is every rule series of every host each cycle (40,000 rows at 10,000 hosts), so
        the rows are read as plain columns with their JSON as text (orjson), and host names and agencies come
        from a map kept across cycles (a host's name and agency do not change; the map is rebuilt when the
        lease is taken and every `HOST_MAP_SECONDS`): loading them as ORM objects took 3 s per cycle."""

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
