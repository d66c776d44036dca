"""The flow collector of an agent: receives NetFlow/IPFIX in the background, reports per interval.

A push source: a `FlowListener` (its own receiver and decoder threads) feeds
decoded records into a `FlowWindow`; each scheduled `collect()` takes the
window, summarises it (`aggregate.summarise`) and adds the listener's health
counters per exporter (datagrams, malformed, sequence losses, queue and kernel
drops) as counters. The listener starts on the first collection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import ClassVar

from collectors.flow.aggregate import AggregateSettings, FlowWindow, summarise
from collectors.flow.batch import ExporterFlows
from collectors.flow.listener import FlowListener
from collectors.flow.settings import FlowSettings
from core.collect import Reading, Target
from core.models import Sample

HEALTH_FIELDS = ("datagrams", "records", "option_records", "malformed", "skipped_sets", "queue_drops", "lost_records")


MAX_INTERFACE_NAMES = 65536  # per exporter


def learn_interface_name(names: dict[int, str], option: Mapping[str, int | str]) -> None:
    """Remember an interface's name from an options record (IPFIX IE 82/83 or v9 scope interface + name)."""
    index = option.get("interface_index")
    name = option.get("interface_name") or option.get("interface_description")
    if not (isinstance(index, int) and isinstance(name, str)):
        return
    clean = "".join(ch for ch in name if ch.isprintable()).strip()[:255].replace("\\", "/")  # a valid tag value
    if clean and (index in names or len(names) < MAX_INTERFACE_NAMES):
        names[index] = clean


class FlowCollector:
    """NetFlow v5/v9 and IPFIX reception and aggregation."""

    name: ClassVar[str] = "flow"

    def __init__(self, settings: FlowSettings, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._settings = settings
        self._aggregate = AggregateSettings(
            approved_prefixes=tuple(settings.approved_prefixes),
            internal_prefixes=tuple(settings.internal_prefixes),
            top_n=settings.top_n,
        )
        self._clock = clock
        self._window = FlowWindow()
        self._interface_names: dict[str, dict[int, str]] = {}
        self._lock = threading.Lock()
        self.listener = FlowListener(
            settings.listen_host, settings.listen_port, rcvbuf_bytes=settings.receive_buffer_bytes, on_flows=self._add
        )
        self._started = False

    def _add(self, received: ExporterFlows) -> None:
        with self._lock:
            self._window.add(received.exporter, received.flows)
            for option in received.options:
                learn_interface_name(self._interface_names.setdefault(received.exporter, {}), option)

    def start(self) -> None:
        """Bind and start receiving (idempotent). Raises OSError when the port cannot be bound."""
        if not self._started:
            self.listener.start()
            self._started = True

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        self.start()
        at = self._clock()
        with self._lock:
            records = self._window.take()
            names = {exporter: dict(known) for exporter, known in self._interface_names.items()}
        samples, observations = await asyncio.to_thread(summarise, records, self._aggregate, at=at, interface_names=names)
        stats = self.listener.stats()
        for exporter, counters in sorted(stats.exporters.items()):
            samples.append(Sample(
                measurement="flow_receiver", tags={"exporter": exporter}, timestamp=at,
                fields={f"{name}_total": int(getattr(counters, name)) for name in HEALTH_FIELDS},
            ))
        samples.append(Sample(
            measurement="flow_receiver_socket", timestamp=at,
            fields={"kernel_drops_total": int(stats.kernel_drops), "receive_buffer_bytes": int(stats.rcvbuf_bytes)},
        ))
        return Reading(samples=tuple(samples), observations=tuple(observations))

    def close(self) -> None:
        if self._started:
            self.listener.stop()
