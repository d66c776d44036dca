"""Host metrics: exact samples from psutil values captured on real machines, and real runs on this one."""

from __future__ import annotations

import asyncio
import os
import re
from collections import namedtuple
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from collectors.host import (
    EXCLUDED_DISKS,
    PSEUDO_FSTYPES,
    Filesystem,
    HostCollector,
    HostSnapshot,
    host_samples,
    read_snapshot,
    tag_value,
    wanted_partitions,
)
from core.collect import LOCAL, CollectError, CollectTimeoutError, Target

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# psutil's Linux result types, with the same field names and order (psutil/_ntuples.py).
scputimes = namedtuple("scputimes", "user nice system idle iowait irq softirq steal guest guest_nice")
svmem = namedtuple("svmem", "total available percent used free active inactive buffers cached shared slab")
sswap = namedtuple("sswap", "total used free percent sin sout")
sdiskpart = namedtuple("sdiskpart", "device mountpoint fstype opts")
sdiskio = namedtuple(
    "sdiskio", "read_count write_count read_bytes write_bytes read_time write_time read_merged_count write_merged_count busy_time"
)
snetio = namedtuple("snetio", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")
shwtemp = namedtuple("shwtemp", "label current high critical")


def statvfs(frsize, blocks, bfree, bavail, files, ffree):
    return os.statvfs_result((frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, 4096, 255))


# Captured on the 2-CPU VM these tests were written on (no swap, no sensors).
VM = HostSnapshot(
    cpu_times=[
        scputimes(231.46, 0.0, 87.21, 15669.13, 2.78, 0.0, 1.17, 1.41, 0.0, 0.0),
        scputimes(391.43, 0.0, 91.27, 15506.99, 9.52, 0.0, 2.82, 1.19, 0.0, 0.0),
    ],
    load=(0.0107421875, 0.23095703125, 0.3564453125),
    memory=svmem(25276502016, 24714731520, 2.2, 561770496, 24511197184, 311332864, 213258240, 8945664, 639201280,
                 158019584, 165097472),
    swap=sswap(0, 0, 0, 0.0, 0, 0),
    filesystems=[Filesystem("/dev/vda", "/", "ext4", False, statvfs(4096, 66053021, 60051563, 20596270, 16777216, 16337628))],
    disks={"vda": sdiskio(98740, 135871, 2684187648, 2969935872, 42853, 41070, 18991, 93479, 18984)},
    network={
        "lo": snetio(1046461146, 1046461146, 139210, 139210, 0, 0, 0, 0),
        "eth0": snetio(379163, 176870809, 3365, 5589, 0, 0, 0, 0),
    },
    process_count=74,
    boot_time_seconds=1795854921.0,
    temperatures={},
)
VM_SAMPLES = [
    *[("host_cpu", {"cpu": "0", "mode": m}, {"seconds_total": v}) for m, v in [
        ("user", 231.46), ("nice", 0.0), ("system", 87.21), ("idle", 15669.13), ("iowait", 2.78), ("irq", 0.0),
        ("softirq", 1.17), ("steal", 1.41)]],
    ("host_cpu_guest", {"cpu": "0", "mode": "user"}, {"seconds_total": 0.0}),
    ("host_cpu_guest", {"cpu": "0", "mode": "nice"}, {"seconds_total": 0.0}),
    *[("host_cpu", {"cpu": "1", "mode": m}, {"seconds_total": v}) for m, v in [
        ("user", 391.43), ("nice", 0.0), ("system", 91.27), ("idle", 15506.99), ("iowait", 9.52), ("irq", 0.0),
        ("softirq", 2.82), ("steal", 1.19)]],
    ("host_cpu_guest", {"cpu": "1", "mode": "user"}, {"seconds_total": 0.0}),
    ("host_cpu_guest", {"cpu": "1", "mode": "nice"}, {"seconds_total": 0.0}),
    ("host_load", {}, {"load1": 0.0107421875, "load5": 0.23095703125, "load15": 0.3564453125}),
    ("host_memory", {}, {
        "total_bytes": 25276502016, "available_bytes": 24714731520, "used_bytes": 561770496, "free_bytes": 24511197184,
        "active_bytes": 311332864, "inactive_bytes": 213258240, "buffers_bytes": 8945664, "cached_bytes": 639201280,
        "shared_bytes": 158019584, "slab_bytes": 165097472,
    }),
    ("host_swap", {}, {
        "total_bytes": 0, "used_bytes": 0, "free_bytes": 0, "swapped_in_bytes_total": 0, "swapped_out_bytes_total": 0,
    }),
    ("host_filesystem", {"mountpoint": "/", "device": "/dev/vda", "fstype": "ext4"}, {
        "size_bytes": 270553174016, "free_bytes": 245971202048, "avail_bytes": 84362321920, "used_bytes": 24581971968,
        "files": 16777216, "files_free": 16337628, "readonly": 0, "device_error": 0,
    }),
    ("host_disk", {"device": "vda"}, {
        "read_bytes_total": 2684187648, "written_bytes_total": 2969935872, "reads_completed_total": 98740,
        "writes_completed_total": 135871, "reads_merged_total": 18991, "writes_merged_total": 93479,
        "read_time_seconds_total": 42.853, "write_time_seconds_total": 41.07, "io_time_seconds_total": 18.984,
    }),
    ("host_network", {"interface": "eth0"}, {
        "receive_bytes_total": 176870809, "transmit_bytes_total": 379163, "receive_packets_total": 5589,
        "transmit_packets_total": 3365, "receive_errors_total": 0, "transmit_errors_total": 0, "receive_drop_total": 0,
        "transmit_drop_total": 0,
    }),
    ("host_network", {"interface": "lo"}, {
        "receive_bytes_total": 1046461146, "transmit_bytes_total": 1046461146, "receive_packets_total": 139210,
        "transmit_packets_total": 139210, "receive_errors_total": 0, "transmit_errors_total": 0, "receive_drop_total": 0,
        "transmit_drop_total": 0,
    }),
    # uptime: 2026-11-28T12:00:00Z - 2026-11-28T08:35:21Z
    ("host_system", {}, {"processes": 74, "boot_time_seconds": 1795854921.0, "uptime_seconds": 12279.0}),
]

# A server with sensors, a read-only mount, an NFS mount whose statvfs failed, and a
# mount point with a tab in it (as /proc/self/mounts can carry): the rarer paths.
SERVER = HostSnapshot(
    cpu_times=[scputimes(10.5, 0.25, 3.0, 100.0, 0.0, 0.0, 0.0, 0.0, 2.5, 0.125)],
    load=(1.5, 1.25, 1.0),
    memory=svmem(8 << 30, 6 << 30, 25.0, 2 << 30, 5 << 30, 0, 0, 1 << 20, 512 << 20, 0, 0),
    swap=sswap(1 << 30, 4096, (1 << 30) - 4096, 0.0, 8192, 16384),
    filesystems=[
        Filesystem("/dev/sr0", "/media/cdrom", "iso9660", True, statvfs(2048, 100, 0, 0, 0, 0)),
        Filesystem("nas:/backup", "/mnt/backup", "nfs4", False, None),
        Filesystem("/dev/sdb1", "/srv/a\tb", "xfs", False, statvfs(4096, 1000, 250, 200, 500, 400)),
    ],
    disks={"sda": sdiskio(1, 2, 512, 1024, 1, 2, 0, 0, 3)},
    network={},
    process_count=321,
    boot_time_seconds=1795000000.5,
    temperatures={
        "coretemp": [shwtemp("Package id 0", 45.0, 80.0, 100.0), shwtemp("Core 0", 44.0, None, None)],
        "acpitz": [shwtemp("", 27.8, float("nan"), 105.0), shwtemp("", 29.8, None, None)],
        "nvme": [shwtemp("Composite", None, None, None)],  # no current value: no sample
    },
)
SERVER_SAMPLES = [
    *[("host_cpu", {"cpu": "0", "mode": m}, {"seconds_total": v}) for m, v in [
        ("user", 10.5), ("nice", 0.25), ("system", 3.0), ("idle", 100.0), ("iowait", 0.0), ("irq", 0.0),
        ("softirq", 0.0), ("steal", 0.0)]],
    ("host_cpu_guest", {"cpu": "0", "mode": "user"}, {"seconds_total": 2.5}),
    ("host_cpu_guest", {"cpu": "0", "mode": "nice"}, {"seconds_total": 0.125}),
    ("host_load", {}, {"load1": 1.5, "load5": 1.25, "load15": 1.0}),
    ("host_memory", {}, {
        "total_bytes": 8589934592, "available_bytes": 6442450944, "used_bytes": 2147483648, "free_bytes": 5368709120,
        "active_bytes": 0, "inactive_bytes": 0, "buffers_bytes": 1048576, "cached_bytes": 536870912, "shared_bytes": 0,
        "slab_bytes": 0,
    }),
    ("host_swap", {}, {
        "total_bytes": 1073741824, "used_bytes": 4096, "free_bytes": 1073737728, "swapped_in_bytes_total": 8192,
        "swapped_out_bytes_total": 16384,
    }),
    ("host_filesystem", {"mountpoint": "/media/cdrom", "device": "/dev/sr0", "fstype": "iso9660"}, {
        "size_bytes": 204800, "free_bytes": 0, "avail_bytes": 0, "used_bytes": 204800, "files": 0, "files_free": 0,
        "readonly": 1, "device_error": 0,
    }),
    ("host_filesystem", {"mountpoint": "/mnt/backup", "device": "nas:/backup", "fstype": "nfs4"}, {
        "device_error": 1, "readonly": 0,
    }),
    ("host_filesystem", {"mountpoint": "/srv/a?b", "device": "/dev/sdb1", "fstype": "xfs"}, {
        "size_bytes": 4096000, "free_bytes": 1024000, "avail_bytes": 819200, "used_bytes": 3072000, "files": 500,
        "files_free": 400, "readonly": 0, "device_error": 0,
    }),
    ("host_disk", {"device": "sda"}, {
        "read_bytes_total": 512, "written_bytes_total": 1024, "reads_completed_total": 1, "writes_completed_total": 2,
        "reads_merged_total": 0, "writes_merged_total": 0, "read_time_seconds_total": 0.001,
        "write_time_seconds_total": 0.002, "io_time_seconds_total": 0.003,
    }),
    ("host_system", {}, {"processes": 321, "boot_time_seconds": 1795000000.5, "uptime_seconds": 867199.5}),
    ("host_temperature", {"sensor": "acpitz", "label": "temp1"}, {"celsius": 27.8, "critical_celsius": 105.0}),
    ("host_temperature", {"sensor": "acpitz", "label": "temp2"}, {"celsius": 29.8}),
    ("host_temperature", {"sensor": "coretemp", "label": "Package id 0"}, {
        "celsius": 45.0, "high_celsius": 80.0, "critical_celsius": 100.0,
    }),
    ("host_temperature", {"sensor": "coretemp", "label": "Core 0"}, {"celsius": 44.0}),
]


@pytest.mark.parametrize(("snapshot", "expected"), [(VM, VM_SAMPLES), (SERVER, SERVER_SAMPLES)], ids=["vm", "server"])
def test_snapshot_becomes_exact_samples(snapshot, expected):
    samples = host_samples(snapshot, at=AT)
    assert [(s.measurement, s.tags, s.fields) for s in samples] == expected
    assert {s.timestamp for s in samples} == {AT}


def test_field_types_stay_as_the_kernel_counts():
    """Byte and packet counters stay ints (an int series must not turn float); seconds are floats."""
    samples = host_samples(VM, at=AT)
    types = {(s.measurement, name): type(value) for s in samples for name, value in s.fields.items()}
    assert types[("host_network", "receive_bytes_total")] is int
    assert types[("host_disk", "read_bytes_total")] is int
    assert types[("host_disk", "io_time_seconds_total")] is float
    assert types[("host_cpu", "seconds_total")] is float
    assert types[("host_system", "processes")] is int


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/srv/a\tb", "/srv/a?b"),
        ("C:\\", "C:?"),
        ("", "none"),
        ("x" * 300, "x" * 256),
        ("/mnt/" + "d" * 250 + "\\x", "/mnt/" + "d" * 250 + "?"),
        ("网卡0", "网卡0"),
    ],
)
def test_tag_value(raw, expected):
    assert tag_value(raw) == expected


