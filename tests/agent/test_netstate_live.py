"""A network change on the agent's host reaches the server within 5 s and, undeclared, becomes a finding at once
(server and agent in a namespace we own)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serverproc import start_server
from tests.services import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with loopback up; deleted afterwards, also on failure."""
    name = f"egv-{uuid.uuid4().hex[:8]}"
    created = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if created.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot create a network namespace: {created.stderr}")
        pytest.skip(f"cannot create a network namespace: {created.stderr.strip()}")
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def observations(db: Path, kind: str) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as connection:
        return connection.execute("SELECT subject, received_at FROM observations WHERE kind = ?", (kind,)).fetchall()


def findings(db: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT subject, rule_id, status FROM findings").fetchall()
    return {subject: (rule, status) for subject, rule, status in rows}


def test_new_address_reaches_the_server_within_5_seconds(tmp_path, netns):
    inside = ["ip", "netns", "exec", netns]
    server = start_server(tmp_path / "server", wrapper=inside)
    agent = None
    try:
        db = tmp_path / "server" / "data" / "egovmon.db"
        wait_until(lambda: db.exists() and (tmp_path / "server" / "data" / "initial-admin-token").exists(), 30, "the server")
        subprocess.run(
            [sys.executable, "-m", "cli", "admin", "--data-dir", str(tmp_path / "server" / "data"), "agency", "create", "health", "卫健委"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        token = subprocess.run(
            [sys.executable, "-m", "cli", "admin", "--data-dir", str(tmp_path / "server" / "data"), "--json",
             "enrollment-token", "create", "--agency", "health"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        secret = re.search(r'"token": "(egve_[^"]+)"', token.stdout).group(1)
        config = tmp_path / "agent.yaml"
        config.write_text(
            f"state_dir: {tmp_path / 'agent'}\nhostname: netns-host\nmetrics: {{listen: null}}\n"
            "collectors: {host: {enabled: false}, netstate: {interval_seconds: 3600, jitter_seconds: 0}}\n"
            "shipper: {flush_interval_seconds: 0.5}\n"
        )
        subprocess.run(
            [*inside, sys.executable, "-m", "cli", "agent", "enroll", "--config", str(config), "--server", server.url, "--token", secret],
            cwd=ROOT, check=True, capture_output=True, text=True,
        )
        agent = subprocess.Popen(
            [*inside, sys.executable, "-m", "cli", "agent", "run", "--config", str(config)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        # The first scheduled run reports loopback; from then on only a change can trigger a run within the hour.
        wait_until(lambda: any(s.startswith("127.0.0.1/") for s, _ in observations(db, "interface_address")), 30, "the first run")
        time.sleep(1)  # let the watcher settle on a quiet kernel before the change
        changed_at = time.time()
        subprocess.run(["ip", "-n", netns, "link", "add", "egv-a", "type", "veth", "peer", "name", "egv-b"], check=True)
        subprocess.run(["ip", "-n", netns, "addr", "add", "10.77.9.1/24", "dev", "egv-a"], check=True)
        subprocess.run(["ip", "-n", netns, "link", "set", "egv-a", "up"], check=True)
        wait_until(lambda: any(s == "10.77.9.1/24" for s, _ in observations(db, "interface_address")), 5, "the new address at the server")
        assert time.time() - changed_at <= 5.5
        interfaces = {s for s, _ in observations(db, "interface")}
        assert {"egv-a", "egv-b"} <= interfaces
        # Nothing is declared: the new subnet is a finding at once (live reconciliation), loopback never is.
        wait_until(lambda: "10.77.9.0/24" in findings(db), 5, "the finding for the new subnet")
        assert time.time() - changed_at <= 10.5
        assert findings(db)["10.77.9.0/24"] == ("undeclared_network", "open")
        assert not any(subject.startswith("127.") for subject in findings(db))
    finally:
        if agent is not None:
            agent.terminate()
            agent.wait(10)
        server.stop()
