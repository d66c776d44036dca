"""From stored history to charts: the host page's and the device page's series.

Each function reads one measurement, downsampled by the store (`hosts.downsampled_history` on the embedded
history, `server.history.read` on a TSDB: both give `SeriesHistory` per series), and turns it into
`charts.Chart`s: counters become per-second rates, bytes per second of interfaces become bits per second,
filesystem use and inodes become percentages. The labels are the console's texts (`t`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime
from itertools import pairwise

from sqlalchemy.orm import Session

from server.history.read import HistoryReader
from server.hosts import service as hosts
from server.ui.charts import Chart, Series, rate

BUCKETS = 240  # points per series: one per 2.5 pixels of a 600-pixel chart


def _field(history: hosts.SeriesHistory, name: str) -> list[tuple[float, float]]:
    return [(ts, value) for ts, f in history.points if (value := hosts.number(f, name)) is not None]


def _used_percent(history: hosts.SeriesHistory, used: str, size: str) -> list[tuple[float, float]]:
    """`used` as a percentage of `size` at each point that has both (and a size above 0)."""
    return [(ts, part / whole * 100) for ts, f in history.points
            if (whole := hosts.number(f, size)) and (part := hosts.number(f, used)) is not None]  # fmt: skip


def _inodes_used_percent(history: hosts.SeriesHistory) -> list[tuple[float, float]]:
    """Inodes in use (files - files_free) as a percentage of all (files) at each point that has both."""
    return [(ts, (files - free) / files * 100) for ts, f in history.points
            if (files := hosts.number(f, "files")) and (free := hosts.number(f, "files_free")) is not None]  # fmt: skip


def _sum_by(histories: list[list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Points of several series added up at equal timestamps (the samples of one snapshot share a time)."""
    total: dict[float, float] = defaultdict(float)
    count: dict[float, int] = defaultdict(int)
    for points in histories:
        for ts, value in points:
            total[ts] += value
            count[ts] += 1
    return sorted((ts, v) for ts, v in total.items() if count[ts] == len(histories))


def _octets(history: hosts.SeriesHistory, field: str) -> list[tuple[float, float]]:
    """The 64-bit counter (`hc_in_octets_total`) when the device has it, else the 32-bit one (resets on wrap)."""
    wide = _field(history, f"hc_{field}")
    return wide if wide else _field(history, field)


ReadHistory = Callable[[str], dict[str, hosts.SeriesHistory]]  # measurement -> its series over the chart's range


def embedded_history(session: Session, *, host_id: int, since: datetime, until: datetime,
                     cache: hosts.BucketCache | None = None) -> ReadHistory:  # fmt: skip
    """Read one host's measurements from the embedded history, BUCKETS points per series (complete buckets read
    before taken from `cache`)."""
    return lambda measurement: hosts.downsampled_history(session, host_id=host_id, measurement=measurement, since=since,
                                                         until=until, buckets=BUCKETS, cache=cache)  # fmt: skip


def tsdb_history(reader: HistoryReader, *, hostname: str, agency: str | None, since: datetime, until: datetime) -> ReadHistory:
    """Read one host's measurements from the TSDB: the series the server tagged with its host name and agency."""
    tags = {"host": hostname, "agency": agency or ""}
    return lambda measurement: reader.downsampled(measurement=measurement, tags=tags, since=since, until=until, buckets=BUCKETS)


