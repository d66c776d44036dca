"""Receive NetFlow v5/v9 and IPFIX over UDP and hand the decoded records to a callback.

The shell around the pure decoder (`collectors.flow.batch`): a receiver thread
that only copies datagrams off the socket into a preallocated ring of buffers
(`DatagramRing`, memory given by the kernel only as datagrams fill it),
and a decoder thread that drains whatever has queued (up to `MAX_BATCH_DATAGRAMS`)
and decodes it as one batch, so that numpy's per-call overhead is paid per
exporter and template, not per datagram. The two threads are split so that a
slow decode (or a slow `on_flows`) costs queued datagrams, counted as
`queue_drops`, instead of kernel drops; both are counted.

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
import mmap
import os
import queue
import selectors
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collectors.flow.batch import BatchResult, ExporterFlows

log = logging.getLogger(__name__)

DEFAULT_RCVBUF_BYTES = 32 * 1024 * 1024
DEFAULT_QUEUE_DATAGRAMS = 4096
MAX_BATCH_DATAGRAMS = 512  # datagrams decoded together; a batch is drained from the queue, never waited for
MAX_DATAGRAM_BYTES = 65535
SLOT_BYTES = 65536  # one ring slot per datagram, page-aligned so that its pages can be handed back
RESIDENT_SLOT_BYTES = 4096  # pages of a slot past this are handed back after a larger datagram (exports fit in one)
SEQUENCE_MODULUS = 2**32
# Exporters with counters of their own; past this (spoofed sources) the oldest are folded into OTHER_EXPORTERS,
# so the counters, and the flow_receiver series the collector makes of them, stay bounded.
MAX_EXPORTER_STATS = 1024
OTHER_EXPORTERS = "(other)"
# Sequence streams (exporter, version, domain) followed for loss; past this the oldest is forgotten (it resyncs).
MAX_SEQUENCE_STREAMS = 4096
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


_COUNTER_FIELDS = tuple(name for name in ExporterStats.__dataclass_fields__ if name != "exporter")


@dataclass(frozen=True, slots=True)
class ListenerStats:
    """A snapshot of the listener's counters; `kernel_drops` is from /proc/net/udp for our socket."""

    exporters: dict[str, ExporterStats]
    kernel_drops: int
    rcvbuf_bytes: int
    evicted_templates: int = 0  # templates forgotten by the per-exporter bounds (template floods)
    evicted_exporters: int = 0  # exporters whose templates were forgotten (spoofed sources past the bound)

    def total(self, name: str) -> int:
        """The sum of one ExporterStats field over every exporter."""
        return sum(int(getattr(stats, name)) for stats in self.exporters.values())


