"""The server's own Prometheus metrics, on a registry owned by the app (nothing global)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector


class ServerMetrics:
    """Ingest counts, rejects by reason, latencies, in-flight requests, history-store health and password logins."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batches = Counter("egovmon_ingest_batches_total", "Batches acknowledged, by result", ["result"], registry=r)
        self.samples = Counter("egovmon_ingest_samples_total", "Samples accepted", registry=r)
        self.observations = Counter("egovmon_ingest_observations_total", "Observations accepted", registry=r)
        self.rejects = Counter("egovmon_ingest_rejects_total", "Ingest requests refused, by reason", ["reason"], registry=r)
        self.duration = Histogram(
            "egovmon_ingest_duration_seconds",
            "Time from body received to acknowledgement",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.in_flight = Gauge("egovmon_ingest_in_flight", "Ingest requests being processed (queue depth)", registry=r)
        self.hook_errors = Counter("egovmon_ingest_hook_errors_total", "Failures of downstream hooks", ["hook"], registry=r)
        self.logins = Counter(
            "egovmon_logins_total", "Password logins, by result: success, failure, locked (refused unchecked)", ["result"], registry=r
        )
        self.lockouts = Counter(
            "egovmon_login_lockouts_total", "Temporary login lockouts started, by scope: user, address", ["scope"], registry=r
        )
        self.password_verifications = Counter(
            "egovmon_password_verifications_total", "scrypt password checks (one per login attempt not refused by a lock)", registry=r
        )
        self.skipped_rows = Counter(
            "egovmon_alerting_skipped_rows_total", "Invalid stored rows the alert evaluation cycle left out, by kind", ["kind"], registry=r
        )
        self.pruned = Counter("egovmon_retention_deleted_rows_total", "Rows removed by retention", ["table"], registry=r)
        self.group_size = Histogram(
            "egovmon_ingest_group_batches",
            "Batches stored together in one transaction (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.store_duration = Histogram(
            "egovmon_ingest_group_store_seconds",
            "Time to store one group: TSDB write and database commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.disconnects = Counter(
            "egovmon_ingest_client_disconnects_total", "Ingest requests whose client left before the body arrived", registry=r
        )
        self.handoff_dropped = Counter(
            "egovmon_ingest_handoff_dropped_total",
            "Observation batches not reconciled at once because the inventory's queue was full (the full pass catches up)",
            registry=r,
        )
        self.credential_evictions = Counter(
            "egovmon_ingest_credential_cache_evictions_total",
            "Agent credentials dropped from the in-memory cache because it was full (each costs one database read)",
            registry=r,
        )
        self.queue_depth = Gauge("egovmon_ingest_queue_depth", "Work waiting, by queue (commit, handoff)", ["queue"], registry=r)
        self.task_duration = Histogram(
            "egovmon_task_duration_seconds",
            "Duration of the server's periodic work, by task (inventory_full_pass, alert_cycle, state_export, retention, ...)",
            ["task"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.history_retained = Gauge(
            "egovmon_history_retained_seconds",
            "Age of the oldest point of the embedded history after retention (below history_retention_hours: the point cap cut it)",
            registry=r,
        )

    def watch_history(self, name: str, stats: Callable[[], dict[str, float]]) -> None:
        """Expose the history store's counters (`write_errors_total`, `pending_bytes`, ...) at scrape time."""
        self.registry.register(_HistoryCollector(name, stats))


class _HistoryCollector(Collector):
    """Reads the history writer's plain counters at scrape time."""

    _COUNTERS = {
        "write_errors_total": ("egovmon_tsdb_write_errors", "Failed writes to the history store"),
        "spooled_lines_total": ("egovmon_tsdb_spooled_lines", "Lines written to the on-disk spool"),
        "replayed_lines_total": ("egovmon_tsdb_replayed_lines", "Lines replayed from the spool"),
        "dropped_lines_total": ("egovmon_tsdb_dropped_lines", "Spooled lines the store refused on replay (logged)"),
    }
    _GAUGES = {
        "pending_bytes": ("egovmon_tsdb_spool_bytes", "Bytes waiting in the on-disk spool"),
        "pending_segments": ("egovmon_tsdb_spool_segments", "Files waiting in the on-disk spool"),
    }

    def __init__(self, name: str, stats: Callable[[], dict[str, float]]) -> None:
        self._name = name
        self._stats = stats

    def describe(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        return []

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats()
        for key, (metric, doc) in self._COUNTERS.items():
            family = CounterMetricFamily(metric, doc, labels=["store"])
            family.add_metric([self._name], stats.get(key, 0))
            yield family
        for key, (metric, doc) in self._GAUGES.items():
            family = GaugeMetricFamily(metric, doc, labels=["store"])
            family.add_metric([self._name], stats.get(key, 0))
            yield family
