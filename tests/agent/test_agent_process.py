"""`egovmon agent` as a real process with its real collectors: /metrics, kill -9, install, `egovmon up`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serverproc import RunningServer, start_server
from tests.services import free_port, require_program, start_prometheus, wait_until

ROOT = Path(__file__).resolve().parents[2]
EGOVMON = [sys.executable, "-m", "cli"]


require = require_program


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(tmp_path / "server")
    yield running
    running.stop()


def write_config(tmp_path: Path, metrics_port: int, host_interval: float = 1) -> Path:
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'agent'}\nhostname: agent-under-test\n"
        f"metrics: {{listen: '127.0.0.1:{metrics_port}'}}\n"
        f"collectors: {{host: {{interval_seconds: {host_interval}, jitter_seconds: 0}}, netstate: {{enabled: false}}}}\n"
        "shipper: {flush_interval_seconds: 0.2, backoff_initial_seconds: 0.1, backoff_max_seconds: 0.5}\n"
    )
    return config


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EGOVMON, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def start_agent(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*EGOVMON, "agent", "run", "--config", str(config)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def host_id(server: RunningServer, hostname: str) -> int | None:
    hosts = httpx.get(f"{server.url}/api/v1/hosts", headers=server.admin).json()
    return next((h["id"] for h in hosts if h["hostname"] == hostname), None)


def scrape(url: str) -> str | None:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None
    return response.text if response.status_code == 200 and "host_cpu_seconds_total" in response.text else None


def test_metrics_endpoint_passes_promtool_and_is_scraped_by_prometheus(tmp_path, server):
    promtool = require("promtool")
    config = write_config(tmp_path, metrics_port := free_port())
    enrolled = cli("agent", "enroll", "--config", str(config), "--server", server.url, "--token", server.enrollment_token("health"))
    assert enrolled.returncode == 0, enrolled.stderr
    agent = start_agent(config)
    try:
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        exposition = wait_until(lambda: scrape(url), 30, "the agent's host metrics")
        check = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert re.search(r'^host_memory_total_bytes \d', exposition, re.MULTILINE)
        assert "egovmon_agent_collector_up" in exposition
        prometheus = start_prometheus(tmp_path / "prometheus", {"egovmon_agent": f"127.0.0.1:{metrics_port}"})
        try:
            up = wait_until(lambda: prometheus.query('up{job="egovmon_agent"} == 1'), 30, "a successful scrape")
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{metrics_port}"
            cpu = wait_until(lambda: prometheus.query('host_cpu_seconds_total{mode="user"}'), 30, "host CPU series")
            assert float(cpu[0]["value"][1]) > 0
        finally:
            prometheus.stop()
    finally:
        stop(agent)


def test_batches_queued_before_kill_9_are_delivered_after_restart(tmp_path, server):
    config = write_config(tmp_path, free_port(), host_interval=0.3)
    assert cli("agent", "enroll", "--config", str(config), "--server", server.url, "--token", server.enrollment_token("health")).returncode == 0
    port = int(server.url.rsplit(":", 1)[1])
    server.stop()
    queue = tmp_path / "agent" / "queue"
    agent = start_agent(config)
    try:
        wait_until(lambda: queue.exists() and len(list(queue.glob("*.batch"))) >= 3, 30, "batches queued while the server is down")
    finally:
        agent.kill()  # SIGKILL: no chance to flush or clean up
        agent.wait()
    killed_at = time.time()
    queued = len(list(queue.glob("*.batch")))
    restarted = start_server(tmp_path / "server", port=port)
    agent = start_agent(config)
    try:
        wait_until(lambda: host_id(restarted, "agent-under-test") is not None, 30, "the host")
        ident = host_id(restarted, "agent-under-test")

        def oldest_point() -> float | None:
            points = httpx.get(
                f"{restarted.url}/api/v1/hosts/{ident}/history",
                params={"measurement": "host_memory", "since": "2000-01-01T00:00:00Z"}, headers=restarted.admin,
            ).json()
            return min((_epoch(p["timestamp"]) for p in points), default=None)

        wait_until(lambda: (oldest_point() or killed_at) < killed_at - 0.5, 30, "points collected before the kill")
        wait_until(lambda: len(list(queue.glob("*.batch"))) == 0, 30, "the queue to drain")
        assert queued >= 3
    finally:
        stop(agent)
        restarted.stop()


def test_install_writes_an_unprivileged_unit_and_a_config(tmp_path):
    result = cli("agent", "install", "--root", str(tmp_path), "--user", "egovmon")
    assert result.returncode == 0, result.stderr
    unit = (tmp_path / "etc/systemd/system/egovmon-agent.service").read_text()
    assert "User=egovmon" in unit and "AmbientCapabilities=CAP_NET_RAW" in unit and "CapabilityBoundingSet=CAP_NET_RAW" in unit
    assert "NoNewPrivileges=yes" in unit and "agent run --config /etc/egovmon/agent.yaml" in unit
    from agent.settings import load_agent_settings

    settings = load_agent_settings(tmp_path / "etc/egovmon/agent.yaml")
    assert settings.state_dir == Path("/var/lib/egovmon-agent") and settings.collectors.host.interval_seconds == 15
    again = cli("agent", "install", "--root", str(tmp_path))
    assert "kept existing" in again.stdout


def test_capability_mask_is_read_from_proc_status():
    from cli.agent import CAP_NET_RAW, effective_capabilities

    status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000000000002000\n"
    assert effective_capabilities(status) == 1 << CAP_NET_RAW
    assert effective_capabilities("Name:\tx\n") == 0


def test_up_monitors_the_machine_it_runs_on(tmp_path):
    process = subprocess.Popen(
        [*EGOVMON, "up", "--data-dir", str(tmp_path / "data"), "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline()).group(0)
        wait_until(lambda: (tmp_path / "data" / "initial-admin-token").exists(), 30, "the admin token")
        admin = {"Authorization": f"Bearer {(tmp_path / 'data' / 'initial-admin-token').read_text().strip()}"}

        def local_host_values() -> list[dict] | None:
            try:
                hosts = httpx.get(f"{url}/api/v1/hosts", headers=admin).json()
            except httpx.TransportError:
                return None
            if not hosts:
                return None
            latest = httpx.get(f"{url}/api/v1/hosts/{hosts[0]['id']}/latest", headers=admin).json()
            return [s for s in latest if s["measurement"] == "host_memory"] or None

        memory = wait_until(local_host_values, 40, "the local agent's host metrics")
        assert memory[0]["fields"]["total_bytes"] > 0
        agencies = httpx.get(f"{url}/api/v1/agencies", headers=admin).json()
        assert [a["code"] for a in agencies] == ["egov-office"]
        # First run, nothing declared: every network of this machine is a finding, with a hint how to declare it.
        networks = _global_ipv4_networks()
        if networks:
            found = wait_until(
                lambda: {f["subject"]: f for f in httpx.get(f"{url}/api/v1/findings", headers=admin).json()
                         if f["rule_id"] == "undeclared_network"} or None,
                30, "findings for this machine's networks",
            )  # fmt: skip
            assert networks <= set(found)
            assert all("申报" in f["hint"] and f["article"] == "第九条、第三十条第（二）项" for f in found.values())
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(20)


def _global_ipv4_networks() -> set[str]:
    """This machine's IPv4 networks that egovmon treats as business networks (not lo, docker, link-local)."""
    import ipaddress

    import psutil

    from inventory.observed import ignored_interface, is_special

    found = set()
    for name, addresses in psutil.net_if_addrs().items():
        for a in addresses:
            if a.family.name == "AF_INET" and a.netmask and not ignored_interface(name):
                network = ipaddress.ip_network(f"{a.address}/{a.netmask}", strict=False)
                if not is_special(network):
                    found.add(str(network))
    return found


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_declared_backup_job_reaches_the_server(tmp_path, server):
    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "db-2026-11-28.sql.gz").write_bytes(b"\x1f\x8b" + b"0" * 1000)
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'agent'}\nhostname: backup-host\nmetrics: {{listen: null}}\n"
        "collectors: {host: {enabled: false}, netstate: {enabled: false}, backup: {interval_seconds: 1, jitter_seconds: 0}}\n"
        f"backup_jobs: [{{name: db, kind: path, path: '{backups}', pattern: '*.sql.gz', rpo_seconds: 3600}}]\n"
        "shipper: {flush_interval_seconds: 0.2}\n"
    )
    assert cli("agent", "enroll", "--config", str(config), "--server", server.url, "--token", server.enrollment_token("dr")).returncode == 0
    agent = start_agent(config)
    try:
        wait_until(lambda: host_id(server, "backup-host") is not None, 30, "the host")
        ident = host_id(server, "backup-host")

        def backup_fields() -> dict | None:
            latest = httpx.get(f"{server.url}/api/v1/hosts/{ident}/latest", params={"measurement": "backup"}, headers=server.admin).json()
            return latest[0]["fields"] if latest else None

        fields = wait_until(backup_fields, 30, "the backup samples")
        assert (fields["rpo_ok"], fields["check_ok"], fields["size_bytes"]) == (1, 1, 1002)
        statuses = httpx.get(
            f"{server.url}/api/v1/hosts/{ident}/observations", params={"kind": "backup_status"}, headers=server.admin
        ).json()
        assert statuses[0]["subject"] == "db" and statuses[0]["attributes"]["status"] == "ok"
    finally:
        stop(agent)