# The mount table of the VM these tests were written on (psutil.disk_partitions(all=True)).
VM_PARTITIONS = [
    sdiskpart("proc", "/proc", "proc", "rw,relatime"),
    sdiskpart("sysfs", "/sys", "sysfs", "rw,relatime"),
    sdiskpart("devtmpfs", "/dev", "devtmpfs", "rw,relatime,size=12334460k"),
    sdiskpart("tmpfs", "/dev/shm", "tmpfs", "rw,relatime,size=24684084k"),
    sdiskpart("devpts", "/dev/pts", "devpts", "rw,relatime,mode=600,ptmxmode=000"),
    sdiskpart("/dev/vda", "/", "ext4", "rw,relatime,discard"),
    sdiskpart("model_tools_unavailable", "/mnt/sandboxing/tools", "tmpfs", "ro,nosuid,nodev,relatime,size=4k"),
    sdiskpart("devpts", "/dev/pts", "devpts", "rw,relatime,mode=600,ptmxmode=000"),
    sdiskpart("tmpfs", "/dev/shm", "tmpfs", "rw,relatime,size=24684084k"),
    sdiskpart("tmpfs", "/sys/fs/cgroup", "tmpfs", "rw,relatime,mode=755"),
    sdiskpart("cgroup", "/sys/fs/cgroup/cpu", "cgroup", "rw,relatime,cpu"),
    sdiskpart("cgroup2", "/sys/fs/cgroup/unified", "cgroup2", "rw,relatime"),
    sdiskpart("/dev/vda", "/run/netns", "ext4", "rw,relatime,discard"),
    sdiskpart("nas:/backup", "/mnt/backup", "nfs4", "rw,relatime"),  # added: psutil's all=False would drop it
]


