"""The ingest path's parts that live as long as the app: credentials, pipeline, group store and commit, handoff."""

from __future__ import annotations

from dataclasses import dataclass, field

from server.ingest.body import InflationSlots
from server.ingest.commit import GroupCommitter
from server.ingest.credentials import AgentCredentials
from server.ingest.faults import StorageHealth
from server.ingest.handoff import ObservationHandoff
from server.ingest.pipeline import IngestPipeline, IngestResult, PreparedBatch
from server.ingest.store import GroupStore
from server.metrics import ServerMetrics
from server.settings import ServerSettings


@dataclass
class IngestRuntime:
    """What POST /api/v1/ingest works with; `in_flight` is touched by the event loop's thread only."""

    settings: ServerSettings
    metrics: ServerMetrics
    credentials: AgentCredentials
    pipeline: IngestPipeline
    store: GroupStore
    committer: GroupCommitter[PreparedBatch, IngestResult]
    handoff: ObservationHandoff
    storage: StorageHealth
    in_flight: int = 0
    inflations: InflationSlots = field(init=False)

    def __post_init__(self) -> None:
        self.inflations = InflationSlots(self.settings.ingest_max_inflations)

    def ingest(self, credential: str, payload: bytes) -> IngestResult:
        """One batch, synchronously (benchmarks and tools; the API does the same steps without blocking).

        Raises:
            ApiError: what the API would answer with.
        """
        sender = self.credentials.cached(credential) or self.credentials.load(credential)
        return self.committer.submit(self.pipeline.prepare(sender.origin, payload)).result()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until the observations of every acknowledged batch reached the inventory (tests, tools)."""
        self.handoff.drain(timeout)

    def depths(self) -> dict[str, int]:
        return {"commit": self.committer.depth, "handoff": self.handoff.depth}

    def cache_clears(self) -> dict[str, int]:
        return self.pipeline.cache_clears()

    def strict_batches(self) -> int:
        """Batches the pipeline's fast path handed to the strict one."""
        return self.pipeline.strict_batches

    def close(self) -> None:
        """Store what is queued, then hand the queued observations to the inventory."""
        self.credentials.stop()
        self.committer.close()
        self.handoff.close()
