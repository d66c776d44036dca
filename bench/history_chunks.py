"""Embedded history on disk: N agents' hour of the real agent batch (31 points every 15 s) in a SQLite file,
as ingest writes it (a chunk per batch) and after compaction (a chunk per host, measurement and hour).

Counters grow by random steps and gauges move ±10 % at random, so zlib has the entropy of real values, not
repeats. Prints database bytes per agent-hour and per point before and after, the compaction's cost per merged
hour, and the 24 h figure for 2,000 agents next to the one-row-per-point layout it replaced (1.68 MiB per
agent-hour, measured by bench/fleet.py before chunks). Run: `python bench/history_chunks.py [--agents 40]`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.fleetbatch import collect_host_samples  # noqa: E402
from server.database import make_engine, migrate  # noqa: E402
from server.history.base import Point  # noqa: E402
from server.hosts import chunks  # noqa: E402
from server.hosts import service as hosts  # noqa: E402

ROW_PER_POINT_MIB = 1.68  # MiB per agent-hour of the previous layout (bench/fleet.py, embedded, 1,500 agents)


def _values(samples, agents: int, rnd: random.Random):
    """Each agent's batch 240 times (an hour), values moving as real ones do."""
    state: dict[tuple, float] = {}
    for _ in range(240):
        batch = []
        for host in range(1, agents + 1):
            for s in samples:
                fields = {}
                for name, value in s.fields.items():
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        fields[name] = value
                    elif name.endswith("_total"):
                        key = (host, s.measurement, tuple(sorted(s.tags.items())), name)
                        state[key] = state.get(key, value) + (rnd.random() * 50 if isinstance(value, float) else rnd.randint(0, 5000))
                        fields[name] = round(state[key], 2) if isinstance(value, float) else int(state[key])
                    else:
                        fields[name] = round(value * (0.9 + 0.2 * rnd.random()), 2) if isinstance(value, float) else int(value * (0.9 + 0.2 * rnd.random()))
                batch.append((host, s.measurement, dict(s.tags), fields))
        yield batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=40)
    args = parser.parse_args()
    samples = collect_host_samples()
    workdir = Path(tempfile.mkdtemp(prefix="egovmon-history-"))
    url = f"sqlite:///{workdir / 'state.db'}"
    engine = make_engine(url)
    migrate(engine)
    at = "2026-12-01 00:00:00+00"
    with engine.begin() as connection:
        connection.execute(text(f"INSERT INTO agencies (id, code, name, created_at) VALUES (1, 'bench', 'bench', '{at}')"))
        for host in range(1, args.agents + 1):
            connection.execute(text(f"INSERT INTO hosts (id, agency_id, hostname, created_at) VALUES ({host}, 1, 'h{host}', '{at}')"))
    now_ns = time.time_ns()
    start = now_ns // chunks.HOUR_NS * chunks.HOUR_NS - 2 * chunks.HOUR_NS  # a finished hour
    rnd = random.Random(1)
    with Session(engine) as session:
        for index, batch in enumerate(_values(samples, args.agents, rnd)):
            at_ns = start + index * 15 * 10**9
            hosts.append_history_rows(session, [(host, Point(m, tags, fields, at_ns + rnd.randint(0, 10**9))) for host, m, tags, fields in batch])
            session.commit()

    def size(label: str) -> float:
        with engine.connect() as connection:
            connection.execute(text("VACUUM"))
            rows, points = connection.execute(text("SELECT count(*), sum(points) FROM history_chunks")).one()
        total = os.path.getsize(workdir / "state.db")
        per_agent_hour = total / args.agents / 2**20
        print(f"{label:<22} rows {rows:>7,}  points {points:,}  {total / 2**20:7.1f} MiB  {per_agent_hour:.3f} MiB per agent-hour  "
              f"{total / points:5.1f} B per point")
        return per_agent_hour

    size("chunk per batch")
    started, merged = time.perf_counter(), 0
    with Session(engine) as session:
        while (step := hosts.compact_history(session, now=datetime.fromtimestamp(now_ns / 1e9, UTC), groups=10)) > 0:
            session.commit()
            merged += step
    seconds = time.perf_counter() - started
    compacted = size("compacted (hourly)")
    print(f"compaction: {merged} hours merged in {seconds:.2f} s, {seconds / max(merged, 1) * 1000:.1f} ms each; "
          f"2,000 agents need {2000 * 9 * seconds / max(merged, 1) / 60:.1f} s of it a minute")
    print(f"2,000 agents x 24 h: {2000 * 24 * compacted / 1024:.1f} GiB compacted vs {2000 * 24 * ROW_PER_POINT_MIB / 1024:.1f} GiB "
          f"one row per point (ratio {ROW_PER_POINT_MIB / compacted:.1f})")
    engine.dispose()


if __name__ == "__main__":
    main()
