"""History writers and the spool against real VictoriaMetrics 1.79 and InfluxDB 1.6 (tests/services.py).

What the stores do with bad input, as these tests pin down:
- VictoriaMetrics skips a line it cannot parse (logs it) and answers 204, so the
  writer cannot notice. It answers 400 for a line over 256 KiB, but reliably only
  when that line ends the request (see the test).
- InfluxDB 1.6 stores the good lines of a request with a bad line and answers
  400 "partial write: unable to parse ...".
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.lineprotocol import encode_line
from server.history.base import EncodedBatch, HistoryRejectedError, HistoryWriteError, SpoolFullError
from server.history.influx1 import InfluxV1Writer
from server.history.influx2 import InfluxV2Writer
from server.history.spool import SpooledWriter, backoff_seconds, decode_records, encode_record
from server.settings import TsdbSettings
from tests.services import InfluxDB1, VictoriaMetrics, free_port, start_influxdb1, start_victoriametrics, wait_until

Labels = tuple[tuple[str, str], ...]
Samples = dict[Labels, list[tuple[int, float]]]


def v2(url: str, **overrides: object) -> InfluxV2Writer:
    return InfluxV2Writer(TsdbSettings.model_validate({"kind": "influxdb2", "url": url, **overrides}))


def v1(url: str, **overrides: object) -> InfluxV1Writer:
    return InfluxV1Writer(TsdbSettings.model_validate({"kind": "influxdb1", "url": url, **overrides}))


def batch(lines: list[str]) -> EncodedBatch:
    return EncodedBatch(points=(), lines=lines)


@pytest.fixture
def name() -> str:
    """A measurement name no other test uses (the servers live for the whole session)."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def start_ns() -> int:
    """Ten minutes ago, in nanoseconds, on a whole millisecond (VictoriaMetrics keeps milliseconds)."""
    return (time.time_ns() // 1_000_000 - 600_000) * 1_000_000


def series(name: str, start_ns: int, count: int, hosts: tuple[str, ...] = ("h1",)) -> tuple[list[str], Samples]:
    """`count` lines per host with a float and an int field, and what VictoriaMetrics should hold for them."""
    lines: list[str] = []
    expected: Samples = {}
    for host in hosts:
        for i in range(count):
            ns = start_ns + i * 1_000_000_000
            lines.append(encode_line(name, {"host": host, "agency": "财政局"}, {"usage": i / 8, "n": i * 3}, ns))
            for field, value in (("usage", i / 8), ("n", i * 3)):
                key = (("__name__", f"{name}_{field}"), ("agency", "财政局"), ("host", host))
                expected.setdefault(key, []).append((ns // 1_000_000, value))
    return lines, expected


def read_back(vm: VictoriaMetrics, name: str, count: int) -> Samples:
    """The samples of `name`'s series once at least `count` have arrived."""

    def arrived() -> Samples | None:
        samples = vm.samples(f'{{__name__=~"{name}_.*"}}')
        return samples if sum(map(len, samples.values())) >= count else None

    return wait_until(arrived, 15, f"{count} samples of {name} in VictoriaMetrics")


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A URL whose TCP connections are accepted by the kernel but never answered."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# InfluxDB v2 API → VictoriaMetrics ---------------------------------------------------------------


def test_influx2_writes_exact_values_and_tags(victoriametrics: VictoriaMetrics, name: str, start_ns: int) -> None:
    lines, expected = series(name, start_ns, 125, hosts=("h1", "h 2,x=y"))
    writer = v2(victoriametrics.url, lines_per_request=100)  # 250 lines → 3 requests
    try:
        writer.write(batch(lines))
        assert writer.ping() is True
    finally:
        writer.close()
    assert read_back(victoriametrics, name, 500) == expected


def test_influx2_writer_is_shared_safely_between_threads(
    victoriametrics: VictoriaMetrics, name: str, start_ns: int
) -> None:
    hosts = tuple(f"h{i}" for i in range(8))
    lines, expected = series(name, start_ns, 200, hosts=hosts)
    writer = v2(victoriametrics.url, lines_per_request=100)
    errors: list[Exception] = []

    def write_host(part: list[str]) -> None:
        try:
            for i in range(0, len(part), 20):
                writer.write(batch(part[i : i + 20]))
        except (HistoryWriteError, HistoryRejectedError) as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write_host, args=(lines[h * 200 : (h + 1) * 200],)) for h in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        writer.close()
    assert errors == []
    assert read_back(victoriametrics, name, 8 * 200 * 2) == expected


def test_influx2_malformed_line_is_silently_skipped_by_victoriametrics(
    victoriametrics: VictoriaMetrics, name: str, start_ns: int
) -> None:
    good, expected = series(name, start_ns, 2)
    writer = v2(victoriametrics.url)
    try:
        writer.write(batch([good[0], f"{name} this is not line protocol", f"{name},host=h1 n= {start_ns}", good[1]]))
    finally:
        writer.close()
    assert read_back(victoriametrics, name, 4) == expected


def test_influx2_too_long_line_is_rejected_by_victoriametrics(
    victoriametrics: VictoriaMetrics, name: str, start_ns: int
) -> None:
    # Deterministic only as the last line of a request: VictoriaMetrics checks -influx.maxLineSize
    # (256 KiB) while no newline is in its read buffer, so with lines after it the same request
    # was answered 204 in 14 of 20 tries and 400 in 6.
    long_line = encode_line(name, {"host": "h1"}, {"note": "x" * 300_000}, start_ns)
    writer = v2(victoriametrics.url)
    try:
        with pytest.raises(HistoryRejectedError, match=r"HTTP 400.*too long line: more than 262144 bytes"):
            writer.write(batch([long_line]))
    finally:
        writer.close()


def test_influx2_wrong_credentials_are_transient_and_say_so(
    victoriametrics: VictoriaMetrics, tmp_path: Path, name: str, start_ns: int
) -> None:
    guarded = start_victoriametrics(tmp_path, username="egovmon", password="right-password")
    writer = v2(guarded.url, token="wrong-token-value")
    try:
        with pytest.raises(HistoryWriteError, match="authentication failed \\(HTTP 401\\)"):
            writer.write(batch(series(name, start_ns, 1)[0]))
        assert writer.ping() is True  # /health needs no credentials
    finally:
        writer.close()
        guarded.stop()


@pytest.mark.parametrize("make", [v1, v2], ids=["influx1", "influx2"])
def test_unreachable_store_fails_fast_without_retrying(
    make: Callable[..., InfluxV1Writer | InfluxV2Writer], black_hole: str
) -> None:
    refused = make(f"http://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    silent = make(black_hole, timeout_seconds=0.5)
    try:
        with pytest.raises(HistoryWriteError, match="unreachable"):
            refused.write(batch(["cpu v=1 1"]))
        began = time.monotonic()
        with pytest.raises(HistoryWriteError, match="timed out"):
            silent.write(batch(["cpu v=1 1"]))
        assert time.monotonic() - began < 2.0  # one attempt of 0.5 s, no internal retries
        assert refused.ping() is False
    finally:
        refused.close()
        silent.close()


# InfluxDB 1.x -----------------------------------------------------------------------------------


def test_influx1_writes_exact_values(influxdb1: InfluxDB1, name: str, start_ns: int) -> None:
    lines = [
        encode_line(name, {"host": "h1"}, {"usage": 12.5, "n": 7, "up": True, "state": "ok"}, start_ns),
        encode_line(name, {"host": "h2"}, {"usage": 1e-05, "n": -3, "up": False, "state": "down"}, start_ns + 1),
    ]
    writer = v1(influxdb1.url, lines_per_request=100)
    try:
        writer.write(batch(lines))
        assert writer.ping() is True
    finally:
        writer.close()
    rows = influxdb1.rows(f'SELECT "usage", "n", "up", "state" FROM "{name}" GROUP BY "host"')
    assert [(r["_series_tags"]["host"], r["time"], r["usage"], r["n"], r["up"], r["state"]) for r in rows] == [
        ("h1", start_ns, 12.5, 7, True, "ok"),
        ("h2", start_ns + 1, 1e-05, -3, False, "down"),
    ]


def test_influx1_escaped_characters_round_trip_exactly(influxdb1: InfluxDB1, name: str, start_ns: int) -> None:
    measurement = f"{name} disk,io"
    tags = {"mount point": "C:\\data dir", "label": "a,b=c d", "机构": '财政局 "一处"'}
    fields: dict[str, float | str] = {
        "msg": 'say "hi" \\ to C:\\path\\ and \\"quoted\\"',
        "field key=with, odd": 1.5,
        "trailing": "ends with backslash \\",
    }
    writer = v1(influxdb1.url)
    try:
        writer.write(batch([encode_line(measurement, tags, fields, start_ns)]))
    finally:
        writer.close()
    result = influxdb1.query(f'SELECT * FROM "{measurement}" GROUP BY *')["results"][0]["series"]
    assert len(result) == 1
    assert result[0]["name"] == measurement
    assert result[0]["tags"] == tags
    assert dict(zip(result[0]["columns"], result[0]["values"][0], strict=True)) == {"time": start_ns, **fields}


def test_influx1_malformed_line_is_rejected_after_a_partial_write_and_later_requests_go_on(
    influxdb1: InfluxDB1, name: str, start_ns: int
) -> None:
    good = [encode_line(name, {"host": "h1"}, {"n": i}, start_ns + i) for i in range(150)]
    writer = v1(influxdb1.url, lines_per_request=100)  # requests: bad + 99 good, then 51 good
    try:
        with pytest.raises(
            HistoryRejectedError, match=r"HTTP 400.*partial write: unable to parse .*1 of 2 requests refused"
        ):
            writer.write(batch([f"{name} this is not line protocol", *good]))
    finally:
        writer.close()
    rows = influxdb1.rows(f'SELECT "n" FROM "{name}"')
    assert [(r["time"], r["n"]) for r in rows] == [(start_ns + i, i) for i in range(150)]


def test_influx1_credentials(influxdb1: InfluxDB1, tmp_path: Path, name: str, start_ns: int) -> None:
    guarded = start_influxdb1(tmp_path, username="egovmon", password="right-password")
    wrong = v1(guarded.url, username="egovmon", password="wrong-password")
    right = v1(guarded.url, username="egovmon", password="right-password")
    line = encode_line(name, {"host": "h1"}, {"n": 1}, start_ns)
    try:
        with pytest.raises(HistoryWriteError, match="authentication failed \\(HTTP 401\\)"):
            wrong.write(batch([line]))
        right.write(batch([line]))
        assert [(r["time"], r["n"]) for r in guarded.rows(f'SELECT "n" FROM "{name}"')] == [(start_ns, 1)]
    finally:
        wrong.close()
        right.close()
        guarded.stop()


# The spool ----------------------------------------------------------------------------------------


def spooled(url: str, spool_dir: Path, max_bytes: int = 10 << 20, **kwargs: object) -> SpooledWriter:
    """A spooled v2 writer with fast backoff (50 ms base, 200 ms cap) for tests."""
    options = {"backoff_base_seconds": 0.05, "backoff_cap_seconds": 0.2, **kwargs}
    return SpooledWriter(v2(url, timeout_seconds=2), spool_dir, max_bytes, **options)  # type: ignore[arg-type]


def test_spool_keeps_writes_while_down_and_replays_them_once_victoriametrics_listens(
    victoriametrics: VictoriaMetrics, tmp_path: Path, name: str, start_ns: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.history.spool")
    port = free_port()
    writer = spooled(f"http://127.0.0.1:{port}", tmp_path / "spool", segment_bytes=4096)
    writer.start()
    lines, expected = series(name, start_ns, 50, hosts=("h1", "h2", "h3", "h4"))

    def write_host(part: list[str]) -> None:
        for i in range(0, len(part), 10):
            writer.write(batch(part[i : i + 10]))

    threads = [threading.Thread(target=write_host, args=(lines[h * 50 : (h + 1) * 50],)) for h in range(4)]
    later: VictoriaMetrics | None = None
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert writer.spooled_lines_total == 200
        assert writer.pending_bytes > 0 and writer.pending_segments > 1
        assert writer.write_errors_total >= 1
        later = start_victoriametrics(tmp_path, port=port)
        wait_until(lambda: writer.pending_segments == 0, 30, "the spool to drain")
        assert writer.pending_bytes == 0
        assert writer.replayed_lines_total == 200
        assert read_back(later, name, 400) == expected  # none lost, none twice
        writer.write(batch(series(name + "x", start_ns, 1)[0]))  # the store is back: written directly
        assert writer.spooled_lines_total == 200
    finally:
        writer.close()
        if later is not None:
            later.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "server.history.spool"]
    assert sum(m.startswith("TSDB unreachable, spooling") for m in messages) == 1
    assert sum(m.startswith("TSDB back, spool drained") for m in messages) == 1
    assert list((tmp_path / "spool").iterdir()) == []


def test_spool_survives_a_restart_and_ignores_a_torn_append(
    victoriametrics: VictoriaMetrics, tmp_path: Path, name: str, start_ns: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.history.spool")
    spool_dir = tmp_path / "spool"
    lines, expected = series(name, start_ns, 30)
    first = spooled(f"http://127.0.0.1:{free_port()}", spool_dir)  # never started: nothing replays
    for i in range(0, 30, 10):
        first.write(batch(lines[i : i + 10]))
    first.close()
    (segment,) = spool_dir.iterdir()
    complete = segment.stat().st_size
    torn = encode_record([encode_line(name, {"host": "torn"}, {"n": 1}, start_ns)])[:-5]
    with segment.open("ab") as file:  # what a crash in the middle of an append leaves
        file.write(torn)
    second = spooled(victoriametrics.url, spool_dir)
    assert second.pending_bytes == complete + len(torn)
    second.start()
    try:
        wait_until(lambda: second.pending_segments == 0, 30, "the spool to drain")
    finally:
        second.close()
    assert second.replayed_lines_total == 30
    assert read_back(victoriametrics, name, 60) == expected
    assert [r.getMessage().split(":")[0] for r in caplog.records if r.name == "server.history.spool"] == [
        "TSDB unreachable, spooling",  # the first writer
        f"replaying {complete + len(torn)} bytes spooled by an earlier process in {spool_dir}",
        f"spool segment {segment}",
        "TSDB back, spool drained (30 lines replayed since start)",
    ]


def test_spool_full_refuses_the_write_and_keeps_what_it_has(tmp_path: Path) -> None:
    line = encode_line("cpu", {"host": "h1"}, {"n": 1}, 1)
    record_bytes = len(encode_record([line]))
    writer = spooled(f"http://127.0.0.1:{free_port()}", tmp_path / "spool", max_bytes=2 * record_bytes + 1)
    try:
        writer.write(batch([line]))
        writer.write(batch([line]))
        with pytest.raises(SpoolFullError, match=r"spool .* is full"):
            writer.write(batch([line]))
        assert writer.pending_bytes == 2 * record_bytes
        assert writer.spooled_lines_total == 2
    finally:
        writer.close()


def test_spool_lets_a_rejection_through_without_spooling(influxdb1: InfluxDB1, tmp_path: Path, name: str) -> None:
    writer = SpooledWriter(v1(influxdb1.url), tmp_path / "spool", 1 << 20)
    try:
        with pytest.raises(HistoryRejectedError, match="unable to parse"):
            writer.write(batch([f"{name} this is not line protocol"]))
        assert (writer.pending_bytes, writer.spooled_lines_total, writer.write_errors_total) == (0, 0, 0)
    finally:
        writer.close()


def test_replay_backs_off_exponentially_and_logs_the_outage_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.history.spool")
    delays: list[float] = []
    release = threading.Event()

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) >= 9:
            release.wait()

    writer = SpooledWriter(
        v2(f"http://127.0.0.1:{free_port()}"), tmp_path / "spool", 1 << 20, sleep=sleep, rand=lambda: 0.5
    )
    writer.write(batch(["cpu v=1 1"]))
    writer.start()
    try:
        wait_until(lambda: len(delays) >= 9, 10, "nine failed replays")
    finally:
        release.set()
        writer.close()
    assert delays[:9] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert writer.write_errors_total >= 10
    spool_log = [r.getMessage().split(":")[0] for r in caplog.records if r.name == "server.history.spool"]
    assert spool_log == ["TSDB unreachable, spooling"]


@pytest.mark.parametrize(
    ("attempt", "rand", "seconds"),
    [(1, 0.0, 0.0), (1, 0.5, 0.5), (3, 1.0, 4.0), (7, 1.0, 60.0), (500, 0.25, 15.0)],
)
def test_backoff_seconds(attempt: int, rand: float, seconds: float) -> None:
    assert backoff_seconds(attempt, base=1.0, cap=60.0, rand=rand) == seconds


def test_decode_records_stops_at_a_damaged_record() -> None:
    first, second = encode_record(["a v=1 1", "b v=2 2"]), encode_record(["c v=3 3"])
    damaged = bytearray(second)
    damaged[-1] ^= 0xFF
    assert decode_records(first + second) == ([["a v=1 1", "b v=2 2"], ["c v=3 3"]], len(first + second))
    assert decode_records(first + bytes(damaged) + first) == ([["a v=1 1", "b v=2 2"]], len(first))
    assert decode_records(first + second[:5]) == ([["a v=1 1", "b v=2 2"]], len(first))


def test_influx2_writer_reconnects_after_the_store_restarts(tmp_path: Path, name: str, start_ns: int) -> None:
    """The writer keeps one connection per thread; a restarted VictoriaMetrics closed it, and the next write
    goes through on a new one instead of failing (which would spool the batch for nothing)."""
    first = start_victoriametrics(tmp_path / "a")
    writer = v2(first.url)
    lines, _ = series(name, start_ns, 4)
    try:
        writer.write(batch(lines[:2]))
        first.stop()
        again = start_victoriametrics(tmp_path / "b", port=first.port)
        try:
            writer.write(batch(lines[2:]))
            assert len(read_back(again, name, 2)) == 2
        finally:
            again.stop()
    finally:
        writer.close()
