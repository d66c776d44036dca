"""How `apply_drafts` folds a new pass's drafts into stored findings: opened, escalated, reopened, or silent."""

from __future__ import annotations

from datetime import timedelta

from inventory.observed import Fact
from inventory.reconcile import FindingDraft
from inventory.rules import UNDECLARED_NETWORK
from server.findings.models import EXEMPTED, OPEN, REMEDIATED, Finding
from server.findings.service import apply_drafts
from tests.server.conftest import Clock, make_agency


def _draft(clock: Clock, severity: str, *sources: str) -> FindingDraft:
    facts = tuple(Fact(kind="subnet", key="192.168.77.0/24", source=source, observation_kind="interface_address",
                       observation_subject="192.168.77.5/24", host="his-db-1", agency="health", observed_at=clock.now)
                  for source in sources)  # fmt: skip
    return FindingDraft(rule_id=UNDECLARED_NETWORK, subject="192.168.77.0/24", agency="health", severity=severity,
                        confidence=round(1 - 0.5 ** len(sources), 4), evidence=facts, detail={"pass": clock.now.isoformat()})


def test_a_finding_opens_escalates_keeps_its_highest_severity_and_reopens_once_remediated(client, admin, clock: Clock):
    health = make_agency(client, admin, "health")
    with client.app.state.sessions() as session, session.begin():
        (opened,) = apply_drafts(session, [_draft(clock, "warning", "netstate")], now=clock.now)
        assert (opened.change, opened.agency_code, opened.severity, opened.status) == ("opened", "health", "warning", OPEN)
        finding = session.get(Finding, opened.finding_id)
        assert finding is not None and finding.agency_id == health and finding.confidence == 0.5

        clock.advance(minutes=5)
        (escalated,) = apply_drafts(session, [_draft(clock, "critical", "snmp")], now=clock.now)
        assert (escalated.change, escalated.severity) == ("escalated", "critical")
        assert (finding.sources, finding.confidence, finding.last_seen_at) == (["netstate", "snmp"], 0.5, clock.now)

        clock.advance(minutes=5)
        assert apply_drafts(session, [_draft(clock, "info", "netstate", "flow")], now=clock.now) == []
        assert (finding.severity, finding.confidence, finding.sources) == ("critical", 0.75, ["flow", "netstate", "snmp"])
        assert finding.detail == {"pass": clock.now.isoformat()} and finding.evidence[0]["source"] == "netstate"

        finding.status = REMEDIATED
        clock.advance(minutes=5)
        (reopened,) = apply_drafts(session, [_draft(clock, "info", "flow")], now=clock.now)
        assert (reopened.change, reopened.status, reopened.at) == ("opened", OPEN, clock.now)
        assert (finding.severity, finding.confidence, finding.sources) == ("info", 0.5, ["flow"])  # a closed one takes the draft's

        finding.status = EXEMPTED
        clock.advance(minutes=5)
        assert apply_drafts(session, [_draft(clock, "critical", "snmp")], now=clock.now) == []  # stays exempted, silently
        assert (finding.status, finding.severity, finding.sources) == (EXEMPTED, "critical", ["snmp"])
        assert finding.first_seen_at == clock.now - timedelta(minutes=20)
