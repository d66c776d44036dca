"""The agent's disk queue: durable, ordered, bounded, and it survives a restart."""

from __future__ import annotations

import pytest

from agent.queue import DiskQueue


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
