"""Time to render the console's host page on the embedded store with 7 days of 15-second history of one host.

Seeds a fresh SQLite state database (in a temporary directory) with 7 days of
15-second points of every series a real HostCollector snapshot of this machine
has (its CPUs by mode, load, memory, swap, filesystems, disks, interfaces), the
counters increasing and the gauges varying, then renders `/ui/hosts/{id}` as an
admin in-process (FastAPI's TestClient: no network, the page's full server
work: the downsampled history queries, the charts, the template) several times
per range and prints the timings: the first render of a range (nothing in the console's bucket cache) and the
following ones (complete buckets from the cache, only the newest read). The target for 7 days is < 300 ms.

Run: PYTHONPATH=. python -m bench.console_render [--days 7] [--repeat 5]  (as a module: bench/alerting.py would
shadow the alerting package if run as a script)
The embedded history keeps 24 h by default; this sets the retention to the days seeded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from collectors.host import host_samples, read_snapshot
from server.app import create_app
from server.history.base import Point
from server.hosts import service as hosts
from server.settings import load_settings
from server.ui.views import COOKIE

INTERVAL_SECONDS = 15
CHUNK = 20_000  # points per INSERT statement


def seed(client: TestClient, admin: dict[str, str], *, days: float, now: datetime) -> tuple[int, int]:
    """Enrol one host and write `days` of 15-second history for it; returns (host id, points written)."""
    agency = client.post("/api/v1/agencies", json={"code": "bench", "name": "基准测试"}, headers=admin).json()["id"]
    token = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency}, headers=admin).json()["token"]
    host_id = client.post("/api/v1/agents/enroll", json={"token": token, "hostname": "bench-host-1"}).json()["host_id"]
    template = host_samples(read_snapshot(), at=now)
    steps = int(days * 86400 / INTERVAL_SECONDS)
    start_ns = int((now - timedelta(days=days)).timestamp() * 1e9)
    written = 0
    rows: list[tuple[int, Point]] = []
    with client.app.state.sessions() as session:
        for step in range(steps):
            ns = start_ns + step * INTERVAL_SECONDS * 1_000_000_000
            wave = (step % 240) / 240  # gauges go up and down over an hour
            for sample in template:
                fields = {}
                for name, value in sample.fields.items():
                    if name.endswith("_total"):  # counters grow steadily
                        fields[name] = value + step * 1000
                    elif isinstance(value, float):
                        fields[name] = value * (0.5 + wave)
                    else:
                        fields[name] = value
                rows.append((host_id, Point(sample.measurement, dict(sample.tags), fields, ns)))
            if len(rows) >= CHUNK:
                hosts.append_history_rows(session, rows)
                written += len(rows)
                rows = []
        hosts.append_history_rows(session, rows)
        written += len(rows)
        session.commit()
    return host_id, written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="console-bench-") as tmp:
        data = Path(tmp) / "data"
        settings = load_settings(None, data_dir=data, server={"database_url": f"sqlite:///{Path(tmp) / 'state.db'}",
                                                             "history_retention_hours": args.days * 24 + 1})  # fmt: skip
        with TestClient(create_app(settings)) as client:
            token = (data / "initial-admin-token").read_text().strip()
            admin = {"Authorization": f"Bearer {token}"}
            began = time.perf_counter()
            host_id, points = seed(client, admin, days=args.days, now=datetime.now(UTC))
            print(f"seeded {points:,} points ({args.days:g} days of {INTERVAL_SECONDS} s) in {time.perf_counter() - began:.1f} s")
            client.cookies.set(COOKIE, token)
            for name in ("1h", "24h", "7d"):
                timings = []
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    response = client.get(f"/ui/hosts/{host_id}", params={"range": name})
                    timings.append((time.perf_counter() - began) * 1000)
                    assert response.status_code == 200, response.text[:300]
                drawn = response.text.count('class="series"')
                warm = timings[1:] or timings
                print(f"host page range={name}: first render {timings[0]:.0f} ms (nothing cached), then median "
                      f"{statistics.median(warm):.0f} ms, max {max(warm):.0f} ms over {len(warm)} renders (complete buckets "
                      f"from the cache) ({drawn} series drawn, {len(response.content) / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
