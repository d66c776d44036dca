"""The server's /metrics: time per scrape, one process versus two workers, with a full outbox.

Run: `.venv/bin/python bench/metrics_scrape.py [--notifications 50000] [--scrapes 50]`

The state database (SQLite) is seeded with `--notifications` outbox rows over 20 receivers and four statuses,
and as many resolved alerts: the scrape-time part of /metrics (`egovmon_notifications`, `egovmon_findings`,
`egovmon_alerts`) is one GROUP BY per family over them. Then `egovmon server` runs as a real process, with one
worker and with two (prometheus-client's multiprocess mode: each scrape also reads every worker's files), and
this script scrapes it `--scrapes` times. Anchor: prometheus-node-exporter's own /metrics on the same machine.
Printed: milliseconds per scrape (median), exposition bytes, and the ratio to node_exporter.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serverproc import start_server  # noqa: E402
from tests.services import _spawn, free_port, wait_until  # noqa: E402


def seed(data_dir: Path, notifications: int) -> None:
    from server.alerting.models import AlertRecord, Notification
    from server.database import make_engine, make_sessionmaker, migrate
    from server.settings import load_settings

    settings = load_settings(None, data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    statuses = ("pending", "sending", "sent", "failed")
    with sessions() as session, session.begin():
        session.add_all(Notification(receiver=f"r{i % 20}", group_key=str(i), kind="webhook", body={}, fingerprints=[],
                                     status=statuses[i % 4], attempts=1, created_at=now, next_attempt_at=now, last_error="")
                        for i in range(notifications))  # fmt: skip
        session.add_all(AlertRecord(fingerprint=f"{i:016x}", alertname=f"A{i % 10}", severity="warning", labels={}, annotations={},
                                    status="resolved", active_since=now) for i in range(notifications))  # fmt: skip
    engine.dispose()


def scrape_ms(url: str, scrapes: int) -> tuple[float, int]:
    times, size = [], 0
    with httpx.Client(timeout=30) as client:
        client.get(url)
        for _ in range(scrapes):
            started = time.perf_counter()
            size = len(client.get(url).content)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notifications", type=int, default=50_000)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for workers in (1, 2):
            workdir = Path(tmp) / f"w{workers}"
            seed(workdir / "data", args.notifications)
            server = start_server(workdir, workers=workers, port=free_port())
            try:
                results[f"egovmon, {workers} worker(s)"] = scrape_ms(f"{server.url}/metrics", args.scrapes)
            finally:
                server.stop()
        port = free_port()
        node = _spawn("node_exporter", ["prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{port}"], Path(tmp) / "node.log")
        try:
            wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200 if node.running() else None, 20,
                       "node_exporter")  # fmt: skip
            anchor = scrape_ms(f"http://127.0.0.1:{port}/metrics", args.scrapes)
        finally:
            node.stop()
    print(f"{args.notifications} outbox rows and {args.notifications} alerts in SQLite; median of {args.scrapes} scrapes")
    for name, (ms, size) in results.items():
        print(f"  {name:<22} {ms:8.1f} ms  {size:8d} bytes  ×{ms / anchor[0]:.1f} node_exporter")
    print(f"  {'node_exporter':<22} {anchor[0]:8.1f} ms  {anchor[1]:8d} bytes")


if __name__ == "__main__":
    main()
