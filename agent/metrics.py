"""The agent's local /metrics: its own health, and the newest host samples for an existing Prometheus.

A sample becomes the metric `{measurement}_{field}` with the sample's tags as
labels, the naming VictoriaMetrics uses for the same line protocol, so a
dashboard query reads the same whether Prometheus scraped the agent or the
server wrote to the TSDB. A field ending in `_total` is a counter, anything else
a gauge.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.queue import DiskQueue
from core.collect import Reading
from core.supervise import WORKERS, Workers

if TYPE_CHECKING:  # only their counters' types: importing the collectors here would load flow and SNMP for every agent
    from collectors.flow.listener import ListenerStats
    from collectors.snmp.collector import SnmpStats


@runtime_checkable
class FlowListenerStats(Protocol):
    """What /metrics reads of a collectors.flow FlowListener."""

    def stats(self) -> ListenerStats: ...


@runtime_checkable
class SnmpCollectorStats(Protocol):
    """What /metrics reads of a collectors.snmp SnmpCollector."""

    def stats(self) -> SnmpStats: ...


class AgentMetrics:
    """Health of the agent: collector runs, queue, shipping."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.collector_runs = Counter(
            "egovmon_agent_collector_runs", "Collector runs, by result (ok, error, timeout)", ["collector", "result"], registry=r
        )
        self.collector_duration = Gauge(
            "egovmon_agent_collector_duration_seconds", "Duration of the last run", ["collector"], registry=r
        )
        self.collector_up = Gauge(
            "egovmon_agent_collector_up", "1 when the last run succeeded, 0 when it failed or timed out", ["collector"], registry=r
        )
        self.collector_last_success = Gauge(
            "egovmon_agent_collector_last_success_timestamp_seconds", "Unix time of the last successful run", ["collector"], registry=r
        )
        self.shipped_batches = Counter(
            "egovmon_agent_shipped_batches", "Batches that left the queue: sent, or refused for good", ["result"], registry=r
        )
        self.ship_errors = Counter("egovmon_agent_ship_errors", "Failed attempts to send a batch (retried)", registry=r)
        self.ship_duration = Histogram(
            "egovmon_agent_ship_duration_seconds", "Time for the server to acknowledge a batch",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )
        self.last_ship_success = Gauge(
            "egovmon_agent_last_ship_success_timestamp_seconds", "Unix time of the last acknowledged batch", registry=r
        )
        self.queue_write_errors = Counter(
            "egovmon_agent_queue_write_errors", "Batches that could not be written to the disk queue", registry=r
        )

    def watch_queue(self, registry: CollectorRegistry, queue: DiskQueue) -> None:
        registry.register(_QueueCollector(queue))

    def watch_workers(self, registry: CollectorRegistry, workers: Workers = WORKERS) -> None:
        registry.register(_WorkersCollector(workers))

    def watch_flow_listener(self, registry: CollectorRegistry, listener: FlowListenerStats) -> None:
        """The flow listener's own health: decode errors by reason and the bounds' evictions (a FlowListener)."""
        registry.register(_FlowListenerCollector(listener))

    def watch_snmp(self, registry: CollectorRegistry, collector: SnmpCollectorStats) -> None:
        """The SNMP collector's own health: traps received and failed, events dropped, bounds (an SnmpCollector)."""
        registry.register(_SnmpCollector(collector))


class _WorkersCollector(Collector):
    """Liveness of each supervised worker (collector tasks, shipper, flow threads) and its restarts."""

    def __init__(self, workers: Workers) -> None:
        self._workers = workers

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("egovmon_agent_worker_up", "1 while the worker runs, 0 when it has stopped", labels=["worker"])
        restarts = CounterMetricFamily(
            "egovmon_agent_worker_restarts", "Times the worker died and was restarted (core.supervise)", labels=["worker"]
        )
        for state in self._workers.snapshot():
            up.add_metric([state.name], 1.0 if state.up else 0.0)
            restarts.add_metric([state.name], state.restarts)
        return [up, restarts]


