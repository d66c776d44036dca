"""A bounded on-disk queue of ready-to-send batches that survives restarts and `kill -9`.

Each batch is one file `<seq>.batch` holding the gzip-compressed JSON body,
written to a temporary name, fsync'd and renamed, so a crash leaves either the
whole batch or nothing. Files are sent oldest first and deleted only after the
server acknowledged them. When the queue would exceed its byte bound, the
oldest batches are dropped and counted: the newest data is the most useful to
the NOC after an outage, and the agent must keep running. The same holds when
the file system fills up before the bound is reached (ENOSPC): the oldest
batches are dropped, one at a time, until the new one fits, and counted apart.
A failed write never leaves its temporary file behind.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = ".batch"
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True, slots=True)
class QueuedBatch:
    """One queued batch: its sequence number, file and size."""

    seq: int
    path: Path
    size: int

    def read(self) -> bytes:
        return self.path.read_bytes()


class DiskQueue:
    """Oldest-first queue of batch files in `directory`, at most `max_bytes` in total; thread-safe."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.dropped_batches_total = 0
        self.dropped_bytes_total = 0
        self.dropped_for_disk_full_total = 0  # of dropped_batches_total: dropped because the file system was full
        self._lock = threading.Lock()
        self._items: list[QueuedBatch] = []
        self._bytes = 0
        self._next_seq = 0
        self._loaded = False
        self._full = False

    def open(self) -> None:
        """Create the directory and load what an earlier run left (leftover temporary files are removed)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        items = []
        for path in self.directory.iterdir():
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            if path.suffix != SUFFIX or not path.stem.isdigit():
                continue
            items.append(QueuedBatch(int(path.stem), path, path.stat().st_size))
        items.sort(key=lambda item: item.seq)
        with self._lock:
            self._items = items
            self._bytes = sum(item.size for item in items)
            self._next_seq = items[-1].seq + 1 if items else 0
            self._loaded = True
        if items:
            log.info("disk queue holds %d batches (%d bytes) from an earlier run", len(items), self._bytes)

    def put(self, body: bytes) -> QueuedBatch:
        """Store one batch durably; drops the oldest batches when the bound would be exceeded or the disk is full.

        Raises:
            ValueError: a single batch is larger than the whole bound.
            OSError: the disk refused the write (and nothing older is left to drop for room).
        """
        if len(body) > self.max_bytes:
            raise ValueError(f"batch of {len(body)} bytes exceeds the queue bound of {self.max_bytes} bytes")
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
        path = self.directory / f"{seq:020d}{SUFFIX}"
        self._write_making_room(path, body)
        item = QueuedBatch(seq, path, len(body))
        dropped = self._append_within_bound(item)
        for old in dropped:
            old.path.unlink(missing_ok=True)
        if dropped and not self._full:
            self._full = True
            log.warning(
                "disk queue full (%d bytes): dropping the oldest batches (counted in egovmon_agent_queue_dropped_batches_total)",
                self.max_bytes,
            )
        return item

    def _write_making_room(self, path: Path, body: bytes) -> None:
        """Write body durably to path, dropping the oldest batches while the file system is full.

        Raises:
            OSError: the disk refused the write for another reason, or is full with nothing left to drop.
        """
        while True:
            try:
                _write_durably(path, body)
                return
            except OSError as exc:
                if exc.errno not in _DISK_FULL_ERRNOS or not self._drop_oldest_for_room():
                    raise

    def _append_within_bound(self, item: QueuedBatch) -> list[QueuedBatch]:
        """Queue item, then take the oldest batches off (counted) until the bound holds; returns those taken off
        (their files are the caller's to delete, outside the lock). The newest batch always stays."""
        dropped: list[QueuedBatch] = []
        with self._lock:
            self._items.append(item)
            self._bytes += item.size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                oldest = self._items.pop(0)
                self._bytes -= oldest.size
                dropped.append(oldest)
            self.dropped_batches_total += len(dropped)
            self.dropped_bytes_total += sum(d.size for d in dropped)
        return dropped

    def _drop_oldest_for_room(self) -> bool:
        """Drop the oldest batch because the file system is full; False when there is none to drop."""
        with self._lock:
            if not self._items:
                return False
            oldest = self._items.pop(0)
            self._bytes -= oldest.size
            self.dropped_batches_total += 1
            self.dropped_bytes_total += oldest.size
            self.dropped_for_disk_full_total += 1
            first = self.dropped_for_disk_full_total == 1 or not self._full
            self._full = True
        oldest.path.unlink(missing_ok=True)
        if first:
            log.warning(
                "the file system of the disk queue is full: dropping the oldest batches to make room "
                "(counted in egovmon_agent_queue_dropped_batches_total)"
            )
        return True

    def peek(self) -> QueuedBatch | None:
        """The oldest batch, or None when empty."""
        with self._lock:
            return self._items[0] if self._items else None

    def ack(self, item: QueuedBatch) -> None:
        """Remove a batch the server acknowledged (or refused for good)."""
        with self._lock:
            try:
                self._items.remove(item)
            except ValueError:
                return  # dropped for space meanwhile
            self._bytes -= item.size
            drained = self._full and self._bytes < self.max_bytes // 2
            if drained:
                self._full = False
        item.path.unlink(missing_ok=True)
        if drained:
            log.info("disk queue below half its bound again; %d batches were dropped in total", self.dropped_batches_total)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes


def _write_durably(path: Path, body: bytes) -> None:
    """Write `body` to `path` through a fsync'd temporary file and a rename; the temporary file never outlives a failure.

    Raises:
        OSError: the write, fsync or rename failed.
    """
    temporary = path.with_name(path.name + ".tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
