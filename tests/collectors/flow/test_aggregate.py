"""Flow aggregation on hand-built records with exact expected sums."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import numpy as np

from collectors.flow.aggregate import AggregateSettings, FlowWindow, PrefixSet, address_text, prefix_of, summarise
from collectors.flow.model import FLOW_DTYPE

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def addr(text: str) -> bytes:
    ip = ipaddress.ip_address(text)
    return (bytes(10) + b"\xff\xff" + ip.packed) if ip.version == 4 else ip.packed


def records(*rows: dict) -> np.ndarray:
    out = np.zeros(len(rows), dtype=FLOW_DTYPE)
    for i, row in enumerate(rows):
        for key, value in row.items():
            out[i][key] = addr(value) if key.endswith("_addr") else value
        out[i]["sampling_rate"] = row.get("sampling_rate", 1)
    return out


def flow(src: str, dst: str, *, packets=1, octets=100, protocol=6, dst_port=443, input_if=1, output_if=2, **extra) -> dict:
    return {"src_addr": src, "dst_addr": dst, "packets": packets, "bytes": octets, "protocol": protocol,
            "dst_port": dst_port, "input_if": input_if, "output_if": output_if, "ip_version": 4, **extra}


def test_prefix_set_and_prefixes_are_vectorized_and_exact():
    plan = PrefixSet(["10.10.0.0/16", "2001:db8::/32"])
    addresses = np.array([addr("10.10.3.4"), addr("10.11.0.1"), addr("2001:db8::1"), addr("2001:db9::1")], dtype="S16")
    assert plan.contains(addresses).tolist() == [True, False, True, False]
    assert [address_text(bytes(a)) for a in prefix_of(addresses)] == ["10.10.3.0", "10.11.0.0", "2001:db8::", "2001:db9::"]


def test_totals_interfaces_sampling_and_unplanned_traffic():
    window = FlowWindow()
    window.add("192.0.2.1", records(
        flow("10.10.1.5", "8.8.8.8", packets=2, octets=200),
        flow("172.16.40.7", "10.10.1.5", packets=3, octets=300, sampling_rate=10, input_if=3),
        flow("192.168.99.9", "10.10.1.6", packets=1, octets=50),
    ))
    samples, observations = summarise(window.take(), AggregateSettings(approved_prefixes=["10.10.0.0/16"]), at=AT)
    got = {(s.measurement, tuple(sorted(s.tags.items()))): s.fields for s in samples}
    assert got[("flow", (("exporter", "192.0.2.1"),))] == {"bytes": 200 + 3000 + 50, "packets": 2 + 30 + 1, "flows": 3}
    assert got[("flow_interface", (("direction", "in"), ("exporter", "192.0.2.1"), ("interface", "3")))] == {"bytes": 3000, "packets": 30, "flows": 1}
    assert got[("flow_unplanned", (("direction", "from"), ("exporter", "192.0.2.1")))] == {"bytes": 3050, "packets": 31, "flows": 2}
    assert got[("flow_unplanned", (("direction", "to"), ("exporter", "192.0.2.1")))] == {"bytes": 0, "packets": 0, "flows": 0}
    unplanned = sorted(o.subject for o in observations if o.kind == "flow_unplanned_address")
    assert unplanned == ["172.16.40.7", "192.168.99.9"]
    subnets = {o.subject: o.attributes["in_plan"] for o in observations if o.kind == "flow_subnet"}
    assert subnets == {"10.10.1.0/24": True, "172.16.40.0/24": False, "192.168.99.0/24": False}
    top = [s for s in samples if s.measurement == "flow_top"]
    assert top[0].tags["src_prefix"] == "172.16.40.0/24" and top[0].tags["rank"] == "1" and top[0].fields["bytes"] == 3000


def test_gateway_candidates_by_peers_and_ttls():
    many = [flow("10.20.0.1", f"10.30.{i // 250}.{i % 250}") for i in range(60)]
    ttls = [flow("10.20.0.2", "10.30.9.9", ttl_min=60, ttl_max=64), flow("10.20.0.2", "10.30.9.9", ttl_min=126, ttl_max=126)]
    quiet = [flow("10.20.0.3", "10.30.9.9")]
    samples, observations = summarise({"e": records(*many, *ttls, *quiet)}, AggregateSettings(), at=AT)
    gateways = {o.subject: o.attributes for o in observations if o.kind == "flow_gateway_candidate"}
    assert gateways == {
        "10.20.0.1": {"exporter": "e", "distinct_peers": 60, "distinct_ttls": 0},
        "10.20.0.2": {"exporter": "e", "distinct_peers": 1, "distinct_ttls": 3},
    }
