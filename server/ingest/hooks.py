"""Where ingested data goes after it is durable: inventory takes observations, alerting samples.

The pipeline calls every registered sink after the batch has been committed, so
a failing sink never loses data; its failure is logged and counted. Later
packages (inventory, alerting) register their sinks in `create_app`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.wire import ObservationRecord
from server.history.base import Point


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent the data, as established from the credential."""

    agency_id: int
    agency_code: str
    host_id: int
    hostname: str
    agent_id: int


@dataclass(frozen=True, slots=True)
class ObservedBatch:
    """The observations of one committed batch and who sent them."""

    origin: Origin
    observations: Sequence[ObservationRecord]


class ObservationSink(Protocol):
    """Receives the observations of committed batches (the inventory's entry point), off the request path."""

    name: str

    def observations_received(self, batches: Sequence[ObservedBatch]) -> None:
        """Observations of one or more batches, in commit order: several when they queued up while the sink
        worked, so that a sink that falls behind catches up in one pass instead of one per batch."""


class SampleSink(Protocol):
    """Receives the points of each committed batch (the alerting evaluator's entry point)."""

    name: str

    def samples_received(self, origin: Origin, points: Sequence[Point]) -> None: ...


@dataclass(frozen=True, slots=True)
class FindingChange:
    """A finding that was opened, escalated, or changed status (what alerting listens to).

    `change` is one of "opened", "escalated", "status"; `status` the finding's status after it
    (open, acknowledged, exempted, remediated, false_positive).
    """

    finding_id: int
    rule_id: str
    article: str
    severity: str  # info, warning, critical
    subject: str
    agency_code: str | None
    status: str
    change: str
    title_zh: str
    title_en: str
    at: datetime


class FindingSink(Protocol):
    """Receives finding changes after they are committed (the alerting evaluator's entry point for findings)."""

    name: str

    def findings_changed(self, changes: Sequence[FindingChange]) -> None: ...


@dataclass
class IngestHooks:
    """The sinks registered with the app."""

    observation_sinks: list[ObservationSink] = field(default_factory=list)
    sample_sinks: list[SampleSink] = field(default_factory=list)
    finding_sinks: list[FindingSink] = field(default_factory=list)
