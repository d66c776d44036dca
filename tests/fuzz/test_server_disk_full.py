"""Fault campaign: the server's data disk fills up under a real agent's shipper, then space returns (issue 14).

The server (`egovmon server`, a real process) keeps its data on a 4 MB tmpfs this test mounts (root needed; fails
when CI=true and it cannot). The agent side is the agent's own DiskQueue and Shipper in this process, its queue
on the ordinary disk, as on another machine. Properties:

- while the disk is full, ingest answers 503 with the configured Retry-After, `/readyz` is not ready, and the
  shipper keeps every batch it could not deliver (none is acknowledged, none is dropped);
- the shipper waits at least Retry-After before coming back (its sleep is injected: the asked delays are
  recorded, and a short real pause is taken so the test runs in seconds);
- once space returns, every batch the agent produced is stored exactly once with all its samples: the
  acknowledged ones before the fault and all that waited through it.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import CollectorRegistry

from agent.metrics import AgentMetrics
from agent.queue import DiskQueue
from agent.settings import ShipperSettings
from agent.shipping import Shipper, encode_body
from core.models import Sample
from server.ingest.faults import DISK_FULL
from tests.serverproc import start_server
from tests.services import fill_disk, small_tmpfs

RETRY_AFTER = 30  # the server's default storage_retry_after_seconds
SAMPLES_PER_BATCH = 40
BEFORE, DURING = 5, 30  # batches produced before the disk fills, and while it is full


def _body(batch_id: str, n: int) -> bytes:
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1) + timedelta(seconds=n)
    samples = [Sample(measurement="cpu", timestamp=at + timedelta(milliseconds=i), tags={"cpu": str(i)},
                      fields={"usage_user": float(i)}) for i in range(SAMPLES_PER_BATCH)]
    return encode_body(batch_id, "web01", samples, [], 6)


def test_a_full_server_disk_keeps_the_agents_batches_until_space_returns_and_stores_them_all(tmp_path):
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        server = start_server(disk)
        try:
            credential = server.agent("disk", "web01")["Authorization"].removeprefix("Bearer ")
            produced = asyncio.run(_campaign(server.url, credential, disk, tmp_path / "agent-queue"))
            assert server.process.poll() is None
        finally:
            server.stop()
        stored = dict(sqlite3.connect(disk / "data" / "egovmon.db").execute(
            "SELECT batch_id, samples FROM ingested_batches").fetchall())
    assert stored == dict.fromkeys(produced, SAMPLES_PER_BATCH)  # every batch, once, with all its samples


async def _campaign(url: str, credential: str, disk, queue_dir) -> list[str]:
    queue = DiskQueue(queue_dir, 64 << 20)
    queue.open()
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        await asyncio.sleep(0.05)

    wake = asyncio.Event()
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)

    def count(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    shipper = Shipper(queue, server_url=url, credential=credential, wake=wake, metrics=metrics, sleep=sleep,
                      settings=ShipperSettings(backoff_initial_seconds=0.1, backoff_max_seconds=60))
    task = asyncio.create_task(shipper.run())
    produced: list[str] = []

    def produce() -> None:
        batch_id = uuid.uuid4().hex
        queue.put(_body(batch_id, len(produced)))
        produced.append(batch_id)
        wake.set()

    async def until(predicate, what: str, timeout: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        try:
            for _ in range(BEFORE):
                produce()
            await until(lambda: len(queue) == 0, "the first batches delivered")
            delivered_before = count("egovmon_agent_shipped_batches_total", result="sent")
            assert delivered_before == BEFORE

            filler = disk / "filler"
            await asyncio.to_thread(fill_disk, filler)
            for _ in range(DURING):
                produce()
            # The database may hold free pages for a few batches; then the shipper meets the full disk.
            await until(lambda: count("egovmon_agent_ship_errors_total") >= 3, "the shipper to meet the full disk")
            waiting = len(queue)
            assert waiting > 0
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["storage_writes"] == DISK_FULL
            refused = await client.post("/api/v1/ingest", content=_body(uuid.uuid4().hex, 999), headers={
                "Authorization": f"Bearer {credential}", "Content-Type": "application/json", "Content-Encoding": "gzip"})
            assert refused.status_code == 503 and refused.json()["reason"] == DISK_FULL
            assert refused.headers["retry-after"] == str(RETRY_AFTER)
            assert len(queue) == waiting and queue.dropped_batches_total == 0  # nothing acknowledged, nothing dropped
            assert asked and all(seconds >= RETRY_AFTER for seconds in asked)  # Retry-After honoured (with jitter)

            filler.unlink()
            await until(lambda: len(queue) == 0, "the waiting batches delivered once space returns", timeout=60)
            assert (await client.get("/readyz")).status_code == 200
            assert count("egovmon_agent_shipped_batches_total", result="sent") == BEFORE + DURING
            assert count("egovmon_agent_shipped_batches_total", result="refused") == 0
            print(f"disk full: {waiting} of {DURING} batches waited, {len(asked)} retries, "
                  f"{count('egovmon_agent_ship_errors_total'):.0f} failed attempts")
        finally:
            task.cancel()
    return produced
