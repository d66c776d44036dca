"""FlowListener: pure helpers on exact inputs, the UDP shell on real loopback sockets, and `egovmon flow`.

Fixture datagrams are the real exporter payloads in tests/fixtures/flows (Apache-2.0 copies)
(SOURCES.md there says which exporter produced each).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.flow import flow_app
from collectors.flow.listener import (
    ExporterStats,
    FlowListener,
    UdpSocketRow,
    lost_records_estimate,
    parse_proc_net_udp,
    read_udp_sockets,
    sequence_advance,
    sequence_increment,
)
from tests.services import wait_until

# The logstash .dat files are copied into the repository (Apache-2.0), so these tests run anywhere.
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "flows"
NETFLOW5 = FIXTURES / "netflow5.dat"
TIMEOUT = 10.0

# A real /proc/net/udp (Debian 12, kernel 6.1): a bound 127.0.0.1:39555, a 0.0.0.0:68 with drops.
PROC_NET_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
15312: 0100007F:9A83 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 105447 2 00000000d307fe2b 0        
  420: 00000000:0044 00000000:0000 07 00000000:00000A40 00:00000000 00000000     0        0 98765 2 0000000012345678 17       
"""  # noqa: W291 - the kernel pads these lines with spaces
PROC_NET_UDP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1037: 00000000000000000000000001000000:0202 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 00000000abcdef01 3
"""  # noqa: E501 - a real kernel line


# Pure helpers -------------------------------------------------------------------------------------


def test_parse_proc_net_udp_reads_port_inode_queue_and_drops() -> None:
    assert parse_proc_net_udp(PROC_NET_UDP) == (
        UdpSocketRow(local_port=39555, inode=105447, rx_queue_bytes=0, drops=0),
        UdpSocketRow(local_port=68, inode=98765, rx_queue_bytes=0xA40, drops=17),
    )
    assert parse_proc_net_udp(PROC_NET_UDP6) == (UdpSocketRow(local_port=514, inode=4242, rx_queue_bytes=0, drops=3),)
    assert parse_proc_net_udp("") == ()


def test_read_udp_sockets_joins_tables_and_ignores_missing_files(tmp_path: Path) -> None:
    (tmp_path / "udp").write_text(PROC_NET_UDP)
    (tmp_path / "udp6").write_text(PROC_NET_UDP6)
    rows = read_udp_sockets([tmp_path / "udp", tmp_path / "udp6", tmp_path / "absent"])
    assert [(row.local_port, row.drops) for row in rows] == [(39555, 0), (68, 17), (514, 3)]


def test_read_udp_sockets_sees_kernel_drops_of_a_real_socket() -> None:
    """A socket with the smallest buffer, never read: the kernel drops what does not fit and says so."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # clamped to the kernel's minimum
        sink.bind(("127.0.0.1", 0))
        inode = os.fstat(sink.fileno()).st_ino
        for _ in range(50):
            src.sendto(b"x" * 1000, sink.getsockname())
        row = next(row for row in read_udp_sockets() if row.inode == inode)
        assert row.local_port == sink.getsockname()[1]
        assert 0 < row.drops <= 50


@pytest.mark.parametrize(
    ("version", "flows", "options", "increment"),
    [(5, 29, 0, 29), (9, 24, 4, 1), (10, 23, 4, 27), (10, 0, 0, 0), (7, 3, 0, None)],
)
def test_sequence_increment_in_units_of_each_version(version: int, flows: int, options: int, increment: int | None) -> None:
    assert sequence_increment(version, flows, options) == increment


@pytest.mark.parametrize(
    ("expected", "sequence", "increment", "result"),
    [
        (None, 1000, 29, (0, 1029)),  # first datagram of a stream: nothing to compare
        (1029, 1029, 29, (0, 1058)),  # in order
        (1058, 1100, 10, (42, 1110)),  # 42 units lost before this one
        (2**32 - 5, 3, 2, (8, 5)),  # gap across the 32-bit wrap
        (2**32 - 5, 2**32 - 5, 10, (0, 5)),  # the next expected wraps too
        (5000, 10, 1, (0, 11)),  # backwards: exporter restarted, resynchronise
        (1000, 1000 + 2**31, 1, (0, (1001 + 2**31) % 2**32)),  # implausible jump: resynchronise
        (1000, 1010, None, (10, None)),  # this datagram's own size unknown: next one not checked
    ],
)
def test_sequence_advance(expected: int | None, sequence: int, increment: int | None, result: tuple[int, int | None]) -> None:
    assert sequence_advance(expected, sequence, increment) == result


