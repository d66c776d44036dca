"""The server's own /metrics with two workers (prometheus-client's multiprocess mode): `promtool check metrics`
accepts it, it shows ingest, evaluation, outbox, findings and process metrics of both workers combined, and a real
Prometheus scrapes it (target up=1)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.serverproc import start_server
from tests.services import free_port, require_program, start_prometheus, wait_until

EXTRA = """
alerting:
  evaluation_interval_seconds: 1
  dispatch_interval_seconds: 1
  receivers: [{name: soc, kind: webhook, url: "http://127.0.0.1:9/nothing-listens"}]
  route: {receiver: soc, group_wait_seconds: 0}
"""


def samples(text: str, name: str) -> dict[str, float]:
    """{line's labels part: value} of every sample named exactly `name`."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, value = line.rsplit(" ", 1)
            found[head[len(name):]] = float(value)
    return found


def test_two_workers_expose_combined_metrics_that_promtool_and_prometheus_accept(tmp_path: Path):
    promtool = require_program("promtool")
    require_program("prometheus")
    stale = tmp_path / "server" / "data" / "metrics-multiproc"
    stale.mkdir(parents=True)
    (stale / "counter_999999.db").write_bytes(b"left by an earlier run")  # emptied at start, never read
    server = start_server(tmp_path / "server", extra=EXTRA, workers=2, port=free_port())
    prometheus = None
    try:
        agent = server.agent("health", "his-db-1")
        for i in range(6):  # spread over both workers
            now = datetime.now(UTC).isoformat()
            batch = {"batch_id": f"b{i}", "samples": [{"measurement": "host_memory", "fields": {"available_bytes": 4, "total_bytes": 100}, "timestamp": now}],
                     "observations": [{"kind": "interface_address", "subject": "192.168.77.5/24", "source": "netstate", "observed_at": now,
                                       "attributes": {"interface": "eth1", "network": "192.168.77.0/24", "scope": "global"}}]}
            assert httpx.post(f"{server.url}/api/v1/ingest", json=batch, headers=agent).status_code == 200

        def complete() -> str | None:
            text = server.metrics()
            wanted = (samples(text, "egovmon_ingest_batches_total"), samples(text, "egovmon_alert_evaluation_duration_seconds_count"),
                      samples(text, "egovmon_notification_failures_total"), samples(text, "egovmon_findings"))
            return text if all(wanted) and sum(wanted[0].values()) == 6 else None

        text = wait_until(complete, 60, "ingest, evaluation, outbox and findings metrics")
        assert samples(text, "egovmon_findings") == {'{rule="undeclared_network",status="open"}': 1.0}
        outbox = samples(text, "egovmon_notifications")
        assert set(outbox) <= {'{receiver="soc",status="pending"}', '{receiver="soc",status="sending"}'} and sum(outbox.values()) >= 1
        assert samples(text, "egovmon_alert_rules")[""] > 5  # the default pack
        assert samples(text, "egovmon_server_workers") == {"": 3.0}  # two HTTP workers and the jobs process
        assert samples(text, "process_resident_memory_bytes")[""] > 0 and samples(text, "process_cpu_seconds_total")[""] > 0
        assert "counter_999999" not in " ".join(p.name for p in stale.iterdir())

        checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr

        prometheus = start_prometheus(tmp_path, {"egovmon": server.url.removeprefix("http://")})
        up = wait_until(lambda: prometheus.query('up{job="egovmon"}'), 30, "Prometheus' first scrape")
        targets = httpx.get(f"{prometheus.url}/api/v1/targets").json()["data"]["activeTargets"]
        assert up[0]["value"][1] == "1", [t.get("lastError") for t in targets]
        batches = wait_until(lambda: prometheus.query("sum(egovmon_ingest_batches_total)"), 30, "the scraped ingest counter")
        assert float(batches[0]["value"][1]) == 6
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.stop()


def test_one_process_exposes_the_same_families_and_promtool_accepts_them(tmp_path: Path):
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import load_settings

    promtool = require_program("promtool")
    with TestClient(create_app(load_settings(None, data_dir=tmp_path / "data"))) as client:
        client.app.state.alerting.cycle()
        text = client.get("/metrics").text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for family in ("egovmon_alert_evaluation_duration_seconds_count", "egovmon_alert_rules", "egovmon_alert_series",
                   "process_resident_memory_bytes", "process_cpu_seconds_total"):
        assert samples(text, family), family
    assert "# TYPE egovmon_notifications gauge" in text and "# TYPE egovmon_findings gauge" in text
