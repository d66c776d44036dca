"""Observation sinks run off the request path: a bounded queue drained by one worker thread.

Reconciling a batch's observations into findings (the inventory sink) reads the
registry and writes findings; done inside the request it made every batch with
observations wait for it, and under load made the whole ingest path wait. After
the batch is committed the pipeline `offer`s its observations here and the
request is acknowledged at once; the worker hands them to each sink in arrival
order, typically within milliseconds. What queued up while a sink worked is
handed over together (up to MAX_BATCHES_PER_PASS), so a sink that falls behind
catches up in one pass instead of one per batch. The observations are already durable
(`observations` table) when they are offered, so a batch dropped because the
queue is full (counted in `egovmon_ingest_handoff_dropped_total`, logged once per
overflow episode) loses no data, only the immediate reconciliation of that
batch; the minute's full pass reconciles the facts already recorded.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from core.wire import ObservationRecord
from server.ingest.hooks import IngestHooks, ObservedBatch, Origin
from server.metrics import ServerMetrics

log = logging.getLogger(__name__)

_STOP = object()
MAX_BATCHES_PER_PASS = 500  # observation batches handed to the sinks at once


class ObservationHandoff:
    """Queue of (origin, observations) for the observation sinks, with one worker thread."""

    def __init__(self, hooks: IngestHooks, metrics: ServerMetrics, *, size: int) -> None:
        self._hooks = hooks
        self._metrics = metrics
        self._queue: queue.Queue[ObservedBatch | object] = queue.Queue(maxsize=size)  # or _STOP
        self._overflowing = False
        self._thread = threading.Thread(target=self._run, name="observation-handoff", daemon=True)
        self._thread.start()

    def offer(self, origin: Origin, observations: Sequence[ObservationRecord]) -> bool:
        """Queue one batch's observations; False (counted) when the queue is full."""
        try:
            self._queue.put_nowait(ObservedBatch(origin, observations))
        except queue.Full:
            self._metrics.handoff_dropped.inc()
            if not self._overflowing:
                self._overflowing = True
                log.warning("observation queue full (%d batches): reconciliation falls behind; the full pass catches up",
                            self._queue.maxsize)
            return False
        return True

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued batch went to the sinks (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Hand over what is queued, then stop the worker."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batches: list[ObservedBatch] = []
            item = self._queue.get()
            while isinstance(item, ObservedBatch):  # take what queued up meanwhile, up to a bound
                batches.append(item)
                if len(batches) >= MAX_BATCHES_PER_PASS:
                    item = None
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if batches:
                self._deliver(batches)
            if isinstance(item, threading.Event):  # a drain marker, after everything queued before it
                item.set()
            elif item is _STOP:
                return

    def _deliver(self, batches: list[ObservedBatch]) -> None:
        if self._overflowing and self._queue.qsize() < self._queue.maxsize // 2:
            self._overflowing = False
            log.info("observation queue back under half full")
        for sink in self._hooks.observation_sinks:
            try:
                sink.observations_received(batches)
            except Exception:
                log.exception("observation sink %s failed", sink.name)
                self._metrics.hook_errors.labels(sink.name).inc()