@pytest.mark.parametrize(
    ("version", "lost_units", "records", "datagrams", "estimate"),
    [(5, 58, 290, 10, 58), (10, 27, 0, 0, 27), (9, 2, 300, 10, 60), (9, 1, 7, 3, 2), (9, 3, 0, 0, 0)],
)
def test_lost_records_estimate(version: int, lost_units: int, records: int, datagrams: int, estimate: int) -> None:
    assert lost_records_estimate(version, lost_units, records, datagrams) == estimate


# Independent ground truth for netflow5.dat: NetFlow v5 read with struct ------------------------------


def _v5_datagrams(data: bytes) -> list[bytes]:
    """Split concatenated v5 datagrams on 24 + 48 * count bytes."""
    out = []
    while data:
        count = struct.unpack_from("!H", data, 2)[0]
        size = 24 + 48 * count
        out.append(data[:size])
        data = data[size:]
    return out


def _v5_flows(datagram: bytes) -> list[tuple[str, str, int, int, int, int, int]]:
    """(src, dst, src_port, dst_port, protocol, packets, bytes) of each v5 record."""
    count = struct.unpack_from("!H", datagram, 2)[0]
    flows = []
    for i in range(count):
        rec = datagram[24 + 48 * i : 72 + 48 * i]
        src, dst = (str(ipaddress.IPv4Address(rec[a : a + 4])) for a in (0, 4))
        packets, octets = struct.unpack_from("!II", rec, 16)
        sport, dport = struct.unpack_from("!HH", rec, 32)
        flows.append((src, dst, sport, dport, rec[38], packets, octets))
    return flows


NETFLOW5_DATAGRAMS = _v5_datagrams(NETFLOW5.read_bytes())
NETFLOW5_FLOWS = [flow for datagram in NETFLOW5_DATAGRAMS for flow in _v5_flows(datagram)]


def test_netflow5_fixture_is_what_sources_md_says() -> None:
    assert [struct.unpack_from("!H", d, 2)[0] for d in NETFLOW5_DATAGRAMS] == [2, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2]
    # The per-datagram counts SOURCES.md lists add up to 30 flows.
    assert len(NETFLOW5_FLOWS) == 30


# The UDP shell ------------------------------------------------------------------------------------


@pytest.fixture
def listener() -> Iterator[FlowListener]:
    flow_listener = FlowListener("127.0.0.1", 0, on_flows=lambda decoded: None)
    flow_listener.start()
    yield flow_listener
    flow_listener.stop()


def _sender(source_ip: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source_ip, 0))
    return sock


def _stats_of(listener: FlowListener, exporter: str) -> ExporterStats:
    return listener.stats().exporters.get(exporter) or ExporterStats(exporter)


def test_start_binds_a_free_port_with_a_large_receive_buffer(listener: FlowListener) -> None:
    host, port = listener.address
    assert host == "127.0.0.1" and port > 0
    requested = 32 * 1024 * 1024
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    # Linux doubles the value it is given; past rmem_max only with CAP_NET_ADMIN (SO_RCVBUFFORCE).
    assert listener.rcvbuf_bytes in {2 * requested, 2 * min(requested, rmem_max)}
    assert listener.running
    assert listener.kernel_drops() == 0


def test_construction_does_no_io() -> None:
    idle = FlowListener("127.0.0.1", 0, on_flows=lambda decoded: None)
    with pytest.raises(RuntimeError):
        idle.address  # noqa: B018
    idle.stop()  # stopping what never started is harmless


def test_netflow5_datagrams_over_udp_are_counted_exactly(listener: FlowListener) -> None:
    from collectors.flow.decode import read_datagrams

    payloads = [payload for _, payload in read_datagrams(NETFLOW5)]
    assert payloads == NETFLOW5_DATAGRAMS
    with _sender() as sock:
        for payload in payloads:
            sock.sendto(payload, listener.address)
        stats = wait_until(
            lambda: (s := _stats_of(listener, "127.0.0.1")).datagrams == 12 and s, TIMEOUT, "12 datagrams"
        )
    assert (stats.records, stats.packets, stats.bytes) == (
        30,
        sum(flow[5] for flow in NETFLOW5_FLOWS),
        sum(flow[6] for flow in NETFLOW5_FLOWS),
    )
    assert (stats.malformed, stats.skipped_sets, stats.queue_drops, stats.option_records) == (0, 0, 0, 0)
    assert (stats.sequence_gaps, stats.lost_records) == (0, 0)  # softflowd's flow_sequence is contiguous


