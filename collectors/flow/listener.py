"""Receive NetFlow v5/v9 and IPFIX over UDP and hand the decoded records to a callback.

The shell around the pure decoder (`collectors.flow.batch`): a receiver thread
that only copies datagrams off the socket into a bounded queue, and a decoder thread that drains whatever has queued (up to `MAX_BATCH_DATAGRAMS`)
and decodes it as one batch, so that numpy's per-call overhead is paid per
exporter and template, not per datagram. The two threads are split so that a
slow decode (or a slow `on_flows`) costs queued datagrams, counted as
`queue_drops`, instead of kernel drops; both are counted.

The queue is bounded both in datagrams and in bytes (each datagram charged its size
plus QUEUE_OVERHEAD_BYTES): a ring preallocated at the 64 KB maximum per slot cost
268 MB of resident memory while idle, and copying each datagram out of one scratch
buffer costs what the decoder's copy out of a slot did.

Exporters are keyed by source IP address (not port), as nfcapd does: an exporter
that restarts on a new source port keeps its templates and its counters.

Loss accounting follows each wire format's sequence number (pure helpers
`sequence_advance` and `sequence_increment`, tested on their own):
NetFlow v5 counts flows, NetFlow v9 (RFC 3954 §5.1) counts export packets,
IPFIX (RFC 7011 §3.1) counts data records per observation domain.

Do not use this for TCP or SCTP IPFIX transport; it is UDP only.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import selectors
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.supervise import WORKERS, Workers, supervised_thread

if TYPE_CHECKING:
    from collectors.flow.batch import BatchDecoder, BatchResult, ExporterFlows
    from collectors.flow.model import Decoded, DecodeError

log = logging.getLogger(__name__)

DEFAULT_RCVBUF_BYTES = 32 * 1024 * 1024
DEFAULT_QUEUE_DATAGRAMS = 4096
DEFAULT_QUEUE_BYTES = 16 * 1024 * 1024
QUEUE_OVERHEAD_BYTES = 100  # what a queued datagram costs besides its payload (bytes object, tuple, queue entry)
MAX_BATCH_DATAGRAMS = 512  # datagrams decoded together; a batch is drained from the queue, never waited for
MAX_DATAGRAM_BYTES = 65535
MAX_SEQUENCE_KEYS = 16_384  # (exporter, version, domain) whose next sequence number is expected; oldest forgotten
MAX_EXPORTER_STATS = 1024  # exporters counted one by one; later new source addresses are counted together
OTHER_EXPORTERS = "other"  # the exporter name their counters go under (spoofed sources must not grow memory or series)
DECODE_ERROR_REASONS = ("malformed", "decoder_bug", "failed_set", "callback")
SEQUENCE_MODULUS = 2**32
# A backwards or absurdly large jump is an exporter restart or reordering, not loss.
MAX_PLAUSIBLE_GAP = 2**31
PROC_NET_UDP = (Path("/proc/net/udp"), Path("/proc/net/udp6"))


# Pure helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UdpSocketRow:
    """One line of /proc/net/udp or /proc/net/udp6: a UDP socket as the kernel sees it."""

    local_port: int
    inode: int
    rx_queue_bytes: int
    drops: int


def parse_proc_net_udp(text: str) -> tuple[UdpSocketRow, ...]:
    """Parse the text of /proc/net/udp (or udp6) into rows; the header line and short lines are skipped.

    Columns (net/ipv4/udp.c, udp4_format_sock): sl, local_address (hex addr:port),
    rem_address, st, tx_queue:rx_queue (hex bytes), tr:tm->when, retrnsmt, uid,
    timeout, inode, ref, pointer, drops.
    """
    rows: list[UdpSocketRow] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 13 or not fields[0].endswith(":") or not fields[0][:-1].isdigit():
            continue
        _, _, port_hex = fields[1].rpartition(":")
        _, _, rx_hex = fields[4].partition(":")
        rows.append(
            UdpSocketRow(
                local_port=int(port_hex, 16),
                inode=int(fields[9]),
                rx_queue_bytes=int(rx_hex, 16),
                drops=int(fields[12]),
            )
        )
    return tuple(rows)


def read_udp_sockets(paths: Iterable[Path] = PROC_NET_UDP) -> tuple[UdpSocketRow, ...]:
    """The UDP sockets of this network namespace, IPv4 and IPv6; a missing file contributes nothing."""
    rows: list[UdpSocketRow] = []
    for path in paths:
        try:
            rows.extend(parse_proc_net_udp(path.read_text(encoding="ascii")))
        except FileNotFoundError:
            continue
    return tuple(rows)


def sequence_increment(version: int, flows: int, option_records: int) -> int | None:
    """How far one datagram advances its exporter's sequence number, in the units of its version.

    v5: flows in the datagram; v9: one (it counts export packets); IPFIX: every
    data record, options records included (RFC 7011 §3.1).
    """
    if version == 5:
        return flows
    if version == 9:
        return 1
    if version == 10:
        return flows + option_records
    return None


def sequence_advance(expected: int | None, sequence: int, increment: int | None) -> tuple[int, int | None]:
    """Compare a datagram's sequence number with the one expected: (units lost before it, next expected).

    `expected` is None for the first datagram of a stream, and `increment` None
    when this datagram's own size in sequence units is unknown (a data set with
    an unknown template in IPFIX): then the next datagram is not checked.
    Arithmetic is modulo 2**32; a jump backwards or by 2**31 or more counts as a
    restart or reordering (0 lost) and resynchronises.
    """
    lost = 0
    if expected is not None:
        gap = (sequence - expected) % SEQUENCE_MODULUS
        if gap < MAX_PLAUSIBLE_GAP:
            lost = gap
    next_expected = None if increment is None else (sequence + increment) % SEQUENCE_MODULUS
    return lost, next_expected


def lost_records_estimate(version: int, lost_units: int, records: int, datagrams: int) -> int:
    """Records lost, from a sequence gap: exact for v5 and IPFIX; for v9 (which counts packets)
    lost packets times the mean records per datagram received so far, rounded."""
    if version != 9:
        return lost_units
    if datagrams == 0:
        return 0
    return round(lost_units * records / datagrams)


# Counters ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExporterStats:
    """Totals for one exporter since the listener started.

    `datagrams` counts every datagram received and decoded, malformed ones
    included, but not `queue_drops`.

    `records`, `packets` and `bytes` are of flow records only (options records
    are counted in `option_records`). `lost_records` is the estimate from
    sequence gaps; `queue_drops` are datagrams dropped because the decoder fell behind.
    """

    exporter: str
    datagrams: int = 0
    records: int = 0
    packets: int = 0
    bytes: int = 0
    option_records: int = 0
    malformed: int = 0
    skipped_sets: int = 0
    queue_drops: int = 0
    sequence_gaps: int = 0
    lost_records: int = 0
    callback_errors: int = 0
    decoder_errors: int = 0  # decoder bugs (not DecodeError), also counted in `malformed`


@dataclass(frozen=True, slots=True)
class ListenerStats:
    """A snapshot of the listener's counters; `kernel_drops` is from /proc/net/udp for our socket."""

    exporters: dict[str, ExporterStats]
    kernel_drops: int
    rcvbuf_bytes: int
    evicted_templates: int = 0  # templates forgotten by the per-exporter bounds (template floods)
    evicted_exporters: int = 0  # exporters whose templates were forgotten (spoofed sources past the bound)
    decode_errors: dict[str, int] | None = None  # by reason (DECODE_ERROR_REASONS); None from old snapshots
    worker_restarts: int = 0  # receiver or decoder threads restarted after dying (core.supervise)

    def total(self, name: str) -> int:
        """The sum of one ExporterStats field over every exporter."""
        return sum(int(getattr(stats, name)) for stats in self.exporters.values())


