"""The inventory's entry point in the server: observations in, observed facts and findings out.

`observations_received` runs for committed ingest batches with observations,
on the ingest handoff's worker thread, off the request path (see
server/ingest/handoff.py): it records the batches' facts and reconciles at once
the assets they touched, so a new address on a watched host is a finding
within seconds. Batches that queued up while it worked are taken together, in
one transaction and one reconciliation (reconciliation goes asset by asset, so
this is the same as one batch after the other). `full_pass` (the app runs it every minute) reconciles
everything seen within the remediation window, which alone can count hosts per
site for the data-centre rule and close findings whose evidence is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from inventory.observed import HOST_FACTS, facts
from inventory.reconcile import Thresholds, reconcile
from server.findings import service as findings
from server.ingest.hooks import FindingChange, IngestHooks, ObservedBatch
from server.inventory import service
from server.inventory.revision import RegistryCache

log = logging.getLogger(__name__)

DEFAULT_REMEDIATE_AFTER = timedelta(hours=1)


class InventorySink:
    """Observations → observed facts → findings; thread-safe (a session per call)."""

    name = "inventory"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        hooks: IngestHooks,
        clock: Callable[[], datetime],
        *,
        remediate_after: timedelta = DEFAULT_REMEDIATE_AFTER,
        thresholds: Thresholds = Thresholds(),
    ) -> None:
        self._sessions = sessions
        self._hooks = hooks
        self._clock = clock
        self.remediate_after = remediate_after
        self.thresholds = thresholds
        self.registry = RegistryCache(service.load_registry)

    def observations_received(self, batches: Sequence[ObservedBatch]) -> None:
        found, hosts = [], set()
        for batch in batches:
            origin = batch.origin
            facts_of_batch = [f for o in batch.observations for f in facts(o, host=origin.hostname, agency=origin.agency_code)]
            if facts_of_batch:
                found += facts_of_batch
                hosts.add(origin.hostname)
        if not found:
            return
        now = self._clock()
        assets = {(f.kind, f.key) for f in found}
        with self._sessions() as session, session.begin():
            service.record_facts(session, found)
            host_keys = {(kind, hostname) for hostname in hosts for kind in HOST_FACTS}
            evidence = service.facts_for(session, assets | host_keys, since=now - self.remediate_after)
            drafts = reconcile(self.registry.get(session), evidence, now=now, thresholds=self.thresholds)
            changes = findings.apply_drafts(session, drafts, now=now)
        self._notify(changes)

    def full_pass(self) -> list[FindingChange]:
        """Reconcile everything seen within the remediation window; remediate what it no longer produces."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            evidence = service.all_facts(session, since=now - self.remediate_after)
            drafts = reconcile(self.registry.get(session), evidence, now=now, thresholds=self.thresholds, full=True)
            changes = findings.apply_drafts(session, drafts, now=now)
            changes += findings.remediate_missing(session, ((d.rule_id, d.subject, d.agency) for d in drafts), now=now)
            service.prune_facts(session, before=now - 7 * self.remediate_after)
        self._notify(changes)
        return changes

    def _notify(self, changes: Sequence[FindingChange]) -> None:
        if not changes:
            return
        for sink in self._hooks.finding_sinks:
            try:
                sink.findings_changed(changes)
            except Exception:
                log.exception("finding sink %s failed", sink.name)