def test_a_missing_v5_datagram_is_counted_as_lost_flows(listener: FlowListener) -> None:
    with _sender() as sock:
        for index, payload in enumerate(NETFLOW5_DATAGRAMS):
            if index != 3:  # 4 flows
                sock.sendto(payload, listener.address)
        stats = wait_until(lambda: (s := _stats_of(listener, "127.0.0.1")).datagrams == 11 and s, TIMEOUT, "11")
    assert (stats.records, stats.sequence_gaps, stats.lost_records) == (26, 1, 4)


def _fixture_families() -> dict[str, list[Path]]:
    """The *.dat fixtures grouped by exporter, template files first (they must precede their data)."""
    families: dict[str, list[Path]] = {}
    for path in sorted(FIXTURES.glob("*.dat")):
        family = re.sub(r"_(opttpl|tpl|data)\w*$", "", path.stem)
        families.setdefault(family, []).append(path)
    return {name: sorted(paths, key=lambda p: "tpl" not in p.stem) for name, paths in families.items()}


def test_every_fixture_exporter_decoded_as_the_pure_decoder_does(listener: FlowListener) -> None:
    """Each fixture exporter sends from its own loopback address, so template ids do not collide."""
    from collectors.flow.decode import TemplateCache, decode, read_datagrams
    from collectors.flow.model import DecodeError

    families = _fixture_families()
    assert len(families) >= 20
    expected: dict[str, ExporterStats] = {}
    for index, paths in enumerate(families.values()):
        exporter = f"127.0.0.{index + 2}"
        cache = TemplateCache()
        totals = dict(datagrams=0, records=0, packets=0, bytes=0, option_records=0, malformed=0, skipped_sets=0)
        with _sender(exporter) as sock:
            for path in paths:
                for _, payload in read_datagrams(path):
                    sock.sendto(payload, listener.address)
                    totals["datagrams"] += 1
                    try:
                        decoded = decode(payload, exporter, cache.mapping())
                    except DecodeError:
                        totals["malformed"] += 1
                        continue
                    cache.apply(decoded)
                    totals["records"] += len(decoded.flows)
                    totals["packets"] += int(decoded.flows["packets"].sum())
                    totals["bytes"] += int(decoded.flows["bytes"].sum())
                    totals["option_records"] += len(decoded.options)
                    totals["skipped_sets"] += decoded.skipped_sets
        expected[exporter] = ExporterStats(exporter, **totals)
    sent = sum(stats.datagrams for stats in expected.values())
    wait_until(lambda: listener.stats().total("datagrams") == sent, TIMEOUT, f"{sent} datagrams")
    got = listener.stats().exporters
    fields = ("datagrams", "records", "packets", "bytes", "option_records", "malformed", "skipped_sets", "queue_drops")
    assert {e: tuple(getattr(s, f) for f in fields) for e, s in got.items()} == {
        e: tuple(getattr(s, f) for f in fields) for e, s in expected.items()
    }
    assert sum(stats.records for stats in got.values()) > 30


def test_garbage_is_counted_as_malformed_and_the_listener_keeps_decoding(listener: FlowListener) -> None:
    rng = random.Random(7)
    garbage = [
        b"",
        b"\xff\xff" + bytes(rng.randrange(256) for _ in range(200)),  # no such version
        bytes(rng.randrange(256) for _ in range(3)),
        NETFLOW5_DATAGRAMS[1][:10],  # v5 header cut short
        NETFLOW5_DATAGRAMS[1][:24 + 48 + 20],  # says 4 records, carries one and a half
    ]
    with _sender() as sock:
        for payload in garbage:
            sock.sendto(payload, listener.address)
        wait_until(lambda: _stats_of(listener, "127.0.0.1").malformed == len(garbage), TIMEOUT, "malformed count")
        assert listener.running
        sock.sendto(NETFLOW5_DATAGRAMS[0], listener.address)
        stats = wait_until(
            lambda: (s := _stats_of(listener, "127.0.0.1")).records == 2 and s, TIMEOUT, "a good datagram afterwards"
        )
    assert (stats.datagrams, stats.malformed, stats.records, stats.queue_drops) == (6, 5, 2, 0)


