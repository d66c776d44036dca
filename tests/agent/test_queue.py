"""The agent's disk queue: durable, ordered, bounded, and it survives a restart."""

from __future__ import annotations

import errno
import random

import pytest

from agent.queue import DiskQueue
from tests.services import fill_disk, small_tmpfs


def test_batches_come_out_oldest_first_and_survive_reopening(tmp_path):
    queue = DiskQueue(tmp_path / "q", max_bytes=1 << 20)
    queue.open()
    for body in (b"one", b"two", b"three"):
        queue.put(body)
    first = queue.peek()
    assert first is not None and first.read() == b"one"
    queue.ack(first)
    reopened = DiskQueue(tmp_path / "q", max_bytes=1 << 20)
    reopened.open()
    assert [reopened.peek().read()] == [b"two"]
    assert (len(reopened), reopened.bytes) == (2, len(b"two") + len(b"three"))
    reopened.put(b"four")  # sequence numbers continue after the old ones
    bodies = []
    while (item := reopened.peek()) is not None:
        bodies.append(item.read())
        reopened.ack(item)
    assert bodies == [b"two", b"three", b"four"]
    assert list((tmp_path / "q").iterdir()) == []


def test_full_queue_drops_the_oldest_and_counts_them(tmp_path):
    queue = DiskQueue(tmp_path / "q", max_bytes=100)
    queue.open()
    for i in range(10):
        queue.put(bytes([i]) * 30)
    assert len(queue) == 3 and queue.bytes == 90
    assert queue.dropped_batches_total == 7 and queue.dropped_bytes_total == 210
    assert queue.peek().read() == bytes([7]) * 30
    assert len(list((tmp_path / "q").iterdir())) == 3


def test_leftover_temporary_files_are_discarded(tmp_path):
    directory = tmp_path / "q"
    directory.mkdir()
    (directory / "00000000000000000003.batch.tmp").write_bytes(b"half a batch")
    (directory / "00000000000000000002.batch").write_bytes(b"whole")
    queue = DiskQueue(directory, max_bytes=1 << 20)
    queue.open()
    assert len(queue) == 1 and queue.peek().read() == b"whole"
    assert sorted(p.name for p in directory.iterdir()) == ["00000000000000000002.batch"]


def test_a_batch_larger_than_the_bound_is_refused(tmp_path):
    queue = DiskQueue(tmp_path / "q", max_bytes=10)
    queue.open()
    with pytest.raises(ValueError, match="exceeds the queue bound"):
        queue.put(b"x" * 11)
    assert len(queue) == 0


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    directory = tmp_path / "q"
    queue = DiskQueue(directory, max_bytes=1 << 20)
    queue.open()
    queue.put(b"kept")
    (directory / "00000000000000000001.batch").mkdir()  # the rename onto it fails (IsADirectoryError)
    with pytest.raises(IsADirectoryError):
        queue.put(b"lost")
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]
    assert len(queue) == 1 and queue.peek().read() == b"kept"


def test_a_full_file_system_drops_the_oldest_batches_first_counts_them_and_leaves_no_temporary_files(tmp_path):
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        queue = DiskQueue(disk / "q", max_bytes=64 << 20)  # the bound is far above the disk: the disk fills first
        queue.open()
        bodies = [random.Random(i).randbytes(100_000) for i in range(30)]  # incompressible, 100 KB each
        for body in bodies:
            queue.put(body)
        kept = len(queue)
        assert 5 <= kept <= 10  # 1 MB holds ten 100 KB batches at most
        assert queue.dropped_for_disk_full_total == queue.dropped_batches_total == 30 - kept
        assert queue.dropped_bytes_total == 100_000 * (30 - kept)
        assert not [p for p in (disk / "q").iterdir() if p.name.endswith(".tmp")]
        # the newest are kept, in order, and intact
        read = []
        while (item := queue.peek()) is not None:
            read.append(item.read())
            queue.ack(item)
        assert read == bodies[30 - kept:]

        fill_disk(disk / "filler")  # nothing left to drop: the write fails, and still no temporary file
        with pytest.raises(OSError) as raised:
            queue.put(bodies[0])
        assert raised.value.errno == errno.ENOSPC
        assert not [p for p in (disk / "q").iterdir() if p.name.endswith(".tmp")]
