"""Charts of the console: the pure helpers, query-side downsampling, and the host, device and flow pages fed by a
real HostCollector snapshot of this machine, scoped by agency (another agency's host answers 404)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from itertools import pairwise

from fastapi.testclient import TestClient

from collectors.host import host_samples, read_snapshot
from server.history.base import Point
from server.hosts import service as hosts
from server.ui.charts import (
    Chart,
    Series,
    humanize,
    last_per_bucket,
    line_chart,
    nice_ticks,
    rate,
)
from tests.server.conftest import Clock, enroll, make_agency
from tests.server.test_console import _login, _user


def test_rate_skips_a_counter_reset_and_last_per_bucket_keeps_the_newest():
    assert rate([(0, 100), (10, 200), (20, 50), (30, 150)]) == [(10, 10.0), (30, 10.0)]
    assert last_per_bucket([(0, 1), (5, 2), (10, 3), (19, 4), (20, 5)], 10) == [(5, 2), (19, 4), (20, 5)]


def test_window_rates_divide_each_window_by_its_length_and_average_per_bucket():
    from server.ui.metrics_charts import window_rates

    # windows of 60 s: 600 bytes → 10 B/s, 1200 → 20 B/s; the first window takes the typical (median) length
    assert window_rates([(60, 600), (120, 1200), (180, 600)], 60) == [(60, 10.0), (120, 20.0), (180, 10.0)]
    assert window_rates([(60, 600), (120, 1200), (180, 600), (240, 600)], 120) == [(60, 10.0), (180, 15.0), (240, 10.0)]


def test_humanize_and_ticks():
    assert humanize(1536 * 1024 * 1024, "字节") == "1.50 Gi字节"
    assert humanize(25_000_000, "比特/秒") == "25 M比特/秒"
    assert humanize(42.4, "%") == "42 %"
    assert nice_ticks(0, 93) == [0, 25, 50, 75, 100]


def test_a_line_chart_draws_every_point_with_axes_legend_and_data_attributes():
    chart = Chart("c", "负载", "", [Series("load1", [(1000.0, 1.0), (1060.0, 3.0), (1120.0, 2.0)]), Series("empty", [])], 1000.0, 1120.0)
    svg = line_chart(chart)
    path = re.search(r'<path class="series" d="([^"]+)"[^>]*data-series="load1" data-ts="([^"]+)" data-values="([^"]+)"', svg)
    assert path is not None and path.group(2) == "1000 1060 1120" and path.group(3) == "1 3 2"
    assert path.group(1).startswith("M78.0,") and path.group(1).count("L") == 2
    assert svg.count('class="series"') == 1  # the empty series is not drawn
    assert ">load1 2<" in svg  # legend with the newest value
    assert ">08:16<" in svg  # x axis in Asia/Shanghai: 1000 s after the epoch is 08:16 there
    assert "<script" not in line_chart(Chart("x", "<script>", "", [Series("<b>", [(0, 1), (1, 2)])], 0, 1))


def _point(at: float, value: float) -> Point:
    return Point("host_load", {}, {"load1": value}, int(at * 1e9))


def test_downsampled_history_reads_at_most_one_point_per_bucket_from_what_was_stored(client: TestClient, admin, clock: Clock):
    host = enroll(client, admin, make_agency(client, admin, "health"), "his-db-1")
    end = clock.now
    start = end - timedelta(hours=2)
    points = [(host.host_id, _point(start.timestamp() + i * 15, float(i))) for i in range(2 * 240 + 1)]
    with client.app.state.sessions() as session:
        hosts.append_history_rows(session, points)
        session.commit()
        full = hosts.downsampled_history(session, host_id=host.host_id, measurement="host_load", since=end - timedelta(hours=1), until=end)
        week = hosts.downsampled_history(session, host_id=host.host_id, measurement="host_load", since=start, until=end, buckets=20)
    (only,) = full.values()
    assert len(only.points) == 241  # 1 h of 15 s points, fewer than the buckets: all of them
    (coarse,) = week.values()
    values = [f["load1"] for _, f in coarse.points]
    assert 15 <= len(values) <= 21 and values == sorted(values)
    assert all(v == int(v) and 0 <= v <= 480 for v in values)  # stored values, not invented ones
    assert values[-1] >= 456  # the newest bucket is there


def _host_batch(at: datetime) -> list[dict]:
    return [s.model_dump(mode="json") for s in host_samples(read_snapshot(), at=at)]


def test_the_host_page_charts_the_real_collector_batches_for_its_agency_only(client: TestClient, admin, clock: Clock):
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    mine = enroll(client, admin, health, "his-db-1")
    theirs = enroll(client, admin, police, "jw-app-1")
    first = clock.now - timedelta(minutes=4)
    for i, agent in enumerate((mine, mine, theirs)):  # 2 minutes apart: always in two 90-second buckets of 6 h
        at = first + timedelta(minutes=2 * (i % 2))
        response = client.post("/api/v1/ingest", headers=agent.headers, json={"batch_id": f"b{i}", "samples": _host_batch(at)})
        assert response.status_code == 200, response.text
    client.app.state.ingest.drain()
    _user(client, admin, "weijian", "agency", health)
    _login(client, "weijian")
    page = client.get(f"/ui/hosts/{mine.host_id}?range=6h")
    assert page.status_code == 200
    for chart in ("chart-cpu", "chart-load", "chart-memory", "chart-swap", "chart-fs", "chart-inodes", "chart-disk", "chart-net"):
        assert f'id="{chart}"' in page.text, chart
    load = re.search(r'data-series="load1" data-ts="([^"]+)" data-values="([^"]+)"', page.text)
    assert load is not None and len(load.group(1).split()) == 2  # both snapshots drawn
    with client.app.state.sessions() as session:
        stored = [float(p.fields["load1"]) for p in hosts.history(session, host_id=mine.host_id, measurement="host_load",
                                                                    since=first - timedelta(seconds=1), until=clock.now)]  # fmt: skip
    assert [float(v) for v in load.group(2).split()] == stored
    cpu_chart = page.text[page.text.index('id="chart-cpu"'):page.text.index('id="chart-load"')]
    cpu = re.findall(r'data-series="([^"]+)" data-ts="[^"]+" data-values="([^"]+)"', cpu_chart)
    assert {"用户态", "内核态"} <= {mode for mode, _ in cpu} and all(0 <= float(v) <= 100 for _, vs in cpu for v in vs.split())
    client.get("/ui/lang/en")
    english = client.get(f"/ui/hosts/{mine.host_id}").text
    assert "CPU by mode" in english and "bit/s" in english and "比特" not in english
    assert client.get(f"/ui/hosts/{mine.host_id}?range=2y").status_code == 422
    assert client.get(f"/ui/hosts/{theirs.host_id}").status_code == 404
    assert "jw-app-1" not in client.get("/ui").text


def test_text_where_a_chart_expects_a_number_leaves_the_point_out_instead_of_failing_the_page(
    client: TestClient, admin, clock: Clock
):
    """Field values are JSON from an agent: a filesystem size or inode count sent as text is stored (the wire
    allows text fields) but cannot be divided by. The page used to answer 500 for everyone who opened the host."""
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    at = clock.now - timedelta(minutes=4)  # 2 minutes apart: always in two 90-second buckets of 6 h
    good = {"measurement": "host_filesystem", "tags": {"mountpoint": "/"}, "timestamp": at.isoformat(),
            "fields": {"size_bytes": 1000, "used_bytes": 250, "files": 100, "files_free": 75}}
    bad = {**good, "timestamp": (at + timedelta(minutes=2)).isoformat(),
           "fields": {"size_bytes": "lots", "used_bytes": 500, "files": "many", "files_free": 50}}
    for i, sample in enumerate((good, bad)):
        response = client.post("/api/v1/ingest", headers=agent.headers, json={"batch_id": f"fs{i}", "samples": [sample]})
        assert response.status_code == 200, response.text
    client.app.state.ingest.drain()
    _user(client, admin, "weijian", "agency", health)
    _login(client, "weijian")
    page = client.get(f"/ui/hosts/{agent.host_id}?range=6h")
    assert page.status_code == 200, page.text[:500]
    for chart in ("chart-fs", "chart-inodes"):
        section = page.text[page.text.index(f'id="{chart}"'):]
        values = re.search(r'data-series="/" data-ts="[^"]+" data-values="([^"]+)"', section)
        assert values is not None and values.group(1).split() == ["25"], chart  # only the good point: 25 %


def _interface(at: datetime, octets_in: int, octets_out: int, errors: int) -> dict:
    return {"measurement": "snmp_interface", "tags": {"device": "core-1", "if_index": "3", "if_name": "GE0/0/1"},
            "timestamp": at.isoformat(), "fields": {"hc_in_octets_total": octets_in, "hc_out_octets_total": octets_out,
                                                    "in_octets_total": octets_in % 2**32, "in_errors_total": errors,
                                                    "oper_up": 1, "admin_up": 1, "speed_bps": 1_000_000_000}}  # fmt: skip


def test_the_device_page_draws_bits_per_second_from_the_64_bit_counters(client: TestClient, admin, clock: Clock):
    """Three polls a minute apart; the 64-bit counter passes 2^32 (the 32-bit one wraps and would be wrong)."""
    health, police = make_agency(client, admin, "health"), make_agency(client, admin, "police")
    collector = enroll(client, admin, health, "his-mon-1")
    enroll(client, admin, police, "jw-mon-1")
    start = clock.now - timedelta(minutes=3)
    base = 2**32 - 1_000_000
    polls = [(0, 0), (60, 7_500_000), (120, 15_000_000)]  # octets in: +7.5 MB a minute = 1 Mbit/s
    samples = []
    for i, (offset, grown) in enumerate(polls):
        at = start + timedelta(seconds=offset)
        samples.append({"measurement": "snmp_device", "tags": {"device": "core-1"}, "timestamp": at.isoformat(),
                        "fields": {"up": 1, "poll_duration_seconds": 0.3}})  # fmt: skip
        samples.append(_interface(at, base + grown, base + grown // 2, errors=i * 60))
    assert client.post("/api/v1/ingest", headers=collector.headers, json={"batch_id": "snmp", "samples": samples}).status_code == 200
    client.app.state.ingest.drain()
    _user(client, admin, "weijian", "agency", health)
    _user(client, admin, "jingcha", "agency", police)
    _login(client, "weijian")
    page = client.get(f"/ui/devices/{collector.host_id}/core-1").text
    drawn = dict(re.findall(r'data-series="([^"]+)" data-ts="[^"]+" data-values="([^"]+)"', page))
    assert drawn["GE0/0/1 入"] == "1000000 1000000" and drawn["GE0/0/1 出"] == "500000 500000"
    assert drawn["GE0/0/1"] == "1 1"  # one error a second
    row = re.search(r"<tr><td>3</td><td>GE0/0/1</td>.*?</tr>", page, re.DOTALL).group(0)
    assert "<td>1 M比特/秒</td>" in row and "500 K比特/秒" in row and "120 / —" in row and "1 G比特/秒" in row
    assert client.get("/ui/devices").text.count('class="device"') == 1
    client.cookies.clear()
    _login(client, "jingcha")
    assert client.get(f"/ui/devices/{collector.host_id}/core-1").status_code == 404
    assert "core-1" not in client.get("/ui/devices").text


def test_an_interface_index_that_is_not_a_number_does_not_fail_the_device_page(client: TestClient, admin, clock: Clock):
    """Tag values are text an agent chose; the page sorts interfaces by index and used to answer 500 (int('x9'))."""
    health = make_agency(client, admin, "health")
    collector = enroll(client, admin, health, "his-mon-1")
    at = clock.now - timedelta(minutes=1)
    odd = _interface(at, 1000, 1000, errors=0)
    odd["tags"] = {**odd["tags"], "if_index": "x9", "if_name": "odd-0/9"}
    samples = [{"measurement": "snmp_device", "tags": {"device": "core-1"}, "timestamp": at.isoformat(), "fields": {"up": 1}},
               _interface(at, 2000, 2000, errors=0), odd]  # fmt: skip
    assert client.post("/api/v1/ingest", headers=collector.headers, json={"batch_id": "snmp", "samples": samples}).status_code == 200
    client.app.state.ingest.drain()
    _user(client, admin, "weijian", "agency", health)
    _login(client, "weijian")
    page = client.get(f"/ui/devices/{collector.host_id}/core-1")
    assert page.status_code == 200, page.text[:500]
    assert page.text.index("odd-0/9") < page.text.index("GE0/0/1")  # no number sorts first


def test_dense_history_reads_windows_and_the_bucket_cache_serves_complete_buckets(client: TestClient, admin, clock: Clock):
    """7 h of 15-second points, 40 buckets (630 s, more than 20,000 points: the windowed read): one point per bucket,
    the same with and without the cache; a later read with the cache takes the complete buckets from it (a point
    slipped into one of them late is not shown until the entry expires) and reads the new ones."""
    host = enroll(client, admin, make_agency(client, admin, "health"), "his-db-1")
    end = clock.now
    start = end - timedelta(hours=7)
    ticks = [start.timestamp() + i * 15 for i in range(7 * 240)]
    rows = [(host.host_id, Point("host_cpu", {"cpu": str(c)}, {"seconds_total": float(i)}, int(at * 1e9)))
            for i, at in enumerate(ticks) for c in range(16)]  # fmt: skip; 26,880 points
    now = [0.0]
    cache = hosts.BucketCache(clock=lambda: now[0], ttl_seconds=600, settle_seconds=60)
    with client.app.state.sessions() as session:
        hosts.append_history_rows(session, rows)
        session.commit()

        def read(until: datetime, with_cache: bool) -> dict:
            return hosts.downsampled_history(session, host_id=host.host_id, measurement="host_cpu", since=until - timedelta(hours=7),
                                             until=until, buckets=40, cache=cache if with_cache else None)  # fmt: skip

        plain, cached = read(end, False), read(end, True)
        assert plain == cached and len(plain) == 16
        series = plain["host_cpu,cpu=0"].points
        gaps = [b[0] - a[0] for a, b in pairwise(series)]
        assert 39 <= len(series) <= 41 and min(gaps) >= 600, gaps
        assert all(at % 630 < 30 for at, _ in series)  # each from the first 30 s (the window) of its bucket
        assert series[-1][1]["seconds_total"] >= 7 * 240 - 43  # the newest bucket is read
        # a late point in a complete bucket (the newest at its time), and a new point after `end`
        late_at = series[5][0] - series[5][0] % 630 + 29.5  # the end of that bucket's 30 s window: newer than its ticks
        hosts.append_history_rows(session, [(host.host_id, Point("host_cpu", {"cpu": "0"}, {"seconds_total": -1.0}, int(late_at * 1e9))),
                                            (host.host_id, Point("host_cpu", {"cpu": "0"}, {"seconds_total": 9999.0},
                                                                 int((end.timestamp() + 30) * 1e9)))])  # fmt: skip
        session.commit()
        later = end + timedelta(seconds=60)
        again = read(later, True)["host_cpu,cpu=0"].points
        assert again[-1][1]["seconds_total"] == 9999.0  # the new bucket was read
        assert -1.0 not in [f["seconds_total"] for _, f in again]  # the complete bucket came from the cache
        now[0] = 601.0  # the entry expired: everything is read again
        assert -1.0 in [f["seconds_total"] for _, f in read(later, True)["host_cpu,cpu=0"].points]
    small = hosts.BucketCache(max_rows=10)
    small.put(("a",), complete_through=1, buckets={1: {f"s{i}": (1, "{}", "{}") for i in range(6)}}, created=None)
    small.put(("b",), complete_through=1, buckets={1: {f"s{i}": (1, "{}", "{}") for i in range(6)}}, created=None)
    assert small.get(("a",)) is None and small.get(("b",)) is not None and small.evicted == 1  # bounded: the oldest went