def test_the_queue_is_bounded_in_bytes_too() -> None:
    """The decoder is held in on_flows; the queue's byte bound (the smallest allowed: one 64 KB datagram) holds as
    many datagrams as fit when each is charged its size plus the overhead, and the rest of a burst drops, counted."""
    from collectors.flow.listener import MAX_DATAGRAM_BYTES, QUEUE_OVERHEAD_BYTES

    entered, release = threading.Event(), threading.Event()

    def slow(decoded: object) -> None:
        entered.set()
        release.wait(TIMEOUT)

    datagram = max(NETFLOW5_DATAGRAMS, key=len)
    fits = (MAX_DATAGRAM_BYTES + QUEUE_OVERHEAD_BYTES) // (len(datagram) + QUEUE_OVERHEAD_BYTES)
    burst = fits + 50
    flow_listener = FlowListener("127.0.0.1", 0, on_flows=slow, queue_bytes=1)
    flow_listener.start()
    try:
        with _sender() as sock:
            sock.sendto(datagram, flow_listener.address)
            wait_until(entered.is_set, TIMEOUT, "the decoder to be held")
            for _ in range(burst):
                sock.sendto(datagram, flow_listener.address)
            wait_until(lambda: _stats_of(flow_listener, "127.0.0.1").queue_drops >= burst - fits, TIMEOUT, "drops")
            release.set()
            stats = wait_until(
                lambda: (s := _stats_of(flow_listener, "127.0.0.1")).datagrams + s.queue_drops == burst + 1 and s,
                TIMEOUT,
                "every datagram accounted for",
            )
            assert (stats.queue_drops, stats.datagrams) == (burst - fits, fits + 1)
        assert flow_listener.kernel_drops() == 0
    finally:
        release.set()
        flow_listener.stop()


def test_a_burst_larger_than_the_queue_is_counted_as_queue_drops() -> None:
    """The decoder is held in on_flows; a queue of one datagram can hold one more datagram, the rest drop."""
    entered, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow(decoded: object) -> None:
        calls.append(1)
        entered.set()
        release.wait(TIMEOUT)

    burst = 200
    flow_listener = FlowListener("127.0.0.1", 0, on_flows=slow, queue_datagrams=1)
    flow_listener.start()
    try:
        with _sender() as sock:
            sock.sendto(NETFLOW5_DATAGRAMS[0], flow_listener.address)
            wait_until(entered.is_set, TIMEOUT, "the decoder to be held")
            for _ in range(burst):
                sock.sendto(NETFLOW5_DATAGRAMS[0], flow_listener.address)
            # At most one of the burst finds the slot; every other one is dropped by the receiver.
            wait_until(lambda: _stats_of(flow_listener, "127.0.0.1").queue_drops >= burst - 1, TIMEOUT, "drops")
            release.set()
            stats = wait_until(
                lambda: (s := _stats_of(flow_listener, "127.0.0.1")).datagrams + s.queue_drops == burst + 1 and s,
                TIMEOUT,
                "every datagram accounted for",
            )
            assert stats.queue_drops == burst - 1
            assert (stats.datagrams, stats.records, len(calls)) == (2, 4, 2)
            sock.sendto(NETFLOW5_DATAGRAMS[1], flow_listener.address)
            wait_until(lambda: _stats_of(flow_listener, "127.0.0.1").records == 8, TIMEOUT, "decoding after the burst")
        assert flow_listener.running
        assert flow_listener.kernel_drops() == 0
    finally:
        release.set()
        flow_listener.stop()
    assert not flow_listener.running


def test_a_failing_callback_is_counted_and_does_not_stop_the_listener() -> None:
    """The callback is called once per exporter per drained batch: each failed call is counted once."""

    def broken(received: object) -> None:
        raise RuntimeError("consumer bug")

    with FlowListener("127.0.0.1", 0, on_flows=broken) as flow_listener, _sender() as sock:
        records = 0
        for sent, payload in enumerate(NETFLOW5_DATAGRAMS[:3], start=1):  # one at a time: one batch each
            sock.sendto(payload, flow_listener.address)
            records += struct.unpack_from("!H", payload, 2)[0]
            wait_until(
                lambda: (s := _stats_of(flow_listener, "127.0.0.1")).callback_errors == sent and s.records == records,  # noqa: B023 - polled within this iteration
                TIMEOUT, f"call {sent}",
            )  # fmt: skip
        stats = _stats_of(flow_listener, "127.0.0.1")
        assert (stats.datagrams, stats.records, stats.callback_errors) == (3, 10, 3)
        assert flow_listener.running


