"""The server's own Prometheus metrics, on a registry owned by the app (nothing global).

Three kinds of metric, and who owns each (keep the names stable: dashboards and alert rules use them):

- events counted where they happen, as prometheus-client counters, histograms and gauges on `ServerMetrics.registry`:
  ingest (`server.ingest.*`: `egovmon_ingest_*`), logins (`server.auth`), alert evaluation and notification delivery
  (`server.alerting.engine` and `server.alerting.delivery` through the `EngineMetrics` methods below:
  `egovmon_alert_evaluation_*`, `egovmon_alert_rules`, `egovmon_alert_series`, `egovmon_notification*_total`,
  `egovmon_notification_*_seconds`),
  background tasks (`server.app._every`: `egovmon_task_duration_seconds`), retention (`server.app.prune`);
- the history writer's own plain counters (`server.history.spool`), copied into `egovmon_tsdb_*` by `sync_history`
  at every scrape and every few seconds in each worker;
- the state of the shared database, read at scrape time by `StateCollector` (any worker answers the same):
  `egovmon_notifications{receiver,status}` (the outbox), `egovmon_findings{rule,status}`, `egovmon_alerts{status,severity}`.

With several server workers (`server.workers > 1`) prometheus-client's multiprocess mode is on: the server sets
PROMETHEUS_MULTIPROC_DIR (emptied at start) before the workers start, each worker writes its values there, and
whichever worker answers `/metrics` adds up all of them (`MultiProcessCollector`); process metrics are then summed
over the live workers (`WorkerProcessCollector`). Gauges declare how workers' values combine (`multiprocess_mode`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class ServerMetrics:
    """The server's metrics (see the module docstring); `multiprocess_dir`: prometheus-client's multiprocess mode is
    on (PROMETHEUS_MULTIPROC_DIR, set before prometheus_client was imported) and `/metrics` aggregates all workers."""

    def __init__(self, registry: CollectorRegistry | None = None, *, multiprocess_dir: Path | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = multiprocess_dir
        r = self.registry
        if multiprocess_dir is None:
            ProcessCollector(registry=r)
            self._exposed = r
        else:
            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed, path=str(multiprocess_dir))
            self._exposed.register(WorkerProcessCollector(multiprocess_dir))
        self._history_seen: dict[tuple[str, str], float] = {}
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
        self.in_flight = Gauge("egovmon_ingest_in_flight", "Ingest requests being processed (queue depth)", registry=r,
                               multiprocess_mode="livesum")
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
        self.history_compacted = Counter(
            "egovmon_history_compactions_total", "Hours of one host's measurement merged into one chunk (embedded history)", registry=r
        )
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
        self.cache_clears = Counter(
            "egovmon_cache_clears_total",
            "Bounded caches cleared because they were full (series, field_keys), or entries dropped for room (history_buckets)",
            ["cache"], registry=r,
        )
        self._cache_clears_seen: dict[str, int] = {}
        self.strict_path = Counter(
            "egovmon_ingest_strict_path_batches_total",
            "Batches the fast validation path handed to the strict one (refused or unusual input: each costs a second parse)",
            registry=r,
        )
        self._strict_path_seen = 0
        self.queue_depth = Gauge("egovmon_ingest_queue_depth", "Work waiting, by queue (commit, handoff)", ["queue"], registry=r,
                                 multiprocess_mode="livesum")
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
            registry=r, multiprocess_mode="livemostrecent",
        )
        # alert evaluation (server.alerting.engine)
        self.evaluation_duration = Histogram(
            "egovmon_alert_evaluation_duration_seconds", "Time of one evaluation of every rule (the evaluator's part of a cycle)",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )
        self.evaluation_rules = Gauge("egovmon_alert_rules", "Rules evaluated (the effective rule set)", registry=r,
                                      multiprocess_mode="livemostrecent")
        self.evaluation_series = Gauge("egovmon_alert_series", "Series the evaluator holds (measurement and tag set)", registry=r,
                                       multiprocess_mode="livemostrecent")
        self.evaluation_evicted_series = Counter(
            "egovmon_alert_evicted_series_total", "Series the evaluator forgot to stay within its bound (least recently updated)",
            registry=r,
        )
        self._evicted_series_seen = 0
        self.evaluation_failures = Counter(
            "egovmon_alert_evaluation_failures_total", "Rules left out of a cycle because they failed on the values they met, by rule",
            ["rule"], registry=r,
        )
        # notification delivery (server.alerting.engine)
        self.delivered_total = Counter("egovmon_notifications_delivered_total", "Notifications delivered, by receiver", ["receiver"], registry=r)
        self.delivery_failures = Counter(
            "egovmon_notification_failures_total",
            "Failed delivery attempts, by receiver and reason (transient: retried; permanent: the notification failed at once)",
            ["receiver", "reason"], registry=r,
        )
        self.delivery_latency = Histogram(
            "egovmon_notification_delivery_latency_seconds",
            "From a notification queued to delivered (group_wait, backoff and the send itself), by receiver",
            ["receiver"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.attempt_duration = Histogram(
            "egovmon_notification_attempt_duration_seconds", "Time of one delivery attempt, by receiver", ["receiver"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        # the history writer's counters, copied by sync_history (server.history.spool owns the values)
        self.tsdb_counters = {
            key: Counter(metric, doc, ["store"], registry=r) for key, (metric, doc) in _HISTORY_COUNTERS.items()
        }
        self.tsdb_gauges = {
            key: Gauge(metric, doc, ["store"], registry=r, multiprocess_mode=mode) for key, (metric, doc, mode) in _HISTORY_GAUGES.items()
        }

    # the engine's reports (server.alerting.engine.EngineMetrics)

    def evaluated(self, *, seconds: float, rules: int, series: int, failed_rules: Sequence[str], evicted_series: int = 0) -> None:
        """One evaluation cycle; `evicted_series` is the evaluator's running total (only its increase is counted)."""
        self.evaluation_duration.observe(seconds)
        self.evaluation_rules.set(rules)
        self.evaluation_series.set(series)
        if evicted_series < self._evicted_series_seen:  # a new evaluator (rules reloaded) counts from 0
            self._evicted_series_seen = 0
        if evicted_series > self._evicted_series_seen:
            self.evaluation_evicted_series.inc(evicted_series - self._evicted_series_seen)
        self._evicted_series_seen = evicted_series
        for rule in failed_rules:
            self.evaluation_failures.labels(rule).inc()

    def delivery_attempted(self, receiver: str, seconds: float) -> None:
        self.attempt_duration.labels(receiver).observe(seconds)

    def delivered(self, receiver: str, latency_seconds: float) -> None:
        self.delivered_total.labels(receiver).inc()
        self.delivery_latency.labels(receiver).observe(latency_seconds)

    def delivery_failed(self, receiver: str, reason: str) -> None:
        self.delivery_failures.labels(receiver, reason).inc()

    # scrape-time parts

    def sync_history(self, store: str, stats: dict[str, float]) -> None:
        """Copy the history writer's counters and spool state (`write_errors_total`, `pending_bytes`, ...) into the
        `egovmon_tsdb_*` metrics of this process; counters advance by what changed since the last copy."""
        for key, counter in self.tsdb_counters.items():
            value = float(stats.get(key, 0))
            delta = value - self._history_seen.get((store, key), 0.0)
            if delta > 0:
                counter.labels(store).inc(delta)
            self._history_seen[(store, key)] = value
        for key, gauge in self.tsdb_gauges.items():
            gauge.labels(store).set(float(stats.get(key, 0)))

    def sync_cache_clears(self, clears: dict[str, int]) -> None:
        """Copy caches' own clear counts (plain ints owned by the caches) into `egovmon_cache_clears_total`."""
        for cache, value in clears.items():
            delta = value - self._cache_clears_seen.get(cache, 0)
            counter = self.cache_clears.labels(cache)  # shown from the start, at 0
            if delta > 0:
                counter.inc(delta)
            self._cache_clears_seen[cache] = value

    def sync_strict_path(self, batches: int) -> None:
        """Copy the ingest pipeline's own count of strict-path batches into `egovmon_ingest_strict_path_batches_total`."""
        if batches > self._strict_path_seen:
            self.strict_path.inc(batches - self._strict_path_seen)
        self._strict_path_seen = batches

    def watch_state(self, collector: Collector) -> None:
        """Expose `collector` (read at scrape time, the same from any worker) besides the counted metrics."""
        self._exposed.register(collector)

    def exposition(self) -> bytes:
        """The text exposition of every metric (in multiprocess mode: all workers' values combined)."""
        return generate_latest(self._exposed)

    def worker_stopped(self) -> None:
        """This worker is leaving: its live gauges no longer count (multiprocess mode only)."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))


_HISTORY_COUNTERS = {
    "write_errors_total": ("egovmon_tsdb_write_errors", "Failed writes to the history store"),
    "spooled_lines_total": ("egovmon_tsdb_spooled_lines", "Lines written to the on-disk spool"),
    "replayed_lines_total": ("egovmon_tsdb_replayed_lines", "Lines replayed from the spool"),
    "dropped_lines_total": ("egovmon_tsdb_dropped_lines", "Spooled lines the store refused on replay (logged)"),
}
def _returns(pid: int) -> Callable[[], int]:
    """A ProcessCollector's `pid` argument: a callable naming one process."""
    return lambda: pid


