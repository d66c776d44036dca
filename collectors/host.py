"""Host metrics with psutil: CPU, load, memory, swap, filesystems, disks, network, processes, uptime, temperatures.

Names read like node_exporter's once the agent joins measurement and field with
"_" (`host_cpu` + `seconds_total` -> host_cpu_seconds_total), in base units
(bytes, seconds, degrees Celsius). Counters travel raw as the kernel reports
them: psutil's wrap correction (`nowrap=True`, state kept in a module global) is
turned off, because rates and wraps are the queries' business.

The pure part, `host_samples(snapshot, at=...)`, turns one `HostSnapshot` of
psutil results into samples and is tested on fixed values; `read_snapshot()` is
the blocking shell, run in a thread by `HostCollector`.

Do not use this for another machine: it reads the host the agent runs on.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Protocol

import psutil

from core.collect import CollectError, CollectTimeoutError, Reading, Target
from core.models import MAX_TAG_VALUE_CHARS, Sample

# -- declarations -----------------------------------------------------------------------

# Filesystems that hold no data of their own (or only RAM), skipped unless the
# collector is given another set. NFS and CIFS are kept on purpose: backups live there.
PSEUDO_FSTYPES: Final = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs", "efivarfs",
    "erofs", "fuse.gvfsd-fuse", "fuse.lxcfs", "fuse.portal", "fusectl", "hugetlbfs", "mqueue", "nfsd", "nsfs",
    "overlay", "proc", "procfs", "pstore", "ramfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs",
    "tmpfs", "tracefs",
})
# Block devices whose counters are already in another's: partitions (in their disk),
# and RAM/loop/floppy devices. node_exporter's default `--collector.diskstats.device-exclude`.
EXCLUDED_DISKS: Final = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p|mmcblk\d+p)\d+$")
# psutil reports guest time inside user and nice (as the kernel does); node_exporter
# splits it out as node_cpu_guest_seconds_total{mode="user"|"nice"}, and so do we,
# so the modes of host_cpu_seconds_total add up to the CPU's wall time.
GUEST_MODES: Final = {"guest": "user", "guest_nice": "nice"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One psutil attribute and the field it becomes, in base units."""

    source: str
    field: str
    per_unit: int | None = None  # the raw value counts 1/per_unit of the base unit (ms: 1000); None: the int as read