def test_a_decoder_thread_that_dies_is_restarted_counted_and_goes_on_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug outside the per-batch handling (here in the accounting) kills the decoder thread; the supervisor
    (core.supervise) restarts it, counts the restart, and the next datagrams are decoded."""
    from core.supervise import Workers

    real_account = FlowListener._account  # noqa: SLF001 - breaks one private step on purpose
    failures = iter([True])

    def account_once_broken(self: FlowListener, result: object, expected: dict) -> None:
        if next(failures, False):
            raise RuntimeError("a bug in the accounting")
        real_account(self, result, expected)

    monkeypatch.setattr(FlowListener, "_account", account_once_broken)
    workers = Workers()
    with FlowListener("127.0.0.1", 0, on_flows=lambda decoded: None, workers=workers) as flow_listener, _sender() as sock:
        sock.sendto(NETFLOW5_DATAGRAMS[0], flow_listener.address)  # its batch is lost with the dying thread
        wait_until(lambda: flow_listener.stats().worker_restarts == 1, TIMEOUT, "the decoder restarted")
        sock.sendto(NETFLOW5_DATAGRAMS[1], flow_listener.address)
        stats = wait_until(lambda: (s := _stats_of(flow_listener, "127.0.0.1")).records == 4 and s, TIMEOUT, "decoding again")
        assert (stats.datagrams, stats.records) == (1, 4)
        assert flow_listener.running
        states = {state.name: state for state in workers.snapshot()}
        assert (states["flow-decoder"].up, states["flow-decoder"].restarts) == (True, 1)
        assert "a bug in the accounting" in (states["flow-decoder"].last_error or "")
        assert (states["flow-receiver"].up, states["flow-receiver"].restarts) == (True, 0)
    assert not any(state.up for state in workers.snapshot())  # stopped: no longer up, and not restarted


def test_a_datagram_larger_than_a_ring_slot_is_decoded_whole(listener: FlowListener) -> None:
    """A datagram larger than a jumbo frame (9 KiB) is queued and decoded whole, not cut."""
    fields = struct.pack("!HHHHHHHH", 8, 4, 12, 4, 2, 4, 1, 4)  # source, destination, packets, octets: 16 bytes a record
    template_set = struct.pack("!HHHH", 2, 8 + len(fields), 300, 4) + fields
    records = b"".join(struct.pack("!4s4sII", bytes([10, 0, n >> 8, n & 255]), bytes([10, 1, 0, 1]), 1, 100) for n in range(700))
    data_set = struct.pack("!HH", 300, 4 + len(records)) + records
    body = template_set + data_set
    datagram = struct.pack("!HHIII", 10, 16 + len(body), 0, 0, 1) + body
    assert len(datagram) > 9216
    with _sender() as sock:
        sock.sendto(datagram, listener.address)
        sock.sendto(NETFLOW5_DATAGRAMS[0], listener.address)
        stats = wait_until(lambda: (s := _stats_of(listener, "127.0.0.1")).datagrams == 2 and s, TIMEOUT, "both datagrams")
    assert (stats.records, stats.malformed, stats.queue_drops) == (702, 0, 0)


def _agent_metrics_of(flow_listener: FlowListener) -> str:
    """The listener's part of the agent's /metrics exposition."""
    from prometheus_client import CollectorRegistry, generate_latest

    from agent.metrics import AgentMetrics

    registry = CollectorRegistry()
    AgentMetrics(registry).watch_flow_listener(registry, flow_listener)
    return generate_latest(registry).decode()


def test_counters_of_spoofed_sources_past_the_bound_go_under_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each source address gets its own counters up to MAX_EXPORTER_STATS; past that, the rows of the sources silent
    the longest fold into one 'other' row, so spoofed addresses grow neither memory nor the series the agent reports,
    and cannot push out an exporter that keeps sending. Errors are counted by reason."""
    from collectors.flow import listener as listener_module

    monkeypatch.setattr(listener_module, "MAX_EXPORTER_STATS", 3)
    with FlowListener("127.0.0.1", 0, on_flows=lambda decoded: None) as flow_listener:
        with _sender("127.0.9.100") as real:
            for last in range(1, 7):  # six spoofed sources, one good and one garbage datagram each; a real exporter too
                with _sender(f"127.0.9.{last}") as sock:
                    sock.sendto(NETFLOW5_DATAGRAMS[0], flow_listener.address)
                    sock.sendto(b"\xff\xff garbage", flow_listener.address)
                    wait_until(lambda n=last: flow_listener.stats().total("datagrams") == 3 * n - 1, TIMEOUT, "in order")
                real.sendto(NETFLOW5_DATAGRAMS[0], flow_listener.address)
                wait_until(lambda n=last: flow_listener.stats().total("datagrams") == 3 * n, TIMEOUT, "the real one")
        stats = wait_until(lambda: (s := flow_listener.stats()).total("datagrams") == 18 and s, TIMEOUT, "18 datagrams")
        exposition = _agent_metrics_of(flow_listener)
    assert 'egovmon_flow_decode_errors_total{reason="malformed"} 6.0' in exposition
    assert 'egovmon_flow_decode_errors_total{reason="decoder_bug"} 0.0' in exposition
    assert "egovmon_flow_exporters 4.0" in exposition
    assert sorted(stats.exporters) == ["127.0.9.100", "127.0.9.5", "127.0.9.6", "other"]
    other = stats.exporters["other"]
    assert (other.datagrams, other.records, other.malformed) == (8, 8, 4)  # spoofed sources 1-4
    assert (stats.exporters["127.0.9.100"].datagrams, stats.exporters["127.0.9.100"].records) == (6, 12)
    assert stats.decode_errors == {"malformed": 6, "decoder_bug": 0, "failed_set": 0, "callback": 0}


