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

import logging
import threading
import time as time_module
from collections.abc import Callable, Sequence
from datetime import datetime, time, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from alerting.evaluate import Alert, Evaluator, Transition
from alerting.pack import load_rule_pack
from alerting.route import Inhibition, MaintenanceWindow, parse_matcher
from server.alerting.delivery import DeliveryMetrics, deliver_due
from server.alerting.feed import HOST_MAP_SECONDS as HOST_MAP_SECONDS
from server.alerting.feed import FeedMixin
from server.alerting.lease import LEASE as LEASE
from server.alerting.lease import LeaseMixin, holds_lease, lease_holder
from server.alerting.lease import holder_died as holder_died
from server.alerting.outbox import OutboxMixin, build_route
from server.alerting.outbox import view as view
from server.settings import AlertingSettings

log = logging.getLogger(__name__)


class EngineMetrics(DeliveryMetrics, Protocol):
    """Where the engine reports its work (server.metrics.ServerMetrics implements it)."""

    def evaluated(self, *, seconds: float, rules: int, series: int, failed_rules: Sequence[str],
                  evicted_series: int = 0) -> None: ...


class AlertingEngine(LeaseMixin, FeedMixin, OutboxMixin):
    """One per server process; thread-safe. Its concerns live in server.alerting.lease (the evaluation lease),
    .feed (samples, findings and duties in), .outbox (storage, grouping, the outbox) and .delivery (sending)."""

    name = "alerting"

    def __init__(self, settings: AlertingSettings, sessions: sessionmaker[Session], clock: Callable[[], datetime], *,
                 shared: bool = False, on_skip: Callable[[str], None] | None = None,
                 metrics: EngineMetrics | None = None) -> None:
        """`shared`: several server workers ingest; this engine then evaluates only while it holds the lease, over
        the latest values and findings in the database (which every worker writes), not over its own share of samples.
        `on_skip(kind)` counts a stored row (duty, silence) the cycle skipped because it is invalid."""
        self._on_skip = on_skip or (lambda kind: None)
        self.metrics = metrics
        self._posted_at = {}
        self._skipped = set()
        self.settings = settings
        self.shared = shared
        self._holder = lease_holder(self)
        self._leading = False
        self._fed_ns = 0
        self._fed_findings_at = None
        self._host_map = {}
        self._host_map_at = None
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

    # the cycle

    def cycle(self) -> int:
        """Evaluate, store, and queue notifications; returns how many notifications were queued."""
        now = self._clock()
        if self.shared and not self._lead(now):
            return 0
        if self.shared:
            self._feed_from_database(now)
        self._observe_duties(now)
        transitions, snapshot = self._evaluate(now)
        with self._sessions() as session, session.begin():
            if self._lost_lease(session):
                return 0
            records = self._store(session, transitions, snapshot, now)
            queued = self._queue(session, transitions, records, now)
        return queued

    def _evaluate(self, now: datetime) -> tuple[list[Transition], dict[str, Alert]]:
        """One evaluation under the lock: the transitions, and a copy of the alerts as they are now (the resolved
        ones are then forgotten by the evaluator: they are remembered in the database)."""
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
        return transitions, snapshot

    def _lost_lease(self, session: Session) -> bool:
        """The fence (server.alerting.lease): True when this shared engine no longer holds the lease, so the cycle's
        results must not be stored; the row stays locked until `session`'s transaction ends."""
        if not self.shared or holds_lease(session, name=LEASE, holder=self._holder, now=self._clock()):
            return False
        log.warning("alert evaluation lease lost during a cycle by %s: its results are not stored", self._holder)
        self._leading = False  # taken over (this cycle outlived the lease): the new holder evaluates
        return True

    # delivery

    def dispatch(self) -> int:
        """Deliver due outbox rows; returns how many were sent (see server.alerting.delivery)."""
        return deliver_due(sessions=self._sessions, receivers=self.receivers, clock=self._clock, metrics=self.metrics)