_MultiprocessMode = Literal["livesum", "livemax"]
_HISTORY_GAUGES: dict[str, tuple[str, str, _MultiprocessMode]] = {
    "pending_bytes": ("egovmon_tsdb_spool_bytes", "Bytes waiting in the on-disk spool", "livesum"),
    "pending_segments": ("egovmon_tsdb_spool_segments", "Files waiting in the on-disk spool", "livesum"),
    "oldest_pending_age_seconds": ("egovmon_tsdb_spool_age_seconds", "Age of the oldest data waiting in the on-disk spool", "livemax"),
}


class StateCollector(Collector):
    """The outbox, findings and alerts as counted in the shared database, read at scrape time (one GROUP BY each).

    `count_rows()` returns {family: [(labels tuple, count)]}; injected so this module needs no database code.
    """

    FAMILIES = {
        "notifications": ("egovmon_notifications", "Notifications in the outbox, by receiver and status (pending, sending, sent, failed)",
                          ["receiver", "status"]),
        "findings": ("egovmon_findings", "Findings, by rule and status", ["rule", "status"]),
        "alerts": ("egovmon_alerts", "Alerts, by status and severity", ["status", "severity"]),
    }

    def __init__(self, count_rows: Callable[[], dict[str, list[tuple[tuple[str, ...], int]]]]) -> None:
        self._count_rows = count_rows

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        counts = self._count_rows()
        for key, (metric, doc, labels) in self.FAMILIES.items():
            family = GaugeMetricFamily(metric, doc, labels=labels)
            for values, count in counts.get(key, []):
                family.add_metric([str(v) for v in values], count)
            yield family