# The CLI ------------------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(flow_app, name="flow")
    return app


def test_flow_decode_json_on_netflow5() -> None:
    result = CliRunner().invoke(_cli(), ["flow", "decode", str(NETFLOW5), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["totals"] == {
        "datagrams": 12,
        "flows": 30,
        "packets": sum(flow[5] for flow in NETFLOW5_FLOWS),
        "bytes": sum(flow[6] for flow in NETFLOW5_FLOWS),
        "options": 0,
        "malformed": 0,
        "skipped_sets": 0,
    }
    records = document["records"]
    assert [
        (r["src_addr"], r["dst_addr"], r["src_port"], r["dst_port"], r["protocol"], r["packets"], r["bytes"])
        for r in records
    ] == NETFLOW5_FLOWS
    assert {r["exporter"] for r in records} == {records[0]["exporter"]}
    # softflowd exported these 3.4 s after boot: First is 0xFFFFFFFF, 1 ms before uptime 0. Uptime
    # offsets are modulo 2**32 (RFC 3954 §5.1 sysUpTime), so the flow started 3,382 ms before export.
    assert (records[0]["start_at"], records[0]["end_at"]) == (
        "2015-05-02T18:38:04.898+00:00",  # 1430591888.280 s - 3.382 s
        "2015-05-02T18:38:07.476+00:00",  # 1430591888.280 s - 0.804 s
    )
    for record in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record["start_at"])
        assert record["start_at"] <= record["end_at"]


def test_flow_decode_text_ends_with_totals() -> None:
    result = CliRunner().invoke(_cli(), ["flow", "decode", str(NETFLOW5)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 31
    src, dst, sport, dport, _, packets, octets = NETFLOW5_FLOWS[0]
    assert f"{src}:{sport} -> {dst}:{dport} packets {packets} bytes {octets}" in lines[0]
    packets_total = sum(flow[5] for flow in NETFLOW5_FLOWS)
    assert lines[-1].startswith(f"datagrams=12 flows=30 packets={packets_total} ")
    assert lines[-1].endswith("malformed=0 skipped_sets=0")


def test_flow_listen_runs_for_a_bounded_time() -> None:
    result = CliRunner().invoke(_cli(), ["flow", "listen", "--port", "0", "--seconds", "0.3", "--every", "0.1"])
    assert result.exit_code == 0, result.output
    assert re.match(r"listening on 127\.0\.0\.1:\d+ \(UDP\), receive buffer \d+ bytes", result.stdout)
    assert result.stdout.rstrip().endswith(
        "kernel_drops=0 evicted_templates=0 evicted_exporters=0 worker_restarts=0 "
        "decode_errors: malformed=0 decoder_bug=0 failed_set=0 callback=0"
    )