def _merged(into: ExporterStats, row: ExporterStats) -> ExporterStats:
    """`into` with every counter of `row` added (the exporter name of `into` kept)."""
    return replace(into, **{f.name: getattr(into, f.name) + getattr(row, f.name) for f in fields(ExporterStats) if f.name != "exporter"})


def _ip_of(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host = address[0]
    return host[7:] if host.startswith("::ffff:") else host


# The shell ---------------------------------------------------------------------------------------


class FlowListener:
    """A UDP NetFlow/IPFIX listener: `start()` binds and starts two threads, `stop()` joins them and closes.

    `on_flows` is called on the decoder thread once per exporter per decoded
    batch (one or more datagrams), batches in arrival order; records within a
    batch come grouped by template. Keep it short, or datagrams queue and then
    drop (counted). Construction does no I/O. Port 0 picks a free port; read
    `address` after `start()`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        rcvbuf_bytes: int = DEFAULT_RCVBUF_BYTES,
        on_flows: Callable[[ExporterFlows], None],
        queue_datagrams: int = DEFAULT_QUEUE_DATAGRAMS,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        udp_tables: Iterable[Path] = PROC_NET_UDP,
        workers: Workers = WORKERS,
    ) -> None:
        if queue_datagrams < 1:
            raise ValueError("queue_datagrams must be at least 1")
        self._host = host
        self._port = port
        self._requested_rcvbuf = rcvbuf_bytes
        self._on_flows = on_flows
        self._queue_datagrams = queue_datagrams
        self._queue_bytes = max(queue_bytes, MAX_DATAGRAM_BYTES + QUEUE_OVERHEAD_BYTES)  # room for the largest
        self._queued_bytes = 0  # bytes in the queue now: added by the receiver, released by the decoder
        self._queued_lock = threading.Lock()
        self._udp_tables = tuple(udp_tables)
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._workers = workers
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stats: OrderedDict[str, ExporterStats] = OrderedDict()  # least recently active first
        self._evictions = (0, 0)  # (templates, exporters) the decoder forgot; written by the decoder thread
        self._errors = dict.fromkeys(DECODE_ERROR_REASONS, 0)
        self._restarts = 0
        self._rcvbuf_bytes = 0
        self._inode = 0

    # lifecycle

    def start(self) -> None:
        """Bind the socket (SO_RCVBUF as large as allowed) and start the receiver and decoder threads.

        Raises:
            OSError: the address cannot be bound.
            RuntimeError: already started.
        """
        if self._sock is not None:
            raise RuntimeError("FlowListener already started")
        import collectors.flow.decode  # noqa: F401, PLC0415 - fail here, not in the decoder thread

        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._rcvbuf_bytes = _grow_rcvbuf(sock, self._requested_rcvbuf)
            sock.bind((self._host, self._port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._inode = os.fstat(sock.fileno()).st_ino
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping.clear()
        # Tokens of the datagram bound: the receiver takes one per queued datagram, the decoder gives it back.
        free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for token in range(self._queue_datagrams):
            free.put(token)
        self._queued_bytes = 0
        filled: queue.SimpleQueue[tuple[int, bytes, str] | None] = queue.SimpleQueue()
        # Supervised: a thread that dies anyway is restarted, counted and logged (core.supervise); the
        # receiver's end marker is sent only when stopping, so a restarted receiver does not end the decoder.
        self._threads = [
            supervised_thread("flow-receiver", lambda: self._receive(free, filled), stopping=self._stopping,
                              workers=self._workers),
            supervised_thread("flow-decoder", lambda: self._decode(free, filled), stopping=self._stopping,
                              workers=self._workers),
        ]
        for thread in self._threads:
            thread.start()
        log.info("flow listener on %s:%d, receive buffer %d bytes", *self.address[:2], self._rcvbuf_bytes)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop receiving, decode what is already queued, join both threads and close the socket."""
        if self._sock is None:
            return
        self._stopping.set()
        assert self._wake_w is not None
        self._wake_w.send(b"x")
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        for sock in (self._sock, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._sock = self._wake_r = self._wake_w = None

    def __enter__(self) -> FlowListener:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # state

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port).

        Raises:
            RuntimeError: not started.
        """
        if self._sock is None:
            raise RuntimeError("FlowListener not started")
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def rcvbuf_bytes(self) -> int:
        """The socket's effective receive buffer in bytes, as getsockopt(SO_RCVBUF) reports it
        (Linux doubles the requested value for its bookkeeping)."""
        return self._rcvbuf_bytes

    @property
    def running(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on our socket (receive buffer full), from /proc/net/udp(6)."""
        for row in read_udp_sockets(self._udp_tables):
            if row.inode == self._inode:
                return row.drops
        return 0

    def stats(self) -> ListenerStats:
        """A consistent snapshot of the counters, safe to call from any thread."""
        with self._lock:
            exporters = dict(self._stats)
            evicted_templates, evicted_exporters = self._evictions
            errors = dict(self._errors)
        restarts = self._workers.restarts("flow-receiver") + self._workers.restarts("flow-decoder")
        return ListenerStats(exporters, self.kernel_drops() if self._sock else 0, self._rcvbuf_bytes,
                             evicted_templates, evicted_exporters, errors, restarts)

    def _exporter(self, exporter: str) -> ExporterStats:
        """The counters of `exporter` (caller holds the lock and stores the updated row under `.exporter`).

        At most MAX_EXPORTER_STATS rows: past that, the row of the exporter silent the longest is folded into
        OTHER_EXPORTERS, so spoofed sources that send once cannot push out a real exporter that sends all along.
        """
        stats = self._stats
        current = stats.get(exporter)
        if current is not None:
            stats.move_to_end(exporter)
            return current
        if exporter != OTHER_EXPORTERS and len(stats) - (OTHER_EXPORTERS in stats) >= MAX_EXPORTER_STATS:
            oldest = next(key for key in stats if key != OTHER_EXPORTERS)
            stats[OTHER_EXPORTERS] = _merged(stats.get(OTHER_EXPORTERS) or ExporterStats(OTHER_EXPORTERS), stats.pop(oldest))
        return ExporterStats(exporter)

    def _error(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self._errors[reason] += count

    def _count(self, exporter: str, **increments: int) -> None:
        with self._lock:
            current = self._exporter(exporter)
            self._stats[current.exporter] = replace(
                current, **{name: getattr(current, name) + value for name, value in increments.items()}
            )

    # threads

    def _receive(self, free: queue.SimpleQueue[int], filled: queue.SimpleQueue[tuple[int, bytes, str] | None]) -> None:
        """Copy datagrams off the socket into the queue; past its bounds (datagrams, bytes), count a queue drop."""
        assert self._sock is not None and self._wake_r is not None
        sock = self._sock
        scratch = memoryview(bytearray(MAX_DATAGRAM_BYTES))
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        token: int | None = None
        try:
            while not self._stopping.is_set():
                selector.select()
                token = self._drain_socket(sock, scratch, free, filled, token)
        finally:
            selector.close()
            if self._stopping.is_set():
                filled.put(None)  # the decoder's end marker; after a crash the supervisor restarts this loop instead

    def _drain_socket(
        self,
        sock: socket.socket,
        scratch: memoryview,
        free: queue.SimpleQueue[int],
        filled: queue.SimpleQueue[tuple[int, bytes, str] | None],
        token: int | None,
    ) -> int | None:
        """Queue every datagram the socket holds (until it would block, or the listener stops), each with a token
        of the datagram bound; return the token taken but not yet used, if any."""
        while not self._stopping.is_set():
            if token is None:
                try:
                    token = free.get_nowait()
                except queue.Empty:
                    token = None
            try:
                size, address = sock.recvfrom_into(scratch)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.ECONNREFUSED):
                    continue
                raise
            exporter = _ip_of(address)
            if token is not None and self._reserve_bytes(size + QUEUE_OVERHEAD_BYTES):
                filled.put((token, bytes(scratch[:size]), exporter))
                token = None
            else:
                self._count(exporter, queue_drops=1)
        return token

    def _reserve_bytes(self, charge: int) -> bool:
        """Charge `charge` bytes to the queue's byte bound if they fit; whether they did."""
        with self._queued_lock:
            if self._queued_bytes + charge > self._queue_bytes:
                return False
            self._queued_bytes += charge
            return True

    def _decode(self, free: queue.SimpleQueue[int], filled: queue.SimpleQueue[tuple[int, bytes, str] | None]) -> None:
        """Decode queued datagrams, a drained batch at a time, until the receiver's end marker."""
        from collectors.flow.batch import BatchDecoder  # noqa: PLC0415 - numpy (the flow extra) is loaded only once a listener runs

        decoder = BatchDecoder()
        expected: dict[tuple[str, int, int], int | None] = {}
        base = self._evictions  # after a restart (core.supervise) the counts go on from where they were
        done = False
        while not done:
            batch, done = self._next_batch(free, filled)
            if batch:
                self._decode_batch(decoder, batch, expected, base)

    def _next_batch(
        self, free: queue.SimpleQueue[int], filled: queue.SimpleQueue[tuple[int, bytes, str] | None]
    ) -> tuple[list[tuple[str, bytes]], bool]:
        """Wait for one queued datagram, then take what else is queued, up to MAX_BATCH_DATAGRAMS, without waiting;
        their tokens and bytes go back to the receiver. Returns ((exporter, datagram) pairs, end marker reached)."""
        item = filled.get()
        batch: list[tuple[str, bytes]] = []
        released = 0
        while item is not None:
            token, datagram, exporter = item
            batch.append((exporter, datagram))
            released += len(datagram) + QUEUE_OVERHEAD_BYTES
            free.put(token)
            if len(batch) >= MAX_BATCH_DATAGRAMS:
                break
            try:
                item = filled.get_nowait()
            except queue.Empty:
                break
        if released:
            with self._queued_lock:
                self._queued_bytes -= released
        return batch, item is None

    def _decode_batch(
        self,
        decoder: BatchDecoder,
        batch: list[tuple[str, bytes]],
        expected: dict[tuple[str, int, int], int | None],
        base: tuple[int, int],
    ) -> None:
        """Decode one batch, count it (evictions since `base`, failures, sequence gaps) and hand its flows on."""
        try:
            result = decoder.decode(batch)
        except Exception:
            log.exception("decoding a batch of %d datagrams failed; the batch is dropped and counted", len(batch))
            self._error("decoder_bug", len(batch))
            for exporter in {exporter for exporter, _ in batch}:
                self._count(exporter, decoder_errors=1, malformed=1)
            return
        evictions = (base[0] + decoder.evicted_templates, base[1] + decoder.evicted_exporters)
        if evictions != self._evictions:
            with self._lock:
                self._evictions = evictions
        for exporter, error in result.failed_sets:
            log.warning("records from %s left out: %s", exporter, error)
            self._error("failed_set")
            self._count(exporter, decoder_errors=1)
        self._account(result, expected)
        self._deliver(result)

    def _deliver(self, result: BatchResult) -> None:
        """Call `on_flows` once per exporter of the batch; a callback that raises is logged and counted."""
        for flows in result.exporters.values():
            try:
                self._on_flows(flows)
            except Exception:
                log.exception("on_flows failed for records from %s", flows.exporter)
                self._error("callback")
                self._count(flows.exporter, callback_errors=1)

    def _account(self, result: BatchResult, expected: dict[tuple[str, int, int], int | None]) -> None:
        """Add one decoded batch to its exporters' counters, sequence gaps included."""
        from collectors.flow.model import DecodeError  # noqa: PLC0415 - numpy (the flow extra) is loaded only once a listener runs

        with self._lock:
            stats = self._stats
            for sender, item in zip(result.senders, result.datagrams, strict=True):
                current = self._exporter(sender)
                if isinstance(item, DecodeError):
                    stats[current.exporter] = self._counted_malformed(current, item)
                else:
                    stats[current.exporter] = _counted_datagram(current, item, expected)
            self._add_packets(result)

    def _counted_malformed(self, current: ExporterStats, error: DecodeError) -> ExporterStats:
        """`current` with one malformed datagram added (caller holds the lock); a decoder bug is logged as an error."""
        from collectors.flow.batch import DecoderBugError  # noqa: PLC0415 - numpy (the flow extra) is loaded only once a listener runs

        bug = isinstance(error, DecoderBugError)
        self._errors["decoder_bug" if bug else "malformed"] += 1
        if bug:
            log.error("decoder failed on a datagram from %s; counted as malformed", current.exporter, exc_info=error.__cause__)
        else:
            log.debug("malformed datagram from %s dropped: %s", current.exporter, error)
        return replace(
            current, datagrams=current.datagrams + 1, malformed=current.malformed + 1,
            decoder_errors=current.decoder_errors + (1 if bug else 0),
        )  # fmt: skip

    def _add_packets(self, result: BatchResult) -> None:
        """Add the batch's packets and bytes to its exporters' rows (caller holds the lock)."""
        stats = self._stats
        for sender, flows in result.exporters.items():
            if len(flows.flows):
                # Every sender got its row in `_account`; one missing now was folded into OTHER_EXPORTERS by a later
                # sender of this batch, and its packets go there too (making it a row again would fold another).
                current = stats.get(sender) or stats.get(OTHER_EXPORTERS) or ExporterStats(OTHER_EXPORTERS)
                stats[current.exporter] = replace(
                    current,
                    packets=current.packets + int(flows.flows["packets"].sum()),
                    bytes=current.bytes + int(flows.flows["bytes"].sum()),
                )


def _counted_datagram(current: ExporterStats, item: Decoded, expected: dict[tuple[str, int, int], int | None]) -> ExporterStats:
    """`current` with one decoded datagram added: its records, options records, skipped sets and sequence gap.

    `expected` holds the next sequence number of each (exporter, version, domain) stream, at most
    MAX_SEQUENCE_KEYS of them (random domain ids must not grow it without end); counted exporters only.
    """
    records = item.record_count
    units = 0
    if item.sequence is not None and current.exporter != OTHER_EXPORTERS:  # bounded: counted exporters only
        key = (current.exporter, item.version, item.domain)
        increment = sequence_increment(item.version, records, len(item.options))
        if item.version == 10 and item.skipped_sets:
            increment = None  # records in sets we cannot decode are invisible
        if key not in expected and len(expected) >= MAX_SEQUENCE_KEYS:
            del expected[next(iter(expected))]
        units, expected[key] = sequence_advance(expected.get(key), item.sequence, increment)
    datagrams = current.datagrams + 1
    total_records = current.records + records
    return replace(
        current,
        datagrams=datagrams,
        records=total_records,
        option_records=current.option_records + len(item.options),
        skipped_sets=current.skipped_sets + item.skipped_sets,
        sequence_gaps=current.sequence_gaps + (1 if units else 0),
        lost_records=current.lost_records + lost_records_estimate(item.version, units, total_records, datagrams),
    )


def _grow_rcvbuf(sock: socket.socket, requested: int) -> int:
    """Set the receive buffer to `requested` bytes, past net.core.rmem_max when privileged
    (SO_RCVBUFFORCE needs CAP_NET_ADMIN), else as far as rmem_max allows; return the effective size."""
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, requested)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, requested)
    effective = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    if effective < requested:
        log.warning(
            "receive buffer is %d bytes, less than the %d asked for; raise net.core.rmem_max", effective, requested
        )
    return int(effective)