class WorkerProcessCollector(Collector):
    """Process metrics (`process_*`) summed over the live server workers: those with a file in the multiprocess
    directory and a /proc entry (the start time is the oldest worker's, the fd limit the highest)."""

    _COMBINE = {"process_start_time_seconds": min, "process_max_fds": max}

    def __init__(self, multiprocess_dir: Path, proc: str = "/proc") -> None:
        self._dir = Path(multiprocess_dir)
        self._proc = proc

    def pids(self) -> list[int]:
        found = set()
        for path in self._dir.glob("*.db"):
            pid = path.stem.rsplit("_", 1)[-1]
            if pid.isdigit() and os.path.exists(os.path.join(self._proc, pid)):
                found.add(int(pid))
        return sorted(found)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        combined: dict[str, tuple[Metric, list[float]]] = {}
        for pid in self.pids():
            for family in ProcessCollector(pid=_returns(pid), proc=self._proc, registry=None).collect():
                if not family.samples:
                    continue
                known = combined.setdefault(family.name, (family, []))
                known[1].append(family.samples[0].value)
        for name, (family, values) in combined.items():
            value = self._COMBINE.get(name, sum)(values)
            merged = (CounterMetricFamily if family.type == "counter" else GaugeMetricFamily)(name, family.documentation, value=value)
            yield merged
        workers = GaugeMetricFamily("egovmon_server_workers", "Live server processes: the HTTP workers and the jobs process",
                                    value=len(self.pids()))
        yield workers
