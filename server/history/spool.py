"""Keep history durable while the TSDB is down: an on-disk spool in front of a writer, replayed in the background.

`SpooledWriter.write` first tries the store; when that fails transiently
(HistoryWriteError) the lines are appended to a segment file in the spool
directory and fsync'd before `write` returns, because the server acknowledges
the agent's batch as soon as `write` returns. A background thread replays the
segments oldest first with exponential backoff and full jitter
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/)
and deletes a segment only once all of its records were written. While the
store is known to be down, `write` goes straight to the spool instead of
waiting for another timeout.

On disk, `NNNNNNNNNNNN.seg` files hold records: a 12-byte header (magic
`EGS1`, payload length and CRC-32, little-endian) and the payload, the lines
joined by newlines in UTF-8. A record cut short by a crash during an append
(never acknowledged) fails its length or CRC check and is skipped with the rest
of that segment; a restarted writer appends to a new segment, so it cannot hide
later records. Delivery is at least once: a crash between a replayed write and
the deletion of its segment replays those records again.
"""

from __future__ import annotations

import logging
import os
import random
import struct
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from server.history.base import (
    EncodedBatch,
    HistoryRejectedError,
    HistoryWriteError,
    HistoryWriter,
    SpoolFullError,
)

log = logging.getLogger(__name__)

MAGIC = b"EGS1"
HEADER = struct.Struct("<4sII")  # magic, payload length, crc32 of the payload
SEGMENT_SUFFIX = ".seg"
DEFAULT_SEGMENT_BYTES = 16 << 20


