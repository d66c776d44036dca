"""Host metrics: exact samples from fixed psutil values, and a real run on this machine."""

from __future__ import annotations

import asyncio
from collections import namedtuple
from datetime import UTC, datetime

import psutil

from collectors.host import HostCollector, HostSnapshot, host_samples
from core.collect import LOCAL

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")
Memory = namedtuple("Memory", "total available percent used free active inactive buffers cached shared slab")
Swap = namedtuple("Swap", "total used free percent sin sout")
Partition = namedtuple("Partition", "device mountpoint fstype opts")
Usage = namedtuple("Usage", "total used free percent")
Statvfs = namedtuple("Statvfs", "f_files f_ffree")
DiskIO = namedtuple("DiskIO", "read_count write_count read_bytes write_bytes read_time write_time read_merged_count write_merged_count busy_time")
NetIO = namedtuple("NetIO", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")
Temp = namedtuple("Temp", "label current high critical")

SNAPSHOT = HostSnapshot(
    cpu_times=[CpuTimes(100.5, 1.0, 50.25, 1000.0, 2.0, 0.0, 0.5, 0.0, 0.0, 0.0)],
    load=(0.5, 0.25, 0.125),
    memory=Memory(8 << 30, 6 << 30, 25.0, 2 << 30, 5 << 30, 0, 0, 1 << 20, 512 << 20, 0, 0),
    swap=Swap(1 << 30, 0, 1 << 30, 0.0, 4096, 8192),
    filesystems=[(Partition("/dev/vda", "/", "ext4", "rw"), Usage(100 << 30, 40 << 30, 60 << 30, 40.0), Statvfs(6_000_000, 5_000_000))],
    disks={"vda": DiskIO(10, 20, 4096, 8192, 1, 2, 0, 0, 1500)},
    network={"eth0": NetIO(1000, 2000, 10, 20, 1, 2, 3, 4)},
    processes=123,
    boot_time=1_795_000_000.0,
    now=1_795_000_600.0,
    temperatures={"coretemp": [Temp("Package id 0", 45.0, 80.0, 100.0)]},
)


def by_name(samples):
    return {(s.measurement, tuple(sorted(s.tags.items()))): s.fields for s in samples}


def test_snapshot_becomes_exact_samples():
    samples = list(host_samples(SNAPSHOT, AT))
    assert {s.timestamp for s in samples} == {AT}
    got = by_name(samples)
    assert got[("host_cpu", (("cpu", "0"), ("mode", "user")))] == {"seconds_total": 100.5}
    assert got[("host_cpu", (("cpu", "0"), ("mode", "steal")))] == {"seconds_total": 0.0}
    assert got[("host_load", ())] == {"load1": 0.5, "load5": 0.25, "load15": 0.125}
    assert got[("host_memory", ())] == {
        "total_bytes": 8 << 30, "available_bytes": 6 << 30, "used_bytes": 2 << 30, "free_bytes": 5 << 30,
        "buffers_bytes": 1 << 20, "cached_bytes": 512 << 20,
    }
    assert got[("host_swap", ())]["swapped_out_bytes_total"] == 8192
    assert got[("host_filesystem", (("device", "/dev/vda"), ("fstype", "ext4"), ("mountpoint", "/")))] == {
        "size_bytes": 100 << 30, "used_bytes": 40 << 30, "free_bytes": 60 << 30, "files": 6_000_000, "files_free": 5_000_000,
    }
    assert got[("host_disk", (("device", "vda"),))]["io_time_seconds_total"] == 1.5
    assert got[("host_network", (("interface", "eth0"),))] == {
        "receive_bytes_total": 2000, "transmit_bytes_total": 1000, "receive_packets_total": 20, "transmit_packets_total": 10,
        "receive_errors_total": 1, "transmit_errors_total": 2, "receive_drop_total": 3, "transmit_drop_total": 4,
    }
    assert got[("host_system", ())] == {"processes": 123, "boot_time_seconds": 1_795_000_000.0, "uptime_seconds": 600.0}
    assert got[("host_temperature", (("label", "Package id 0"), ("sensor", "coretemp")))] == {"celsius": 45.0}
    assert len(samples) == 8 + 8  # 8 CPU modes, then load, memory, swap, filesystem, disk, network, system, temperature


def test_real_collection_on_this_machine():
    collector = HostCollector(clock=lambda: AT)
    first = asyncio.run(collector.collect(LOCAL, timeout=10))
    second = asyncio.run(collector.collect(LOCAL, timeout=10))
    got = by_name(first.samples)
    assert got[("host_memory", ())]["total_bytes"] == psutil.virtual_memory().total
    assert ("host_network", (("interface", "lo"),)) in got
    assert len(psutil.cpu_times(percpu=True)) == len({s.tags["cpu"] for s in first.samples if s.measurement == "host_cpu"})
    later = by_name(second.samples)
    for key, fields in got.items():
        if key[0] == "host_cpu":
            assert later[key]["seconds_total"] >= fields["seconds_total"]
    assert not any(s.tags.get("fstype") in ("proc", "sysfs", "tmpfs") for s in first.samples)
