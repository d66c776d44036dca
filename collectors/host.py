"""Host metrics with psutil: CPU, load, memory, swap, filesystems, disks, network, processes, uptime, temperatures.

Names follow node_exporter's where one exists (`host_cpu` + `seconds_total` →
host_cpu_seconds_total), in base units; counters travel raw. The pure part,
`host_samples(snapshot, at)`, turns one `HostSnapshot` of psutil results into
samples and is tested on fixed values; `read_snapshot()` is the shell.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import psutil

from core.collect import CollectTimeoutError, Reading, Target
from core.models import Sample

# Filesystems that hold no data of their own.
PSEUDO_FILESYSTEMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts", "devtmpfs", "efivarfs",
    "fusectl", "hugetlbfs", "mqueue", "nsfs", "overlay", "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs",
    "squashfs", "sysfs", "tmpfs", "tracefs", "fuse.lxcfs", "nfsd",
})
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class HostSnapshot:
    """psutil's view of the host at one moment (namedtuples as psutil returns them)."""

    cpu_times: list[Any]
    load: tuple[float, float, float]
    memory: Any
    swap: Any
    filesystems: list[tuple[Any, Any, os.statvfs_result | None]]  # (partition, usage, statvfs)
    disks: dict[str, Any]
    network: dict[str, Any]
    processes: int
    boot_time: float
    now: float
    temperatures: dict[str, list[Any]] = field(default_factory=dict)


def _label(text: str) -> str:
    """A tag value: printable, not empty, no trailing backslash, at most 256 characters."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)[:256].rstrip("\\")
    return cleaned or "unknown"


def host_samples(snap: HostSnapshot, at: datetime) -> Iterator[Sample]:
    """The samples of one snapshot, all stamped `at`."""

    def sample(measurement: str, fields: dict[str, float | int], **tags: str) -> Sample:
        return Sample(measurement=measurement, tags={k: _label(v) for k, v in tags.items()}, fields=fields, timestamp=at)

    for index, times in enumerate(snap.cpu_times):
        for mode in CPU_MODES:
            if hasattr(times, mode):
                yield sample("host_cpu", {"seconds_total": float(getattr(times, mode))}, cpu=str(index), mode=mode)
    yield sample("host_load", {"load1": float(snap.load[0]), "load5": float(snap.load[1]), "load15": float(snap.load[2])})
    mem = snap.memory
    yield sample("host_memory", {
        "total_bytes": int(mem.total), "available_bytes": int(mem.available), "used_bytes": int(mem.used),
        "free_bytes": int(mem.free), **{f"{k}_bytes": int(getattr(mem, k)) for k in ("buffers", "cached") if hasattr(mem, k)},
    })
    swap = snap.swap
    yield sample("host_swap", {
        "total_bytes": int(swap.total), "used_bytes": int(swap.used), "free_bytes": int(swap.free),
        "swapped_in_bytes_total": int(swap.sin), "swapped_out_bytes_total": int(swap.sout),
    })
    for part, usage, vfs in snap.filesystems:
        fields: dict[str, float | int] = {"size_bytes": int(usage.total), "used_bytes": int(usage.used), "free_bytes": int(usage.free)}
        if vfs is not None and vfs.f_files:
            fields |= {"files": int(vfs.f_files), "files_free": int(vfs.f_ffree)}
        yield sample("host_filesystem", fields, mountpoint=part.mountpoint, device=part.device, fstype=part.fstype)
    for device, io in sorted(snap.disks.items()):
        yield sample("host_disk", {
            "read_bytes_total": int(io.read_bytes), "written_bytes_total": int(io.write_bytes),
            "reads_completed_total": int(io.read_count), "writes_completed_total": int(io.write_count),
            "io_time_seconds_total": float(getattr(io, "busy_time", 0)) / 1000.0,
        }, device=device)
    for interface, io in sorted(snap.network.items()):
        yield sample("host_network", {
            "receive_bytes_total": int(io.bytes_recv), "transmit_bytes_total": int(io.bytes_sent),
            "receive_packets_total": int(io.packets_recv), "transmit_packets_total": int(io.packets_sent),
            "receive_errors_total": int(io.errin), "transmit_errors_total": int(io.errout),
            "receive_drop_total": int(io.dropin), "transmit_drop_total": int(io.dropout),
        }, interface=interface)
    yield sample("host_system", {
        "processes": int(snap.processes),
        "boot_time_seconds": float(snap.boot_time),
        "uptime_seconds": max(0.0, float(snap.now - snap.boot_time)),
    })
    for sensor, readings in sorted(snap.temperatures.items()):
        for index, reading in enumerate(readings):
            yield sample("host_temperature", {"celsius": float(reading.current)}, sensor=sensor, label=reading.label or str(index))


def read_snapshot() -> HostSnapshot:
    """Read everything psutil knows about this host (blocking; a few milliseconds)."""
    filesystems = []
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO_FILESYSTEMS:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
            vfs = os.statvfs(part.mountpoint)
        except OSError:  # unmounted meanwhile, or not readable: skip this one
            continue
        filesystems.append((part, usage, vfs))
    sensors = getattr(psutil, "sensors_temperatures", None)
    return HostSnapshot(
        cpu_times=psutil.cpu_times(percpu=True),
        load=os.getloadavg(),
        memory=psutil.virtual_memory(),
        swap=psutil.swap_memory(),
        filesystems=filesystems,
        disks=psutil.disk_io_counters(perdisk=True, nowrap=True) or {},
        network=psutil.net_io_counters(pernic=True, nowrap=True) or {},
        processes=len(psutil.pids()),
        boot_time=psutil.boot_time(),
        now=time.time(),
        temperatures=sensors() if sensors else {},
    )


class HostCollector:
    """Collects host metrics of the machine the agent runs on (the target is always local)."""

    name: ClassVar[str] = "host"

    def __init__(self, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        at = self._clock()
        try:
            snapshot = await asyncio.wait_for(asyncio.to_thread(read_snapshot), timeout)
        except TimeoutError as exc:
            raise CollectTimeoutError(f"reading host metrics took longer than {timeout:g} s") from exc
        return Reading(samples=tuple(host_samples(snapshot, at)))