def encode_record(lines: Sequence[str]) -> bytes:
    """One spool record (header and payload) holding the lines."""
    payload = "\n".join(lines).encode("utf-8")
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes) -> tuple[list[list[str]], int]:
    """The records at the start of a segment, and how many bytes they span.

    Decoding stops at the first record whose magic, length or CRC is wrong:
    the bytes after it are a torn append and are not returned.
    """
    records: list[list[str]] = []
    offset = 0
    while offset + HEADER.size <= len(data):
        magic, length, crc = HEADER.unpack_from(data, offset)
        end = offset + HEADER.size + length
        if magic != MAGIC or end > len(data):
            break
        payload = data[offset + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            break
        records.append(payload.decode("utf-8").split("\n"))
        offset = end
    return records, offset


def backoff_seconds(attempt: int, *, base: float, cap: float, rand: float) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): full jitter, rand in [0, 1)."""
    return rand * min(cap, base * (1 << min(attempt - 1, 62)))


@dataclass
class _Replay:
    """The segment the replay thread is working through, and the next record to write."""

    seq: int
    records: list[list[str]]
    index: int = 0


class SpooledWriter:
    """A HistoryWriter that spools to disk what the inner writer cannot store now, and replays it later.

    Thread-safe; `write` may be called from many threads. It owns `inner`:
    `close()` closes it. Do not point two writers at one spool directory
    (server/history/build.py locks one per process).
    """

    def __init__(
        self,
        inner: HistoryWriter,
        spool_dir: Path,
        max_bytes: int,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        backoff_base_seconds: float = 1.0,
        backoff_cap_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.name = f"{inner.name}+spool"
        self._inner = inner
        self._dir = Path(spool_dir)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._backoff_base = backoff_base_seconds
        self._backoff_cap = backoff_cap_seconds
        self._clock = clock
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        self._rand = rand
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._replay: _Replay | None = None
        self._active: tuple[int, int] | None = None  # (seq, fd) of the segment appended to
        self._down = False  # the last attempt failed: write() goes straight to the spool
        self._outage_since: float | None = None  # set from the first failure until the spool is drained
        self.spooled_lines_total = 0
        self.replayed_lines_total = 0
        self.dropped_lines_total = 0  # spooled lines the store refused on replay (HistoryRejectedError)
        self.write_errors_total = 0
        self._dir.mkdir(parents=True, exist_ok=True)
        self._segments: dict[int, int] = {}  # seq → bytes on disk, oldest first
        for path in sorted(self._dir.glob(f"*{SEGMENT_SUFFIX}")):
            if path.stem.isdigit():
                self._segments[int(path.stem)] = path.stat().st_size
        self._next_seq = max(self._segments, default=0) + 1
        self._inherited_bytes = sum(self._segments.values())  # left by an earlier process
        self._drain_to_announce = bool(self._segments)

    # -- state ---------------------------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes of spool segments on disk, not yet replayed and deleted."""
        with self._lock:
            return sum(self._segments.values())

    @property
    def pending_segments(self) -> int:
        """Spool segment files on disk."""
        with self._lock:
            return len(self._segments)

    @property
    def oldest_pending_age_seconds(self) -> float:
        """Seconds since the oldest spool segment on disk was last written (0 when the spool is empty): how far the
        history store lags behind."""
        with self._lock:
            oldest = min(self._segments, default=None)
        if oldest is None:
            return 0.0
        try:
            return max(0.0, time.time() - self._path(oldest).stat().st_mtime)
        except OSError:  # replayed and deleted meanwhile
            return 0.0

    def _path(self, seq: int) -> Path:
        return self._dir / f"{seq:012d}{SEGMENT_SUFFIX}"

    def _note_failure(self, exc: HistoryWriteError) -> None:
        with self._lock:
            self.write_errors_total += 1
            self._down = True
            starts = self._outage_since is None
            if starts:
                self._outage_since = self._clock()
        if starts:
            log.warning("TSDB unreachable, spooling: %s", exc)

    # -- the HistoryWriter contract ------------------------------------------------------------

    def write(self, batch: EncodedBatch) -> None:
        """Store the batch in the TSDB, or durably in the spool when the TSDB is unreachable.

        Raises:
            HistoryRejectedError: the TSDB refuses the data (not spooled).
            SpoolFullError: the TSDB is unreachable and the spool has no room (nothing spooled).
        """
        if not batch.lines:
            return
        record = None  # encoded only when it may be spooled: while the TSDB is up, a write costs one encoding, not two
        with self._lock:
            down = self._down
        if down:
            record = encode_record(batch.lines)
            with self._lock:
                skip_inner = self._down and sum(self._segments.values()) + len(record) <= self._max_bytes
        else:
            skip_inner = False
        if not skip_inner:
            try:
                self._inner.write(batch)
            except HistoryWriteError as exc:
                self._note_failure(exc)
            else:
                with self._lock:
                    self._down = False
                return
        self._append(record if record is not None else encode_record(batch.lines), len(batch.lines))
        self._wakeup.set()

    def _append(self, record: bytes, line_count: int) -> None:
        """Append one record to the active segment and fsync it."""
        with self._lock:
            pending = sum(self._segments.values())
            if pending + len(record) > self._max_bytes:
                raise SpoolFullError(
                    f"TSDB unreachable and the spool in {self._dir} is full "
                    f"({pending} of {self._max_bytes} bytes used, {len(record)} more needed)"
                )
            seq, fd = self._open_active()
            size = self._segments[seq]
            try:
                view = memoryview(record)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as exc:
                os.ftruncate(fd, size)  # keep the segment readable past this failed append
                self._seal()
                raise SpoolFullError(f"cannot write the spool in {self._dir}: {exc}") from exc
            self._segments[seq] = size + len(record)
            self.spooled_lines_total += line_count
            if self._segments[seq] >= self._segment_bytes:
                self._seal()

    def _open_active(self) -> tuple[int, int]:
        """The (seq, fd) of the segment to append to, creating one (and fsyncing the directory) if needed."""
        if self._active is None:
            seq = self._next_seq
            self._next_seq += 1
            fd = os.open(self._path(seq), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            dir_fd = os.open(self._dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._segments[seq] = 0
            self._active = (seq, fd)
        return self._active

    def _seal(self) -> None:
        """Stop appending to the active segment (lock held)."""
        if self._active is not None:
            os.close(self._active[1])
            self._active = None

    def ping(self) -> bool:
        """Whether the TSDB answers its health endpoint."""
        return self._inner.ping()

    def start(self) -> None:
        """Start the replay thread (once)."""
        if self._thread is None:
            if self._inherited_bytes:
                log.info("replaying %d bytes spooled by an earlier process in %s", self._inherited_bytes, self._dir)
            self._thread = threading.Thread(target=self._run, name="history-spool-replay", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the replay thread, close the spool and the inner writer; spooled data stays for the next start."""
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._seal()
        self._inner.close()

    # -- replay --------------------------------------------------------------------------------

    def _run(self) -> None:
        """Replay spooled records until stopped, backing off while the TSDB fails."""
        attempt = 0
        while not self._stop.is_set():
            try:
                item = self._next_record()
            except OSError as exc:
                attempt += 1
                log.error("cannot read the spool in %s: %s", self._dir, exc)
                self._sleep(self._delay(attempt))
                continue
            if item is None:
                self._note_drained()
                self._wakeup.wait()
                self._wakeup.clear()
                continue
            lines = item.records[item.index]
            try:
                self._inner.write(EncodedBatch(points=(), lines=lines))
            except HistoryWriteError as exc:
                attempt += 1
                self._note_failure(exc)
                self._sleep(self._delay(attempt))
                continue
            except HistoryRejectedError as exc:
                log.error("TSDB refused %d spooled lines, dropping them: %s", len(lines), exc)
                with self._lock:
                    self.dropped_lines_total += len(lines)
            else:
                with self._lock:
                    self.replayed_lines_total += len(lines)
                    self._down = False
            attempt = 0
            item.index += 1

    def _delay(self, attempt: int) -> float:
        return backoff_seconds(attempt, base=self._backoff_base, cap=self._backoff_cap, rand=self._rand())

    def _next_record(self) -> _Replay | None:
        """The replay position of the next record to write, deleting finished segments; None when empty."""
        while True:
            replay = self._replay
            if replay is not None and replay.index < len(replay.records):
                return replay
            if replay is not None:
                self._path(replay.seq).unlink(missing_ok=True)
                with self._lock:
                    self._segments.pop(replay.seq, None)
                self._replay = None
            with self._lock:
                if not self._segments:
                    return None
                seq = min(self._segments)
                if self._active is not None and self._active[0] == seq:
                    self._seal()
            try:
                data = self._path(seq).read_bytes()
            except FileNotFoundError:
                log.error("spool segment %s vanished", self._path(seq))
                with self._lock:
                    self._segments.pop(seq, None)
                continue
            records, valid = decode_records(data)
            if valid < len(data):
                log.warning(
                    "spool segment %s: ignoring %d bytes after offset %d (an append cut short)",
                    self._path(seq),
                    len(data) - valid,
                    valid,
                )
            self._replay = _Replay(seq, records)

    def _note_drained(self) -> None:
        """Log the end of an outage (or of replaying an inherited spool) once the spool is empty."""
        with self._lock:
            if self._segments or (self._outage_since is None and not self._drain_to_announce):
                return
            outage = None if self._outage_since is None else self._clock() - self._outage_since
            self._outage_since = None
            self._drain_to_announce = False
            replayed = self.replayed_lines_total
        if outage is None:
            log.info("TSDB back, spool drained (%d lines replayed since start)", replayed)
        else:
            log.info("TSDB back, spool drained (%.1f s after the first failure, %d lines replayed)", outage, replayed)