def _ip_of(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host = address[0]
    return host[7:] if host.startswith("::ffff:") else host


# The shell ---------------------------------------------------------------------------------------


class DatagramRing:
    """`slots` receive buffers of 64 KiB in one anonymous memory mapping.

    The kernel backs a page only once a datagram is written into it, and after a
    datagram longer than RESIDENT_SLOT_BYTES the slot's further pages are handed
    back (madvise MADV_DONTNEED), so the ring stays resident at about slots x 4 KiB
    plus the large datagrams in flight. A ring of zero-filled bytearrays was
    4,096 x 64 KiB = 268 MB resident from the first second (fuzz campaign, tests/fuzz).
    """

    def __init__(self, slots: int) -> None:
        self._map = mmap.mmap(-1, slots * SLOT_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        whole = memoryview(self._map)
        self.views = [whole[slot * SLOT_BYTES : (slot + 1) * SLOT_BYTES] for slot in range(slots)]

    def __len__(self) -> int:
        return len(self.views)

    def take(self, slot: int, size: int) -> bytes:
        """A copy of the `size` bytes received into `slot`; the slot may then be refilled."""
        data = bytes(self.views[slot][:size])
        if size > RESIDENT_SLOT_BYTES:
            start = slot * SLOT_BYTES + RESIDENT_SLOT_BYTES
            self._map.madvise(mmap.MADV_DONTNEED, start, SLOT_BYTES - RESIDENT_SLOT_BYTES)
        return data



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
        udp_tables: Iterable[Path] = PROC_NET_UDP,
        max_exporter_stats: int = MAX_EXPORTER_STATS,
    ) -> None:
        if queue_datagrams < 1:
            raise ValueError("queue_datagrams must be at least 1")
        self._host = host
        self._port = port
        self._requested_rcvbuf = rcvbuf_bytes
        self._on_flows = on_flows
        self._queue_datagrams = queue_datagrams
        self._udp_tables = tuple(udp_tables)
        self._sock: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stats: dict[str, ExporterStats] = {}
        self._max_exporter_stats = max(2, max_exporter_stats)
        self._evictions = (0, 0)  # (templates, exporters) the decoder forgot; written by the decoder thread
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
        import collectors.flow.decode  # noqa: F401  (fail here, not in the decoder thread)

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
        # Slots of the ring: the receiver takes a free one, the decoder gives it back.
        buffers = DatagramRing(self._queue_datagrams)
        free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(len(buffers)):
            free.put(slot)
        filled: queue.SimpleQueue[tuple[int, int, str] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._receive, args=(buffers, free, filled), name="flow-receiver", daemon=True),
            threading.Thread(target=self._decode, args=(buffers, free, filled), name="flow-decoder", daemon=True),
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
        return ListenerStats(exporters, self.kernel_drops() if self._sock else 0, self._rcvbuf_bytes,
                             evicted_templates, evicted_exporters)

    def _entry(self, exporter: str) -> ExporterStats:
        """The counters of `exporter` (new ones start at 0); called with the lock held. Making room for a new
        exporter folds the oldest one's counters into OTHER_EXPORTERS."""
        stats = self._stats
        current = stats.get(exporter)
        if current is not None:
            return current
        if len(stats) >= self._max_exporter_stats:
            other = stats.pop(OTHER_EXPORTERS, None) or ExporterStats(OTHER_EXPORTERS)
            while len(stats) >= self._max_exporter_stats - 1:  # room for OTHER_EXPORTERS and the new one
                folded = stats.pop(next(iter(stats)))
                other = replace(other, **{name: getattr(other, name) + getattr(folded, name) for name in _COUNTER_FIELDS})
            stats[OTHER_EXPORTERS] = other
        return ExporterStats(exporter)

    def _count(self, exporter: str, **increments: int) -> None:
        with self._lock:
            current = self._entry(exporter)
            self._stats[exporter] = replace(
                current, **{name: getattr(current, name) + value for name, value in increments.items()}
            )

    # threads

    def _receive(
        self,
        buffers: DatagramRing,
        free: queue.SimpleQueue[int],
        filled: queue.SimpleQueue[tuple[int, int, str] | None],
    ) -> None:
        """Copy datagrams into free ring slots; with no free slot, read into scratch and count a queue drop."""
        assert self._sock is not None and self._wake_r is not None
        sock = self._sock
        views = buffers.views
        scratch = memoryview(bytearray(MAX_DATAGRAM_BYTES))
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        slot: int | None = None
        try:
            while not self._stopping.is_set():
                selector.select()
                while not self._stopping.is_set():
                    if slot is None:
                        try:
                            slot = free.get_nowait()
                        except queue.Empty:
                            slot = None
                    target = scratch if slot is None else views[slot]
                    try:
                        size, address = sock.recvfrom_into(target)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno in (errno.EINTR, errno.ECONNREFUSED):
                            continue
                        raise
                    exporter = _ip_of(address)
                    if slot is None:
                        self._count(exporter, queue_drops=1)
                    else:
                        filled.put((slot, size, exporter))
                        slot = None
        finally:
            selector.close()
            filled.put(None)

    def _decode(
        self,
        buffers: DatagramRing,
        free: queue.SimpleQueue[int],
        filled: queue.SimpleQueue[tuple[int, int, str] | None],
    ) -> None:
        """Decode queued datagrams, a drained batch at a time, until the receiver's end marker."""
        from collectors.flow.batch import BatchDecoder

        decoder = BatchDecoder()
        expected: dict[tuple[str, int, int], int | None] = {}
        done = False
        while not done:
            item = filled.get()
            batch: list[tuple[str, bytes]] = []
            while item is not None:
                slot, size, exporter = item
                batch.append((exporter, buffers.take(slot, size)))
                free.put(slot)
                if len(batch) >= MAX_BATCH_DATAGRAMS:
                    break
                try:
                    item = filled.get_nowait()
                except queue.Empty:
                    break
            done = item is None
            if not batch:
                continue
            try:
                result = decoder.decode(batch)
            except Exception:  # noqa: BLE001 - hostile input must never stop the decoder thread
                log.exception("decoding a batch of %d datagrams failed; the batch is dropped and counted", len(batch))
                for exporter in {exporter for exporter, _ in batch}:
                    self._count(exporter, decoder_errors=1, malformed=1)
                continue
            evictions = (decoder.evicted_templates, decoder.evicted_exporters)
            if evictions != self._evictions:
                with self._lock:
                    self._evictions = evictions
            for exporter, error in result.failed_sets:
                log.warning("records from %s left out: %s", exporter, error)
                self._count(exporter, decoder_errors=1)
            self._account(result, expected)
            for flows in result.exporters.values():
                try:
                    self._on_flows(flows)
                except Exception:  # noqa: BLE001 - isolates the consumer: a bad callback must not stop the listener
                    log.exception("on_flows failed for records from %s", flows.exporter)
                    self._count(flows.exporter, callback_errors=1)

    def _account(self, result: BatchResult, expected: dict[tuple[str, int, int], int | None]) -> None:
        """Add one decoded batch to its exporters' counters, sequence gaps included."""
        from collectors.flow.batch import DecoderBugError
        from collectors.flow.model import DecodeError

        with self._lock:
            stats = self._stats
            for exporter, item in zip(result.senders, result.datagrams, strict=True):
                current = self._entry(exporter)
                if isinstance(item, DecodeError):
                    bug = isinstance(item, DecoderBugError)
                    if bug:
                        log.error("decoder failed on a datagram from %s; counted as malformed", exporter, exc_info=item.__cause__)
                    else:
                        log.debug("malformed datagram from %s dropped: %s", exporter, item)
                    stats[exporter] = replace(
                        current, datagrams=current.datagrams + 1, malformed=current.malformed + 1,
                        decoder_errors=current.decoder_errors + (1 if bug else 0),
                    )  # fmt: skip
                    continue
                records = item.record_count
                units = 0
                if item.sequence is not None:
                    key = (exporter, item.version, item.domain)
                    increment = sequence_increment(item.version, records, len(item.options))
                    if item.version == 10 and item.skipped_sets:
                        increment = None  # records in sets we cannot decode are invisible
                    if key not in expected and len(expected) >= MAX_SEQUENCE_STREAMS:
                        del expected[next(iter(expected))]  # random domains from spoofed sources: the oldest goes
                    units, expected[key] = sequence_advance(expected.get(key), item.sequence, increment)
                datagrams = current.datagrams + 1
                total_records = current.records + records
                stats[exporter] = replace(
                    current,
                    datagrams=datagrams,
                    records=total_records,
                    option_records=current.option_records + len(item.options),
                    skipped_sets=current.skipped_sets + item.skipped_sets,
                    sequence_gaps=current.sequence_gaps + (1 if units else 0),
                    lost_records=current.lost_records + lost_records_estimate(item.version, units, total_records, datagrams),
                )
            for exporter, flows in result.exporters.items():
                if len(flows.flows):
                    name = exporter if exporter in stats else OTHER_EXPORTERS  # folded within this batch
                    current = stats[name]
                    stats[name] = replace(
                        current,
                        packets=current.packets + int(flows.flows["packets"].sum()),
                        bytes=current.bytes + int(flows.flows["bytes"].sum()),
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