class _FlowListenerCollector(Collector):
    def __init__(self, listener: FlowListenerStats) -> None:
        self._listener = listener

    def collect(self) -> Iterable[Metric]:
        stats = self._listener.stats()
        errors = CounterMetricFamily(
            "egovmon_flow_decode_errors", "Flow datagrams, sets or callbacks that failed, by reason "
            "(malformed input, decoder bug, a set left out, the consumer's callback)", labels=["reason"],
        )  # fmt: skip
        for reason, count in sorted((stats.decode_errors or {}).items()):
            errors.add_metric([reason], count)
        templates = CounterMetricFamily("egovmon_flow_evicted_templates", "Templates forgotten by the per-exporter bounds")
        templates.add_metric([], stats.evicted_templates)
        exporters = CounterMetricFamily("egovmon_flow_evicted_exporters", "Exporters whose templates were forgotten (bound)")
        exporters.add_metric([], stats.evicted_exporters)
        counted = GaugeMetricFamily("egovmon_flow_exporters", "Exporters with counters of their own (the rest count as 'other')")
        counted.add_metric([], len(stats.exporters))
        return [errors, templates, exporters, counted]


class _SnmpCollector(Collector):
    def __init__(self, snmp: SnmpCollectorStats) -> None:
        self._snmp = snmp

    def collect(self) -> Iterable[Metric]:
        stats = self._snmp.stats()
        families = []
        for name, help_text, value in (
            ("egovmon_snmp_traps_received", "Notifications received and read by the trap receiver", stats.traps_received),
            ("egovmon_snmp_trap_errors", "Notifications that could not be read, or that the consumer failed on",
             stats.trap_errors),
            ("egovmon_snmp_dropped_events", "Trap events dropped because too many waited for the next run",
             stats.dropped_events),
            ("egovmon_snmp_malformed_datagrams", "Garbage datagrams received on the polling socket", stats.malformed_datagrams),
            ("egovmon_snmp_evicted_engines", "SNMPv3 engine ids (keys, clock) forgotten by the bound (rediscovered)",
             stats.evicted_engines),
        ):
            family = CounterMetricFamily(name, help_text)
            family.add_metric([], value)
            families.append(family)
        return families


class _QueueCollector(Collector):
    def __init__(self, queue: DiskQueue) -> None:
        self._queue = queue

    def collect(self) -> Iterable[Metric]:
        batches = GaugeMetricFamily("egovmon_agent_queue_batches", "Batches waiting on disk")
        batches.add_metric([], len(self._queue))
        size = GaugeMetricFamily("egovmon_agent_queue_bytes", "Bytes waiting on disk")
        size.add_metric([], self._queue.bytes)
        dropped = CounterMetricFamily("egovmon_agent_queue_dropped_batches", "Oldest batches dropped because the queue was full")
        dropped.add_metric([], self._queue.dropped_batches_total)
        disk_full = CounterMetricFamily(
            "egovmon_agent_queue_disk_full_dropped_batches",
            "Of the dropped batches, those dropped because the file system of the queue was full",
        )
        disk_full.add_metric([], self._queue.dropped_for_disk_full_total)
        return [batches, size, dropped, disk_full]


class LatestReadings(Collector):
    """Exposes the newest reading of each collector as Prometheus metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readings: dict[str, Reading] = {}

    def update(self, collector: str, reading: Reading) -> None:
        with self._lock:
            self._readings[collector] = reading

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            readings = list(self._readings.values())
        families: dict[str, tuple[CounterMetricFamily | GaugeMetricFamily, list[str]]] = {}
        for reading in readings:
            for sample in reading.samples:
                names = sorted(sample.tags)
                values = [sample.tags[k] for k in names]
                for field, value in sample.fields.items():
                    number = _number(value)
                    if number is None:
                        continue  # strings have no Prometheus form
                    name = f"{sample.measurement}_{field}"
                    entry = families.get(name)
                    if entry is None:
                        entry = families[name] = (_family(name, names), names)
                    if entry[1] != names:
                        continue  # one family has one label set; a sample with other labels is skipped
                    entry[0].add_metric(values, number)
        return [family for family, _ in families.values()]


def _family(name: str, labelnames: list[str]) -> CounterMetricFamily | GaugeMetricFamily:
    if name.endswith("_total"):
        return CounterMetricFamily(name[: -len("_total")], f"{name} (egovmon agent)", labels=labelnames)
    return GaugeMetricFamily(name, f"{name} (egovmon agent)", labels=labelnames)


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    return None