class HostCharts:
    """The charts of one host over [since, until], from `read` (`embedded_history` or `tsdb_history`)."""

    def __init__(self, read: ReadHistory, *, since: datetime, until: datetime, t: Mapping[str, str]) -> None:
        self._read, self.since, self.until, self.t = read, since, until, t
        self.start, self.end = since.timestamp(), until.timestamp()

    def _chart(self, chart_id: str, title: str, unit: str, series: list[Series], *, ceiling: float | None = None) -> Chart:
        return Chart(chart_id, title, unit, series, self.start, self.end, ceiling=ceiling)

    def cpu(self) -> Chart:
        """CPU time by mode, in % of all CPUs: the rate of each mode's seconds, summed over CPUs, over the CPU count."""
        by_mode: dict[str, list[list[tuple[float, float]]]] = defaultdict(list)
        cpus: set[str] = set()
        for h in self._read("host_cpu").values():
            by_mode[str(h.tags.get("mode", "?"))].append(rate(_field(h, "seconds_total")))
            cpus.add(str(h.tags.get("cpu")))
        n = max(len(cpus), 1)
        series = [Series(self.t.get(f"cpu_mode_{mode}", mode), [(ts, v / n * 100) for ts, v in _sum_by(points)])
                  for mode, points in sorted(by_mode.items()) if mode != "idle"]  # fmt: skip
        return self._chart("chart-cpu", self.t["chart_cpu"], "%", series, ceiling=100)

    def load(self) -> Chart:
        histories = list(self._read("host_load").values())
        series = [Series(name, _field(h, name)) for h in histories for name in ("load1", "load5", "load15")]
        return self._chart("chart-load", self.t["chart_load"], "", series)

    def memory(self) -> list[Chart]:
        memory = list(self._read("host_memory").values())
        swap = list(self._read("host_swap").values())
        mem = [Series(self.t[f"mem_{name}"], _field(h, f"{name}_bytes")) for h in memory for name in ("total", "used", "available", "cached")]
        sw = [Series(self.t[f"mem_{name}"], _field(h, f"{name}_bytes")) for h in swap for name in ("total", "used")]
        return [self._chart("chart-memory", self.t["chart_memory"], self.t["unit_bytes"], mem),
                self._chart("chart-swap", self.t["chart_swap"], self.t["unit_bytes"], sw)]  # fmt: skip

    def filesystems(self) -> list[Chart]:
        use, inodes = [], []
        for h in self._read("host_filesystem").values():
            mount = str(h.tags.get("mountpoint", "?"))
            use.append(Series(mount, _used_percent(h, "used_bytes", "size_bytes")))
            inodes.append(Series(mount, _inodes_used_percent(h)))
        return [self._chart("chart-fs", self.t["chart_fs"], "%", use, ceiling=100),
                self._chart("chart-inodes", self.t["chart_inodes"], "%", inodes, ceiling=100)]  # fmt: skip

    def disks(self) -> Chart:
        series = []
        for h in self._read("host_disk").values():
            device = str(h.tags.get("device", "?"))
            series.append(Series(f"{device} {self.t['read']}", rate(_field(h, "read_bytes_total"))))
            series.append(Series(f"{device} {self.t['write']}", rate(_field(h, "written_bytes_total"))))
        return self._chart("chart-disk", self.t["chart_disk"], self.t["unit_bytes_s"], series)

    def network(self) -> list[Chart]:
        traffic, errors = [], []
        for h in self._read("host_network").values():
            name = str(h.tags.get("interface", "?"))
            traffic.append(Series(f"{name} {self.t['in']}", [(ts, v * 8) for ts, v in rate(_field(h, "receive_bytes_total"))]))
            traffic.append(Series(f"{name} {self.t['out']}", [(ts, v * 8) for ts, v in rate(_field(h, "transmit_bytes_total"))]))
            errs = _sum_by([rate(_field(h, "receive_errors_total")), rate(_field(h, "transmit_errors_total"))])
            errors.append(Series(name, errs))
        return [self._chart("chart-net", self.t["chart_net"], self.t["unit_bits_s"], traffic),
                self._chart("chart-net-errors", self.t["chart_net_errors"], self.t["per_second"], errors)]  # fmt: skip

    def all(self) -> list[Chart]:
        return [self.cpu(), self.load(), *self.memory(), *self.filesystems(), self.disks(), *self.network()]


INTERFACE_FAULTS = ("in_errors_total", "out_errors_total", "in_discards_total", "out_discards_total")


