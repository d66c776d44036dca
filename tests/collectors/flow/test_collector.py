"""The agent's flow collector: real UDP on loopback in, interval samples and observations out."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

from collectors.flow.collector import FlowCollector
from collectors.flow.decode import read_datagrams
from collectors.flow.settings import FlowSettings
from core.collect import LOCAL
from tests.services import wait_until

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "flows"
AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_softflowd_v5_export_becomes_interval_samples():
    collector = FlowCollector(
        FlowSettings(listen_host="127.0.0.1", listen_port=0, approved_prefixes=["10.0.2.0/24"]), clock=lambda: AT
    )
    collector.start()
    try:
        port = collector.listener.address[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _, datagram in read_datagrams(FIXTURES / "netflow5.dat"):
                sender.sendto(datagram, ("127.0.0.1", port))
        wait_until(lambda: collector.listener.stats().total("datagrams") == 12, 10, "12 datagrams")
        reading = asyncio.run(collector.collect(LOCAL, timeout=10))
        again = asyncio.run(collector.collect(LOCAL, timeout=10))
    finally:
        collector.close()
    by = {(s.measurement, tuple(sorted(s.tags.items()))): s.fields for s in reading.samples}
    assert by[("flow", (("exporter", "127.0.0.1"),))] == {"bytes": 18684, "packets": 230, "flows": 30}
    assert by[("flow_receiver", (("exporter", "127.0.0.1"),))]["datagrams_total"] == 12
    assert by[("flow_unplanned", (("direction", "from"), ("exporter", "127.0.0.1")))]["flows"] == 0
    assert {o.subject for o in reading.observations if o.kind == "flow_subnet"} == {"10.0.2.0/24"}
    # the window was taken: the next interval starts empty, the receiver counters stay cumulative
    again_by = {(s.measurement, tuple(sorted(s.tags.items()))): s.fields for s in again.samples}
    assert ("flow", (("exporter", "127.0.0.1"),)) not in again_by
    assert again_by[("flow_receiver", (("exporter", "127.0.0.1"),))]["records_total"] == 30


def test_interface_names_from_options_data_tag_interface_samples():
    """Cisco ASR9k announces interface names in options data (scope: interface); its flows then carry them."""
    collector = FlowCollector(FlowSettings(listen_host="127.0.0.1", listen_port=0), clock=lambda: AT)
    collector.start()
    files = ["netflow9_test_cisco_asr9k_opttpl256.dat", "netflow9_test_cisco_asr9k_data256.dat",
             "netflow9_test_cisco_asr9k_tpl260.dat", "netflow9_test_cisco_asr9k_data260.dat"]  # fmt: skip
    try:
        port = collector.listener.address[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for name in files:
                for _, datagram in read_datagrams(FIXTURES / name):
                    sender.sendto(datagram, ("127.0.0.1", port))
        wait_until(lambda: collector.listener.stats().total("records") == 21, 10, "21 flow records")
        reading = asyncio.run(collector.collect(LOCAL, timeout=10))
    finally:
        collector.close()
    named = {
        (s.tags["direction"], s.tags["interface"]): s.tags.get("interface_name")
        for s in reading.samples if s.measurement == "flow_interface"
    }  # fmt: skip
    # Options name 19 interfaces; the flows use 10, of which 7 are named (106, 158 and 46 are not).
    assert named == {
        ("in", "75"): "TenGigE0_0_1_1", ("in", "86"): "TenGigE0_1_0_0", ("in", "87"): "TenGigE0_1_0_1",
        ("in", "102"): "TenGigE0_6_0_0", ("in", "104"): "TenGigE0_6_0_2", ("in", "106"): None,
        ("in", "110"): "TenGigE0_6_1_0", ("in", "158"): None, ("in", "162"): "Bundle-Ether2",
        ("out", "46"): None, ("out", "87"): "TenGigE0_1_0_1", ("out", "102"): "TenGigE0_6_0_0",
        ("out", "104"): "TenGigE0_6_0_2", ("out", "106"): None, ("out", "110"): "TenGigE0_6_1_0",
        ("out", "158"): None, ("out", "162"): "Bundle-Ether2",
    }  # fmt: skip
