"""A collector host's agent receives a real softflowd IPFIX export and ships flow aggregates to a real server.

softflowd exports the scapy-built traffic pcap (tests/flowtraffic.py) to the
agent's flow listener; the agent's `flow` collector summarises each interval
and the shipper delivers the samples and observations to an `egovmon server`
process. What the server stores must add up to exactly what was exported:
flows, packets and bytes, and one active-subnet observation for every /24
that the traffic used (all of it private space outside the empty address plan), each also a finding.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.runtime import build, enroll
from agent.scheduler import Job
from agent.settings import ScheduleSettings
from collectors.flow.collector import FlowCollector
from collectors.flow.settings import FlowSettings
from tests.agent.test_agent import agent_settings, running
from tests.flowtraffic import PACKETS, SOFTFLOWD_OPTIONS, Traffic, write_traffic
from tests.serverproc import RunningServer, start_server
from tests.services import require_program, wait_until


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running_server = start_server(tmp_path / "server")
    yield running_server
    running_server.stop()


def _history(server: RunningServer, host_id: int, measurement: str) -> list[dict]:
    response = httpx.get(
        f"{server.url}/api/v1/hosts/{host_id}/history", params={"measurement": measurement}, headers=server.admin, timeout=10
    )
    response.raise_for_status()
    return response.json()


def _subnets(traffic: Traffic) -> set[str]:
    from scapy.layers.inet import IP
    from scapy.utils import rdpcap

    nets = set()
    for packet in rdpcap(str(traffic.pcap)):
        for address in (packet[IP].src, packet[IP].dst):
            nets.add(str(ipaddress.ip_network(f"{address}/24", strict=False)))
    return nets


def test_flow_aggregates_reach_the_server_and_add_up(tmp_path, server):
    softflowd = require_program("softflowd")
    traffic = write_traffic(tmp_path / "traffic.pcap")
    credential = enroll(server.url, server.enrollment_token("bigdata"), hostname="collector-1", state_dir=tmp_path / "agent")
    collector = FlowCollector(FlowSettings(listen_host="127.0.0.1", listen_port=0))
    collector.start()
    port = collector.listener.address[1]
    schedule = ScheduleSettings(interval_seconds=1, jitter_seconds=0, timeout_seconds=5)
    agent = build(agent_settings(tmp_path / "agent"), jobs=[Job(collector, schedule)])
    try:
        with running(agent):
            export = subprocess.run(
                [softflowd, "-r", str(traffic.pcap), "-n", f"127.0.0.1:{port}", "-v", "10", *SOFTFLOWD_OPTIONS[10]],
                capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            exported = int(re.search(r"Flows exported: (\d+)", export.stdout)[1])

            def totals() -> tuple[int, int, int]:
                points = [p for p in _history(server, credential.host_id, "flow") if p["tags"].get("exporter") == "127.0.0.1"]
                return (
                    sum(p["fields"]["flows"] for p in points),
                    sum(p["fields"]["packets"] for p in points),
                    sum(p["fields"]["bytes"] for p in points),
                )

            wait_until(lambda: totals()[0] >= exported, 30, f"{exported} flows at the server")
            assert totals() == (exported, PACKETS, traffic.ip_bytes)

            def subnets() -> set[str]:
                response = httpx.get(
                    f"{server.url}/api/v1/hosts/{credential.host_id}/observations",
                    params={"kind": "flow_subnet", "limit": 5000}, headers=server.admin, timeout=10,
                )  # fmt: skip
                response.raise_for_status()
                return {o["subject"] for o in response.json()}

            expected = _subnets(traffic)
            seen = wait_until(lambda: (s := subnets()) >= expected and s, 30, "every /24 as an observation")
            assert seen == expected
            # Nothing is declared: every active subnet seen in the flows is a finding, with the flows as evidence.
            findings = httpx.get(f"{server.url}/api/v1/findings", params={"rule_id": "undeclared_network"},
                                 headers=server.admin, timeout=10).json()
            flow_findings = {f["subject"] for f in findings if "flow" in f["sources"]}
            assert flow_findings == expected
            receiver = wait_until(lambda: _history(server, credential.host_id, "flow_receiver"), 30, "receiver counters")
            last = max(receiver, key=lambda p: p["timestamp"])["fields"]
            assert (last["records_total"], last["malformed_total"], last["queue_drops_total"]) == (exported, 0, 0)
    finally:
        collector.close()
