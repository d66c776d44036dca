"""Console findings pages at scale: render time of the findings list (open tab, unfiltered and filtered) and of
one finding's page with its history, over many findings and a large audit log, on the embedded SQLite store.

Run: `.venv/bin/python bench/console_findings.py [--findings 1000] [--audit 200000] [--repeat 20]`

The list reads at most 1,000 findings per page (server/ui/views.py MAX_LISTED); the finding page reads its
history from the audit log by target (index ix_audit_log_target). Prints the median and worst time per page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient

from server.app import create_app
from server.audit.models import AuditEvent
from server.findings.models import Finding
from server.settings import load_settings

PASSWORD = "correct-horse-battery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1000)
    parser.add_argument("--audit", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(None, data_dir=Path(tmp) / "data", server={"database_url": f"sqlite:///{tmp}/state.db"})
        with TestClient(create_app(settings)) as client:
            admin = {"Authorization": f"Bearer {(settings.data_dir / 'initial-admin-token').read_text().strip()}"}
            agencies = [client.post("/api/v1/agencies", headers=admin, json={"code": f"a{i}", "name": f"单位{i}"}).json()["id"] for i in range(10)]
            now = datetime.now(UTC)
            with client.app.state.sessions() as session:
                session.add_all(
                    Finding(rule_id="undeclared_network", subject=f"10.{i // 256}.{i % 256}.0/24", agency_id=agencies[i % 10],
                            severity="warning", confidence=0.5, status="open" if i % 3 else "remediated", first_seen_at=now,
                            last_seen_at=now - timedelta(seconds=i), status_changed_at=now, status_by="system", approval_ref=None,
                            note="", sources=["netstate"], detail={},
                            evidence=[{"source": "netstate", "kind": "interface_address", "subject": f"10.{i // 256}.{i % 256}.5/24",
                                       "host": f"h{i}", "observed_at": now.isoformat()}])
                    for i in range(args.findings))  # fmt: skip
                session.add_all(AuditEvent(at=now, actor="user:x", action="finding.acknowledge", target_type="finding",
                                           target_id=str(i % (args.findings * 10)), details={"from": "open", "to": "acknowledged"},
                                           remote_addr=None) for i in range(args.audit))  # fmt: skip
                session.commit()
            client.post("/api/v1/users", headers=admin, json={"username": "sec", "role": "security", "password": PASSWORD})
            client.post("/ui/login", data={"username": "sec", "password": PASSWORD})
            pages = {"list, open tab": "/ui/findings", "list, agency+search": "/ui/findings?agency=a3&q=10.1.",
                     "list, closed tab": "/ui/findings?tab=closed", "one finding": "/ui/findings/7"}  # fmt: skip
            print(f"{args.findings} findings, {args.audit} audit events, {args.repeat} renders each (SQLite)")
            for name, path in pages.items():
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    response = client.get(path)
                    times.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                print(f"  {name:22s} median {statistics.median(times):7.1f} ms   worst {max(times):7.1f} ms   {len(response.text) // 1024} KiB")


if __name__ == "__main__":
    main()