@pytest.mark.parametrize(
    ("exclude", "mountpoints"),
    [
        (PSEUDO_FSTYPES, ["/", "/run/netns", "/mnt/backup"]),
        (PSEUDO_FSTYPES - {"tmpfs"}, ["/", "/mnt/sandboxing/tools", "/dev/shm", "/sys/fs/cgroup", "/run/netns", "/mnt/backup"]),
        (frozenset({"proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "tmpfs", "nfs4"}), ["/", "/run/netns"]),
    ],
    ids=["default", "with-tmpfs", "without-nfs"],
)
def test_wanted_partitions_skip_pseudo_filesystems_and_repeated_mounts(exclude, mountpoints):
    assert [p.mountpoint for p in wanted_partitions(VM_PARTITIONS, exclude_fstypes=exclude)] == mountpoints


@pytest.mark.parametrize(
    ("device", "excluded"),
    [
        ("sda", False), ("sda1", True), ("vda", False), ("vda2", True), ("xvdb", False), ("xvdb1", True),
        ("nvme0n1", False), ("nvme0n1p1", True), ("mmcblk0", False), ("mmcblk0p2", True), ("dm-0", False),
        ("md127", False), ("loop3", True), ("zram0", True), ("ram15", True), ("fd0", True),
    ],
)
def test_disk_exclusion_keeps_whole_disks_only(device, excluded):
    assert bool(EXCLUDED_DISKS.match(device)) is excluded


# -- real runs on this machine ----------------------------------------------------------


def test_real_collection_on_this_machine():
    collector = HostCollector(clock=lambda: AT)
    first = asyncio.run(collector.collect(LOCAL, timeout=10))
    second = asyncio.run(collector.collect(LOCAL, timeout=10))
    samples = {(s.measurement, tuple(sorted(s.tags.items()))): s.fields for s in first.samples}
    later = {(s.measurement, tuple(sorted(s.tags.items()))): s.fields for s in second.samples}

    assert {s.timestamp for s in first.samples} == {AT}
    assert samples[("host_memory", ())]["total_bytes"] == psutil.virtual_memory().total
    assert ("host_network", (("interface", "lo"),)) in samples
    cpus = {s.tags["cpu"] for s in first.samples if s.measurement == "host_cpu"}
    assert cpus == {str(i) for i in range(psutil.cpu_count())}
    cpu_keys = [k for k in samples if k[0] in ("host_cpu", "host_cpu_guest")]
    assert all(later[k]["seconds_total"] >= samples[k]["seconds_total"] for k in cpu_keys)
    lo = (("interface", "lo"),)
    assert later[("host_network", lo)]["receive_bytes_total"] >= samples[("host_network", lo)]["receive_bytes_total"]
    assert samples[("host_system", ())]["boot_time_seconds"] == psutil.boot_time()
    vfs = os.statvfs("/")
    root = next(fields for (m, tags), fields in samples.items() if m == "host_filesystem" and ("mountpoint", "/") in tags)
    assert (root["size_bytes"], root["files"], root["device_error"]) == (vfs.f_blocks * vfs.f_frsize, vfs.f_files, 0)
    assert not any(s.tags.get("fstype") in PSEUDO_FSTYPES for s in first.samples)
    assert not any(EXCLUDED_DISKS.match(s.tags["device"]) for s in first.samples if s.measurement == "host_disk")
    assert samples[("host_system", ())]["processes"] > 1


def test_uptime_follows_the_clock():
    boot = datetime.fromtimestamp(psutil.boot_time(), UTC)
    reading = asyncio.run(HostCollector(clock=lambda: boot + timedelta(hours=2)).collect(LOCAL, timeout=10))
    assert [s.fields["uptime_seconds"] for s in reading.samples if s.measurement == "host_system"] == [7200.0]


def test_failed_statvfs_is_reported_per_mount():
    snapshot = read_snapshot(statvfs=lambda mountpoint: None)
    filesystems = [s for s in host_samples(snapshot, at=AT) if s.measurement == "host_filesystem"]
    assert filesystems, "this machine has at least its root filesystem"
    assert [sorted(s.fields) for s in filesystems] == [["device_error", "readonly"]] * len(filesystems)
    assert {s.fields["device_error"] for s in filesystems} == {1}


def test_timeout_is_a_collect_timeout_error():
    with pytest.raises(CollectTimeoutError, match=re.escape("reading host metrics took longer than 0 s")):
        asyncio.run(HostCollector().collect(LOCAL, timeout=0))


def test_a_remote_target_is_refused():
    with pytest.raises(CollectError, match="reads only the machine it runs on, not db1 \\(10.0.0.5\\)"):
        asyncio.run(HostCollector().collect(Target(name="db1", address="10.0.0.5"), timeout=10))