def interface_charts(read: ReadHistory, *, device: str, since: datetime, until: datetime, t: Mapping[str, str]) -> list[Chart]:
    """A network device's interfaces (`read` of the host that polls it): in/out bits per second from the 64-bit
    octet counters, errors and discards per second."""
    traffic, faults = [], []
    for h in read("snmp_interface").values():
        if h.tags.get("device") != device:
            continue
        name = str(h.tags.get("if_name") or h.tags.get("if_index"))
        traffic.extend(_interface_traffic(h, name, t))
        bad = _interface_faults(h)
        if any(v > 0 for _, v in bad):
            faults.append(Series(name, bad))
    start, end = since.timestamp(), until.timestamp()
    return [Chart("chart-if-traffic", t["chart_if_traffic"], t["unit_bits_s"], traffic, start, end),
            Chart("chart-if-errors", t["chart_if_errors"], t["per_second"], faults, start, end)]  # fmt: skip


def _interface_traffic(h: hosts.SeriesHistory, name: str, t: Mapping[str, str]) -> list[Series]:
    """In and out bits per second of one interface; a direction that stayed idle is left out (it would only crowd
    the legend)."""
    out = []
    for field, label in (("in_octets_total", t["in"]), ("out_octets_total", t["out"])):
        points = rate(_octets(h, field))
        if any(v > 0 for _, v in points):
            out.append(Series(f"{name} {label}", [(ts, v * 8) for ts, v in points]))
    return out


def _interface_faults(h: hosts.SeriesHistory) -> list[tuple[float, float]]:
    """Errors and discards per second of one interface, in and out added up (over the counters it reports)."""
    return _sum_by([rate(_field(h, f)) for f in INTERFACE_FAULTS if any(f in p for _, p in h.points)])


def window_rates(points: list[tuple[float, float]], bucket_seconds: float) -> list[tuple[float, float]]:
    """Per-second rates of values that each count one collection window (bytes of flows in that window), averaged
    per bucket. A window's length is the gap to the previous point; the first point takes the median gap (a lone
    point, whose window is unknown, the bucket's length)."""
    if not points:
        return []
    gaps = sorted(b[0] - a[0] for a, b in pairwise(points) if b[0] > a[0])
    typical = gaps[len(gaps) // 2] if gaps else bucket_seconds
    rates: list[tuple[float, float]] = []
    previous = points[0][0] - typical
    for ts, value in points:
        gap = ts - previous if ts > previous else typical
        rates.append((ts, value / gap))
        previous = ts
    buckets: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for ts, value in rates:
        buckets[int(ts // bucket_seconds)].append((ts, value))
    return [(group[-1][0], sum(v for _, v in group) / len(group)) for _, group in sorted(buckets.items())]


def flow_charts(session: Session, *, host_ids: list[int], since: datetime, until: datetime, t: Mapping[str, str]) -> list[Chart]:
    """Traffic of each exporter, and to and from space outside the address plan, in bits per second over time."""
    bucket = max((until - since).total_seconds() / BUCKETS, 1.0)
    start, end = since.timestamp(), until.timestamp()
    total, unplanned = [], []
    for (_, _), h in sorted(hosts.windowed_history(session, host_ids=host_ids, measurement="flow", field="bytes",
                                                    since=since, until=until).items()):  # fmt: skip
        total.append(Series(str(h.tags.get("exporter", "?")), [(ts, v * 8) for ts, v in window_rates(_field(h, "bytes"), bucket)]))
    for (_, _), h in sorted(hosts.windowed_history(session, host_ids=host_ids, measurement="flow_unplanned", field="bytes",
                                                    since=since, until=until).items()):  # fmt: skip
        direction = str(h.tags.get("direction", "?"))
        label = t.get(f"unplanned_{direction}", direction)
        unplanned.append(Series(f"{h.tags.get('exporter', '?')} {label}", [(ts, v * 8) for ts, v in window_rates(_field(h, "bytes"), bucket)]))
    return [Chart("chart-flows", t["chart_flows"], t["unit_bits_s"], total, start, end),
            Chart("chart-flows-unplanned", t["unplanned_traffic"], t["unit_bits_s"], unplanned, start, end)]  # fmt: skip
