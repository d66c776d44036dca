"""Readings → batches on the disk queue → the server, with retries that never lose a batch.

`Batcher` turns readings into gzip JSON batches (each with a fresh `batch_id`
that stays with it through every retry, so the server stores it once) and puts
them on the disk queue. `Shipper` sends the queue oldest first; a batch leaves
the queue only when the server acknowledged it, or refused it for good (a 4xx
about its content: retrying could never succeed, and it would block the rest).
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

import httpx

from agent.metrics import AgentMetrics
from agent.queue import DiskQueue, QueuedBatch
from agent.settings import ShipperSettings
from core.collect import Reading
from core.models import MAX_OBSERVATIONS_PER_BATCH, Batch, Observation, Sample

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"
# Refusals about the batch itself: sending it again cannot succeed.
PERMANENT_REFUSALS = frozenset({400, 413, 415, 422})


@dataclass
class _Pending:
    samples: list[Sample] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


def encode_body(batch_id: str, hostname: str, samples: list[Sample], observations: list[Observation], level: int) -> bytes:
    """The gzip-compressed JSON of one batch."""
    batch = Batch(batch_id=batch_id, host=hostname, samples=samples, observations=observations)
    return gzip.compress(batch.model_dump_json().encode(), level)


class Batcher:
    """Collects readings and writes them to the queue as batches of at most `max_batch_samples` samples."""

    def __init__(self, queue: DiskQueue, *, hostname: str, settings: ShipperSettings, wake: asyncio.Event, metrics: AgentMetrics) -> None:
        self._queue = queue
        self._hostname = hostname
        self._settings = settings
        self._wake = wake
        self._metrics = metrics
        self._pending = _Pending()
        self._has_pending = asyncio.Event()

    def add(self, reading: Reading) -> None:
        """Queue a reading's samples and observations; full batches are written at once."""
        pending = self._pending
        self._has_pending.set()
        pending.samples.extend(reading.samples)
        pending.observations.extend(reading.observations)
        while (
            len(self._pending.samples) >= self._settings.max_batch_samples
            or len(self._pending.observations) >= MAX_OBSERVATIONS_PER_BATCH
        ):
            self.flush()  # replaces self._pending with what did not fit

    def flush(self) -> None:
        """Write what is pending as one batch (no-op when nothing is)."""
        pending = self._pending
        if not pending.samples and not pending.observations:
            return
        limit = self._settings.max_batch_samples
        samples, rest = pending.samples[:limit], pending.samples[limit:]
        observations = pending.observations[:MAX_OBSERVATIONS_PER_BATCH]
        later = pending.observations[MAX_OBSERVATIONS_PER_BATCH:]
        body = encode_body(uuid.uuid4().hex, self._hostname, samples, observations, self._settings.gzip_level)
        self._pending = _Pending(samples=rest, observations=later)
        try:
            self._queue.put(body)
        except (OSError, ValueError) as exc:  # a full disk must not stop collection
            self._metrics.queue_write_errors.inc()
            log.error("cannot queue a batch of %d samples: %s", len(samples), exc)
            return
        self._wake.set()

    async def run(self) -> None:
        """Flush readings at most `flush_interval_seconds` after they arrive, until cancelled (idle when nothing comes)."""
        while True:
            await self._has_pending.wait()
            await asyncio.sleep(self._settings.flush_interval_seconds)
            self._has_pending.clear()
            self.flush()


class Outcome(Enum):
    SENT = "sent"
    REFUSED = "refused"
    RETRY = "retry"


class Shipper:
    """Sends queued batches to the server, oldest first, with exponential backoff and jitter."""

    def __init__(
        self,
        queue: DiskQueue,
        *,
        server_url: str,
        credential: str,
        settings: ShipperSettings,
        wake: asyncio.Event,
        metrics: AgentMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._queue = queue
        self._url = server_url.rstrip("/") + INGEST_PATH
        self._headers = {
            "Authorization": f"Bearer {credential}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        self._settings = settings
        self._wake = wake
        self._metrics = metrics
        self._sleep = sleep
        self._jitter = jitter
        self._verify = verify
        self._failing = False
        self._retry_after: float | None = None

    async def run(self) -> None:
        """Ship until cancelled."""
        delay = self._settings.backoff_initial_seconds
        async with httpx.AsyncClient(timeout=self._settings.timeout_seconds, verify=self._verify) as client:
            while True:
                item = self._queue.peek()
                if item is None:
                    self._wake.clear()
                    try:  # woken by the batcher; the timeout only guards against a lost wake-up
                        await asyncio.wait_for(self._wake.wait(), timeout=30.0)
                    except TimeoutError:
                        pass
                    continue
                outcome = await self._send(client, item)
                if outcome is Outcome.RETRY:
                    if self._retry_after is not None:
                        # The server sheds load and said when to come back: not sooner, spread over as long again
                        # so that the agents it turned away do not all return in the same second.
                        await self._sleep(self._retry_after * (1 + self._jitter()))
                        continue
                    await self._sleep(delay * (0.5 + self._jitter()))
                    delay = min(delay * 2, self._settings.backoff_max_seconds)
                    continue
                self._queue.ack(item)
                delay = self._settings.backoff_initial_seconds

    async def _send(self, client: httpx.AsyncClient, item: QueuedBatch) -> Outcome:
        self._retry_after = None
        try:
            body = await asyncio.to_thread(item.read)
        except FileNotFoundError:  # dropped for space while we waited
            return Outcome.REFUSED
        started = time.perf_counter()
        try:
            response = await client.post(self._url, content=body, headers=self._headers)
        except httpx.HTTPError as exc:
            return self._retry(f"server unreachable: {exc!r}")
        self._metrics.ship_duration.observe(time.perf_counter() - started)
        if response.status_code == 200:
            self._metrics.shipped_batches.labels("sent").inc()
            self._metrics.last_ship_success.set(time.time())
            log.debug("shipped batch %s (%d bytes)", item.path.name, len(body))
            if self._failing:
                log.info("server reachable again; shipping the queue (%d batches)", len(self._queue))
                self._failing = False
            return Outcome.SENT
        detail = _detail(response)
        if response.status_code in PERMANENT_REFUSALS:
            self._metrics.shipped_batches.labels("refused").inc()
            log.error("server refused batch %s for good (%d): %s", item.path.name, response.status_code, detail)
            return Outcome.REFUSED
        if response.status_code in (429, 503):
            self._retry_after = retry_after_seconds(response.headers.get("retry-after"), self._settings.backoff_max_seconds)
        return self._retry(f"server answered {response.status_code}: {detail}")

    def _retry(self, reason: str) -> Outcome:
        self._metrics.ship_errors.inc()
        if not self._failing:
            log.warning("cannot ship batches (%s); keeping them on disk and retrying", reason)
            self._failing = True
        return Outcome.RETRY


def retry_after_seconds(value: str | None, longest: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date, RFC 9110 §10.2.3), at most `longest`;
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), longest)
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        return None
    return min(max(0.0, (at - datetime.now(UTC)).total_seconds()), longest)


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))[:300]
    except ValueError:
        return response.text[:300]
