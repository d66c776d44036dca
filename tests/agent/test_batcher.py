"""The batcher splits what collectors produce into batches the server accepts (sample and observation limits)."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from agent.metrics import AgentMetrics
from agent.queue import DiskQueue
from agent.settings import ShipperSettings
from agent.shipping import Batcher
from core.collect import Reading
from core.models import MAX_OBSERVATIONS_PER_BATCH, Batch, Observation, Sample


def test_a_reading_with_more_observations_than_a_batch_holds_is_split(tmp_path):
    queue = DiskQueue(tmp_path / "queue", 1 << 30)
    queue.open()
    batcher = Batcher(
        queue, hostname="collector-1", settings=ShipperSettings(max_batch_samples=1000),
        wake=asyncio.Event(), metrics=AgentMetrics(CollectorRegistry()),
    )  # fmt: skip
    now = datetime.now(UTC)
    observations = tuple(
        Observation(kind="flow_unplanned_address", subject=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", source="flow", observed_at=now)
        for i in range(25_000)
    )
    samples = tuple(Sample(measurement="flow", tags={"exporter": str(i)}, fields={"flows": i}, timestamp=now) for i in range(2500))
    batcher.add(Reading(samples=samples, observations=observations))
    batcher.flush()
    batches = []
    while (item := queue.peek()) is not None:
        batches.append(Batch.model_validate_json(gzip.decompress(item.read())))
        queue.ack(item)
    assert all(len(b.observations) <= MAX_OBSERVATIONS_PER_BATCH and len(b.samples) <= 1000 for b in batches)
    assert [o.subject for b in batches for o in b.observations] == [o.subject for o in observations]
    assert [s.fields["flows"] for b in batches for s in b.samples] == list(range(2500))
