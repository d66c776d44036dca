"""The embedded history's chunks: the format round-trips, and compaction merges finished hours without changing what reads return."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from server.history.base import Point
from server.hosts import chunks
from server.hosts import service as hosts
from server.hosts.models import HistoryChunk
from tests.server.conftest import Clock, enroll, make_agency


def test_a_chunk_gives_back_the_points_written_series_fields_and_times():
    points = [
        ("host_cpu,cpu=0", {"cpu": "0"}, {"seconds_total": 1.5, "busy": True}, 10),
        ("host_cpu,cpu=1", {"cpu": "1"}, {"seconds_total": 2}, 11),
        ("host_cpu,cpu=0", {"cpu": "0"}, {"note": "重启", "seconds_total": -0.0}, 12),
    ]
    decoded = list(chunks.decode(chunks.encode(points)))
    assert [(p.series_key, p.tags, p.fields, p.ts_ns) for p in decoded] == points
    with pytest.raises(ValueError, match="unknown history chunk format"):
        list(chunks.decode(b"\x02" + chunks.encode(points)[1:]))


def test_points_are_chunked_per_host_measurement_and_minute_in_time_order():
    minute = chunks.CHUNK_NS
    rows = [(1, "m", "m", {}, {"v": i}, t) for i, t in enumerate([minute + 5, 3, minute + 1, 7])] + [(2, "m", "m", {}, {"v": 9}, 4)]
    made = sorted((c.host_id, c.ts_ns, c.ts_max_ns, c.points) for c in chunks.chunks_of(rows))
    assert made == [(1, 3, 7, 2), (1, minute + 1, minute + 5, 2), (2, 4, 4, 1)]
    with pytest.raises(ValueError):
        chunks.chunks_of(rows, 7 * minute)  # not a divisor of the hour readers widen by


def _count(session, measurement: str) -> int:
    return session.scalar(select(func.count()).select_from(HistoryChunk).where(HistoryChunk.measurement == measurement))


def test_compaction_merges_finished_hours_and_reads_return_the_same(client: TestClient, admin, clock: Clock):
    host = enroll(client, admin, make_agency(client, admin, "health"), "his-db-1")
    hour_ns = chunks.HOUR_NS
    now_ns = int(clock.now.timestamp() * 1e9)
    last_hour = now_ns // hour_ns * hour_ns - hour_ns  # the finished hour before this one
    ticks = [last_hour + i * 15 * 10**9 for i in range(240)] + [now_ns - 10**9]  # a whole hour of 15 s batches, one point now
    rows = [(host.host_id, Point("host_cpu", {"cpu": str(c)}, {"seconds_total": i + c / 10}, at)) for i, at in enumerate(ticks) for c in range(2)]
    since, until = clock.now - timedelta(hours=3), clock.now + timedelta(minutes=1)
    with client.app.state.sessions() as session:
        for start in range(0, len(rows), 2):  # as ingest writes them: a batch at a time
            hosts.append_history_rows(session, rows[start:start + 2])
        session.commit()
        before = hosts.history(session, host_id=host.host_id, measurement="host_cpu", since=since, until=until, limit=10_000)
        assert len(before) == 482 and _count(session, "host_cpu") == 241  # a chunk per batch (a batch is within a minute)

        assert hosts.compact_history(session, now=clock.now) == 1
        session.commit()
        assert _count(session, "host_cpu") == 2  # the finished hour in one chunk; the current hour is left alone
        after = hosts.history(session, host_id=host.host_id, measurement="host_cpu", since=since, until=until, limit=10_000)
        assert after == before
        assert hosts.history(session, host_id=host.host_id, measurement="host_cpu", since=since, until=until, limit=5) == before[:5]
        assert hosts.compact_history(session, now=clock.now) == 0  # nothing left to merge

        late = Point("host_cpu", {"cpu": "0"}, {"seconds_total": -1.0}, last_hour + 7 * 10**9)  # an agent's replay, late
        hosts.append_history_rows(session, [(host.host_id, late)])
        session.commit()
        assert _count(session, "host_cpu") == 3 and hosts.compact_history(session, now=clock.now) == 1
        session.commit()
        merged = hosts.history(session, host_id=host.host_id, measurement="host_cpu", since=since, until=until, limit=10_000)
        assert _count(session, "host_cpu") == 2 and len(merged) == 483
        assert [p.fields["seconds_total"] for p in merged if p.ts_ns == late.ns] == [-1.0]
        charts = hosts.downsampled_history(session, host_id=host.host_id, measurement="host_cpu", since=since, until=until, buckets=12)
        assert sorted(charts) == ["host_cpu,cpu=0", "host_cpu,cpu=1"]
        assert charts["host_cpu,cpu=1"].points[-1] == ((now_ns - 10**9) / 1e9, {"seconds_total": 240.1})
