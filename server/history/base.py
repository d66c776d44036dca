"""The contract between the ingest pipeline and a history store.

A history store receives points that the ingest pipeline has already validated
and enriched. TSDB writers use the pre-encoded line-protocol lines; the embedded
store uses the structured points. Writers are synchronous: the pipeline calls
them from a worker thread and acknowledges a batch only after `write` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

FieldValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class Point:
    """One validated, enriched point; `ns` is nanoseconds since the Unix epoch (UTC)."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    ns: int


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """The points of one ingested batch, and the same points as line protocol (one line each)."""

    points: Sequence[Point]
    lines: Sequence[str]


class HistoryError(Exception):
    """Root of history-store errors."""


class HistoryWriteError(HistoryError):
    """The store did not accept a write (unreachable, 5xx, timeout); the data may be retried."""


class HistoryRejectedError(HistoryError):
    """The store refused the data itself (4xx other than auth/throttling); retrying will not help."""


class SpoolFullError(HistoryError):
    """The store is down and the on-disk spool is full: the batch cannot be made durable."""


class HistoryWriter(Protocol):
    """Writes points to one history store."""

    name: str

    def write(self, batch: EncodedBatch) -> None:
        """Store the batch durably or raise.

        Raises:
            HistoryWriteError: transient failure; nothing may be assumed stored.
            HistoryRejectedError: the store refuses this data.
        """

    def ping(self) -> bool:
        """True when the store answers its health endpoint."""

    def close(self) -> None:
        """Release connections and threads."""