MEMORY_FIELDS: Final = (
    FieldSpec("total", "total_bytes"), FieldSpec("available", "available_bytes"), FieldSpec("used", "used_bytes"),
    FieldSpec("free", "free_bytes"), FieldSpec("active", "active_bytes"), FieldSpec("inactive", "inactive_bytes"),
    FieldSpec("buffers", "buffers_bytes"), FieldSpec("cached", "cached_bytes"), FieldSpec("shared", "shared_bytes"),
    FieldSpec("slab", "slab_bytes"), FieldSpec("wired", "wired_bytes"),
)
SWAP_FIELDS: Final = (
    FieldSpec("total", "total_bytes"), FieldSpec("used", "used_bytes"), FieldSpec("free", "free_bytes"),
    FieldSpec("sin", "swapped_in_bytes_total"), FieldSpec("sout", "swapped_out_bytes_total"),
)
DISK_FIELDS: Final = (
    FieldSpec("read_bytes", "read_bytes_total"), FieldSpec("write_bytes", "written_bytes_total"),
    FieldSpec("read_count", "reads_completed_total"), FieldSpec("write_count", "writes_completed_total"),
    FieldSpec("read_merged_count", "reads_merged_total"), FieldSpec("write_merged_count", "writes_merged_total"),
    FieldSpec("read_time", "read_time_seconds_total", 1000), FieldSpec("write_time", "write_time_seconds_total", 1000),
    FieldSpec("busy_time", "io_time_seconds_total", 1000),
)
NETWORK_FIELDS: Final = (
    FieldSpec("bytes_recv", "receive_bytes_total"), FieldSpec("bytes_sent", "transmit_bytes_total"),
    FieldSpec("packets_recv", "receive_packets_total"), FieldSpec("packets_sent", "transmit_packets_total"),
    FieldSpec("errin", "receive_errors_total"), FieldSpec("errout", "transmit_errors_total"),
    FieldSpec("dropin", "receive_drop_total"), FieldSpec("dropout", "transmit_drop_total"),
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# -- pure core --------------------------------------------------------------------------


class Record(Protocol):
    """A psutil result: a namedtuple (scputimes, svmem, sswap, sdiskio, snetio, ...)."""

    def _asdict(self) -> dict[str, Any]: ...


class Partition(Protocol):
    """psutil's sdiskpart (a NamedTuple, so the fields are read-only)."""

    @property
    def device(self) -> str: ...
    @property
    def mountpoint(self) -> str: ...
    @property
    def fstype(self) -> str: ...
    @property
    def opts(self) -> str: ...


class TemperatureReading(Protocol):
    """psutil's shwtemp."""

    label: str
    current: float | None
    high: float | None
    critical: float | None


@dataclass(frozen=True, slots=True)
class Filesystem:
    """One mounted filesystem and its statvfs, or None when statvfs failed (or hung in an earlier collection)."""

    device: str
    mountpoint: str
    fstype: str
    readonly: bool
    usage: os.statvfs_result | None


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """psutil's view of the host at one moment, as psutil returns it."""

    cpu_times: Sequence[Record]  # one per CPU, in CPU order
    load: tuple[float, float, float]
    memory: Record
    swap: Record
    filesystems: Sequence[Filesystem]
    disks: Mapping[str, Record]
    network: Mapping[str, Record]
    process_count: int
    boot_time_seconds: float  # Unix time
    temperatures: Mapping[str, Sequence[TemperatureReading]]


def tag_value(text: str) -> str:
    """`text` made a valid tag value: control characters as "?", at most 256 characters, no trailing backslash.

    Mount points and interface names are almost always valid already; this keeps a
    strange one from failing the whole collection. Empty text becomes "none".
    """
    cleaned = _CONTROL.sub("?", text)[:MAX_TAG_VALUE_CHARS]
    if cleaned.endswith("\\"):
        cleaned = cleaned[:-1] + "?"
    return cleaned or "none"


def wanted_partitions(partitions: Iterable[Partition], *, exclude_fstypes: frozenset[str]) -> tuple[Partition, ...]:
    """The partitions worth a statvfs: real filesystems, one per mount point (the last mount, the visible one)."""
    by_mountpoint: dict[str, Partition] = {}
    for partition in partitions:
        if partition.fstype in exclude_fstypes:
            continue
        by_mountpoint.pop(partition.mountpoint, None)  # keep mount order, with the later mount winning
        by_mountpoint[partition.mountpoint] = partition
    return tuple(by_mountpoint.values())


def _fields(record: Record, specs: Sequence[FieldSpec]) -> dict[str, int | float]:
    """The fields of `specs` that `record` has (psutil's tuples differ by platform)."""
    values = record._asdict()
    fields: dict[str, int | float] = {}
    for spec in specs:
        value = values.get(spec.source)
        if value is None:
            continue
        fields[spec.field] = int(value) if spec.per_unit is None else value / spec.per_unit
    return fields


def _filesystem_fields(fs: Filesystem) -> dict[str, int | float]:
    if fs.usage is None:
        return {"device_error": 1, "readonly": int(fs.readonly)}
    vfs = fs.usage
    block = vfs.f_frsize or vfs.f_bsize  # some filesystems leave f_frsize 0
    return {
        "size_bytes": vfs.f_blocks * block,
        "free_bytes": vfs.f_bfree * block,
        "avail_bytes": vfs.f_bavail * block,  # free for unprivileged users (what df shows as Avail)
        "used_bytes": (vfs.f_blocks - vfs.f_bfree) * block,
        "files": vfs.f_files,
        "files_free": vfs.f_ffree,
        "readonly": int(fs.readonly),
        "device_error": 0,
    }


def _temperature_fields(reading: TemperatureReading) -> dict[str, int | float]:
    candidates = (("celsius", reading.current), ("high_celsius", reading.high), ("critical_celsius", reading.critical))
    return {name: float(value) for name, value in candidates if value is not None and math.isfinite(value)}


def host_samples(snapshot: HostSnapshot, *, at: datetime) -> tuple[Sample, ...]:
    """The samples of one snapshot, all stamped `at` (an aware UTC time); uptime is `at` minus boot time.

    Raises:
        pydantic.ValidationError: a value the data model refuses (a bug here, not bad input:
            tag values are cleaned and non-finite temperatures dropped).
    """
    samples: list[Sample] = []

    def add(measurement: str, fields: dict[str, int | float], **tags: str) -> None:
        if fields:
            samples.append(Sample(
                measurement=measurement, tags={k: tag_value(v) for k, v in tags.items()}, fields=fields, timestamp=at,
            ))

    for cpu, times in enumerate(snapshot.cpu_times):
        for mode, seconds in times._asdict().items():
            if mode in GUEST_MODES:
                add("host_cpu_guest", {"seconds_total": float(seconds)}, cpu=str(cpu), mode=GUEST_MODES[mode])
            else:
                add("host_cpu", {"seconds_total": float(seconds)}, cpu=str(cpu), mode=mode)
    load1, load5, load15 = snapshot.load
    add("host_load", {"load1": float(load1), "load5": float(load5), "load15": float(load15)})
    add("host_memory", _fields(snapshot.memory, MEMORY_FIELDS))
    add("host_swap", _fields(snapshot.swap, SWAP_FIELDS))
    for fs in snapshot.filesystems:
        add("host_filesystem", _filesystem_fields(fs), mountpoint=fs.mountpoint, device=fs.device, fstype=fs.fstype)
    for device, io in sorted(snapshot.disks.items()):
        add("host_disk", _fields(io, DISK_FIELDS), device=device)
    for interface, io in sorted(snapshot.network.items()):
        add("host_network", _fields(io, NETWORK_FIELDS), interface=interface)
    # One measurement: `host_processes_count` would break Prometheus naming (a `_count` suffix means a histogram).
    add("host_system", {
        "processes": snapshot.process_count,
        "boot_time_seconds": float(snapshot.boot_time_seconds),
        "uptime_seconds": at.timestamp() - snapshot.boot_time_seconds,
    })
    for sensor, readings in sorted(snapshot.temperatures.items()):
        for label, reading in _labelled(readings):
            add("host_temperature", _temperature_fields(reading), sensor=sensor, label=label)
    return tuple(samples)


def _labelled(readings: Sequence[TemperatureReading]) -> Iterator[tuple[str, TemperatureReading]]:
    """Each temperature input of one chip with a label unique in that chip: its own, else `tempN`; a repeated
    label (two unlabelled or equally labelled inputs) gets the input's number appended."""
    seen: set[str] = set()
    for index, reading in enumerate(readings, start=1):
        label = reading.label or f"temp{index}"
        if label in seen:
            label = f"{label} {index}"
        seen.add(label)
        yield label, reading


# -- shell ------------------------------------------------------------------------------


def read_snapshot(
    *,
    exclude_fstypes: frozenset[str] = PSEUDO_FSTYPES,
    exclude_disks: re.Pattern[str] = EXCLUDED_DISKS,
    statvfs: Callable[[str], os.statvfs_result | None] = os.statvfs,
) -> HostSnapshot:
    """Read the host through psutil and statvfs (blocking; about a millisecond on Linux, see the tests).

    `statvfs` may return None for a mount it gives up on. Mounts are listed with
    `all=True`: psutil's default drops every "nodev" filesystem, NFS and CIFS included.

    Raises:
        OSError, psutil.Error: /proc (or the platform's equivalent) could not be read.
    """
    filesystems = []
    for part in wanted_partitions(psutil.disk_partitions(all=True), exclude_fstypes=exclude_fstypes):
        readonly = "ro" in part.opts.split(",")
        filesystems.append(Filesystem(part.device, part.mountpoint, part.fstype, readonly, statvfs(part.mountpoint)))
    disks = psutil.disk_io_counters(perdisk=True, nowrap=False) or {}
    sensors = getattr(psutil, "sensors_temperatures", None)  # Linux and FreeBSD only
    return HostSnapshot(
        cpu_times=psutil.cpu_times(percpu=True),
        load=psutil.getloadavg(),
        memory=psutil.virtual_memory(),
        swap=psutil.swap_memory(),
        filesystems=tuple(filesystems),
        disks={name: io for name, io in disks.items() if not exclude_disks.match(name)},
        network=psutil.net_io_counters(pernic=True, nowrap=False) or {},
        process_count=len(psutil.pids()),
        boot_time_seconds=psutil.boot_time(),
        temperatures=sensors() if sensors is not None else {},
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class HostCollector:
    """Collects the metrics of the machine the agent runs on.

    A statvfs that hangs (a dead NFS server) makes that collection time out; its
    thread cannot be killed, so later collections skip that mount point, reporting
    `host_filesystem_device_error 1`, until the stuck call returns.
    """

    name: ClassVar[str] = "host"

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = _utc_now,
        exclude_fstypes: frozenset[str] = PSEUDO_FSTYPES,
        exclude_disks: re.Pattern[str] = EXCLUDED_DISKS,
    ) -> None:
        self._clock = clock
        self._exclude_fstypes = exclude_fstypes
        self._exclude_disks = exclude_disks
        self._lock = threading.Lock()
        self._pending_mounts: set[str] = set()  # statvfs calls in progress, possibly stuck

    def _statvfs(self, mountpoint: str) -> os.statvfs_result | None:
        """statvfs, or None when it fails or an earlier call on the same mount point has not returned."""
        with self._lock:
            if mountpoint in self._pending_mounts:
                return None
            self._pending_mounts.add(mountpoint)
        try:
            return os.statvfs(mountpoint)
        except OSError:  # unmounted meanwhile, permission denied, stale handle: reported as device_error
            return None
        finally:
            with self._lock:
                self._pending_mounts.discard(mountpoint)

    def _read(self) -> HostSnapshot:
        return read_snapshot(exclude_fstypes=self._exclude_fstypes, exclude_disks=self._exclude_disks, statvfs=self._statvfs)

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        """Read the local host once; every sample carries the same timestamp, taken after the reads.

        Raises:
            CollectTimeoutError: the reads took longer than `timeout` seconds.
            CollectError: `target` is not the local host, or psutil could not read the system.
        """
        if target.address is not None:
            raise CollectError(f"the host collector reads only the machine it runs on, not {target.name} ({target.address})")
        try:
            snapshot = await asyncio.wait_for(asyncio.to_thread(self._read), timeout)
        except TimeoutError as exc:
            raise CollectTimeoutError(f"reading host metrics took longer than {timeout:g} s") from exc
        except (OSError, psutil.Error) as exc:
            raise CollectError(f"reading host metrics failed: {exc}") from exc
        return Reading(samples=host_samples(snapshot, at=self._clock()))
