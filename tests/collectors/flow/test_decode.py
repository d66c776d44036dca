"""The pure flow decoder on real vendor captures: counts, exact values, and malformed input.

Values are checked against independent decoders: scapy (`scapy.layers.netflow`)
for NetFlow v5 and v9, and, for IPFIX, values read with tshark 4 (`-d
udp.port==N,cflow`) and written down here. The logstash `.dat` files are in
tests/fixtures/flows (Apache-2.0, see its README); the AGPL akvorado pcaps are
read from ../shared/fixtures/flows and skip without it (fail when CI=true).
"""

from __future__ import annotations

import ipaddress
import os
import random
import struct
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.flow.decode import TemplateCache, decode, read_datagrams
from collectors.flow.model import (
    FLOW_DTYPE,
    BadTemplateError,
    Decoded,
    DecodeError,
    TemplateKey,
    TruncatedError,
    UnknownVersionError,
)

HERE = Path(__file__).resolve().parents[2] / "fixtures" / "flows"
SHARED = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "flows"
RAW = "0.0.0.0"  # read_datagrams' exporter for raw .dat files


def fixture(name: str) -> Path:
    """Path of a fixture: the copied .dat files here, akvorado pcaps in ../shared (skip/fail when absent)."""
    if name.endswith(".dat"):
        return HERE / name
    path = SHARED / name
    if not path.exists():
        reason = f"{path} absent (AGPL akvorado captures stay in ../shared/fixtures)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; required when CI=true", pytrace=False)
        pytest.skip(reason)
    return path


def run(names: str) -> Iterator[tuple[bytes, Decoded]]:
    """Decode the datagrams of comma-separated files in order with one template cache."""
    cache = TemplateCache()
    for name in names.split(","):
        for exporter, datagram in read_datagrams(fixture(name)):
            decoded = decode(datagram, exporter, cache.mapping())
            cache.apply(decoded)
            yield datagram, decoded


def all_flows(names: str) -> np.ndarray:
    parts = [d.flows for _, d in run(names)]
    return np.concatenate(parts) if parts else np.empty(0, FLOW_DTYPE)


def addr(value: bytes) -> str:
    """A FLOW_DTYPE address (numpy strips trailing NULs) as text; IPv4-mapped shown as IPv4."""
    a = ipaddress.IPv6Address(bytes(value).ljust(16, b"\0"))
    return str(a.ipv4_mapped or a)


# Counts per vendor ------------------------------------------------------------------------------

# files → (flow records, options records, skipped data sets) over all datagrams.
COUNTS = {
    "netflow5.dat": (30, 0, 0),
    "netflow5_test_juniper_mx80.dat": (29, 0, 0),
    "netflow5_test_microtik.dat": (30, 0, 0),
    "netflow9_test_cisco_asa_1_tpl.dat,netflow9_test_cisco_asa_1_data.dat": (14, 0, 0),
    "netflow9_test_cisco_asr9k_tpl260.dat,netflow9_test_cisco_asr9k_data260.dat": (21, 0, 0),
    "netflow9_test_cisco_asr9k_opttpl256.dat,netflow9_test_cisco_asr9k_data256.dat": (0, 19, 0),
    "netflow9_cisco_asr1001x_tpl259.dat": (25, 0, 0),
    "netflow9_test_cisco_1941K9.dat": (29, 0, 0),
    "netflow9_test_huawei_netstream_tpl.dat,netflow9_test_huawei_netstream_data.dat": (1, 0, 0),
    "netflow9_test_h3c_tpl3281.dat,netflow9_test_h3c_data3281.dat": (16, 0, 0),
    "netflow9_test_fortigate_fortios_521_tpl.dat,netflow9_test_fortigate_fortios_521_data256.dat,"
    "netflow9_test_fortigate_fortios_521_data257.dat": (1, 1, 0),
    "netflow9_test_juniper_srx_tplopt.dat": (0, 1, 0),
    "netflow9_test_paloalto_panos_tpl.dat,netflow9_test_paloalto_panos_data.dat": (8, 0, 0),
    "netflow9_test_iptnetflow_reduced_size_encoding_tpldata260.dat": (12, 0, 6),
    "netflow9_test_softflowd_tpl_data.dat": (7, 0, 0),
    "netflow9_test_nprobe_tpl.dat,netflow9_test_nprobe_data.dat": (1, 1, 0),
    "ipfix.dat": (12, 1, 0),
    "ipfix_test_mikrotik_tpl.dat,ipfix_test_mikrotik_data258.dat,ipfix_test_mikrotik_data259.dat": (46, 0, 0),
    "ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat,ipfix_test_juniper_mx240_junos151r6s3_data512.dat": (0, 1, 0),
    "ipfix_test_openbsd_pflow_tpl.dat,ipfix_test_openbsd_pflow_data.dat": (26, 0, 0),
    "ipfix_test_vmware_vds_tpl.dat,ipfix_test_vmware_vds_data264.dat": (1, 0, 0),
    "ipfix_test_nokia_bras_tpl.dat,ipfix_test_nokia_bras_data256.dat": (1, 0, 0),
    "ipfix_test_netscaler_tpl.dat,ipfix_test_netscaler_data.dat": (3, 0, 1),
    "ipfix_test_yaf_tpl45841.dat,ipfix_test_yaf_data45841.dat": (1, 0, 0),
    "akvorado_netflow_nfv5.pcap": (29, 0, 0),
    "akvorado_netflow_template.pcap,akvorado_netflow_data.pcap": (4, 0, 0),
    "akvorado_netflow_options-template.pcap,akvorado_netflow_options-data.pcap": (0, 4, 0),
    "akvorado_netflow_data+templates.pcap": (10, 1, 1),
    "akvorado_netflow_samplingrate-template.pcap,akvorado_netflow_samplingrate-data.pcap": (6, 0, 0),
    "akvorado_netflow_juniper-cpid-template.pcap,akvorado_netflow_juniper-cpid-data.pcap": (1, 0, 0),
    "akvorado_netflow_ipfixprobe-templates.pcap,akvorado_netflow_ipfixprobe-data.pcap": (4, 0, 0),
    "akvorado_netflow_physicalinterfaces.pcap": (8, 1, 0),
    "akvorado_netflow_mpls.pcap": (2, 1, 0),
}


@pytest.mark.parametrize(("names", "expected"), COUNTS.items(), ids=[n.split(",")[-1] for n in COUNTS])
def test_record_counts(names: str, expected: tuple[int, int, int]) -> None:
    results = [d for _, d in run(names)]
    assert (
        sum(len(d.flows) for d in results),
        sum(len(d.options) for d in results),
        sum(d.skipped_sets for d in results),
    ) == expected
    for d in results:
        assert d.flows.dtype == FLOW_DTYPE


# Against scapy: NetFlow v5 and v9 ---------------------------------------------------------------


def scapy_netflow():
    """scapy's netflow layer; its v9 record class warns about duplicated field names on first use."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.layers import netflow
    return netflow


def uptime_offset(stamp: int, uptime: int) -> int:
    """Milliseconds from export back to a sysUptime stamp, modulo 2**32 (RFC 3954 §5.1)."""
    delta = (stamp - uptime) % 2**32
    return delta - 2**32 if delta >= 2**31 else delta


@pytest.mark.parametrize("name", ["netflow5.dat", "netflow5_test_juniper_mx80.dat", "netflow5_test_microtik.dat", "akvorado_netflow_nfv5.pcap"])
def test_v5_matches_scapy_record_by_record(name: str) -> None:
    netflow = scapy_netflow()
    checked = 0
    for datagram, decoded in run(name):
        packet = netflow.NetflowHeader(datagram)
        header = packet[netflow.NetflowHeaderV5]
        unix_ms = header.unixSecs * 1000 + header.unixNanoSeconds // 1_000_000
        records = [r for r in packet.iterpayloads() if isinstance(r, netflow.NetflowRecordV5)]
        assert len(records) == len(decoded.flows) == header.count
        assert decoded.sequence == header.flowSequence
        for ours, theirs in zip(decoded.flows, records, strict=True):
            assert (addr(ours["src_addr"]), addr(ours["dst_addr"]), addr(ours["next_hop"])) == (theirs.src, theirs.dst, theirs.nexthop)
            assert (int(ours["input_if"]), int(ours["output_if"])) == (theirs.input, theirs.output)
            assert (int(ours["packets"]), int(ours["bytes"])) == (theirs.dpkts, theirs.dOctets)
            assert (int(ours["src_port"]), int(ours["dst_port"]), int(ours["protocol"])) == (theirs.srcport, theirs.dstport, theirs.prot)
            assert (int(ours["tos"]), int(ours["tcp_flags"])) == (theirs.tos, int(theirs.tcpFlags))
            assert (int(ours["src_as"]), int(ours["dst_as"])) == (theirs.src_as, theirs.dst_as)
            assert (int(ours["src_mask"]), int(ours["dst_mask"])) == (theirs.src_mask, theirs.dst_mask)
            assert int(ours["start_ms"]) == unix_ms + uptime_offset(theirs.first, header.sysUptime)
            assert int(ours["end_ms"]) == unix_ms + uptime_offset(theirs.last, header.sysUptime)
            assert int(ours["ip_version"]) == 4
            checked += 1
    assert checked == COUNTS[name][0]


V9_WITH_SCAPY = [
    "netflow9_test_cisco_asr9k_tpl260.dat,netflow9_test_cisco_asr9k_data260.dat",
    "netflow9_cisco_asr1001x_tpl259.dat",
    "netflow9_test_cisco_1941K9.dat",
    "netflow9_test_h3c_tpl3281.dat,netflow9_test_h3c_data3281.dat",
    "netflow9_test_fortigate_fortios_521_tpl.dat,netflow9_test_fortigate_fortios_521_data257.dat",
    "netflow9_test_paloalto_panos_tpl.dat,netflow9_test_paloalto_panos_data.dat",
    "netflow9_test_softflowd_tpl_data.dat",
    "netflow9_test_nprobe_tpl.dat,netflow9_test_nprobe_data.dat",
    "akvorado_netflow_template.pcap,akvorado_netflow_data.pcap",
]
SCAPY_COLUMNS = {  # FLOW_DTYPE column → scapy v9 field names, first present wins
    "src_addr": ("IPV4_SRC_ADDR", "IPV6_SRC_ADDR"),
    "dst_addr": ("IPV4_DST_ADDR", "IPV6_DST_ADDR"),
    "src_port": ("L4_SRC_PORT",),
    "dst_port": ("L4_DST_PORT",),
    "protocol": ("PROTOCOL",),
    "packets": ("IN_PKTS",),
    "bytes": ("IN_BYTES",),
    "input_if": ("INPUT_SNMP",),
    "output_if": ("OUTPUT_SNMP",),
    "src_as": ("SRC_AS",),
    "dst_as": ("DST_AS",),
    "first": ("FIRST_SWITCHED",),
    "last": ("LAST_SWITCHED",),
}


def _scapy_value(value: object) -> object:
    if isinstance(value, bytes):
        return int.from_bytes(value, "big")
    if isinstance(value, str):
        return str(ipaddress.ip_address(value))
    return int(value)  # type: ignore[call-overload]


@pytest.mark.parametrize("names", V9_WITH_SCAPY, ids=[n.split(",")[-1] for n in V9_WITH_SCAPY])
def test_v9_matches_scapy_record_by_record(names: str) -> None:
    netflow = scapy_netflow()
    pairs = list(run(names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        packets = netflow.netflowv9_defragment([netflow.NetflowHeader(d) for d, _ in pairs])
    compared = 0
    for (_, decoded), packet in zip(pairs, packets, strict=True):
        header = packet[netflow.NetflowHeaderV9]
        theirs = [
            r.fields
            for layer in packet.iterpayloads()
            if isinstance(layer, netflow.NetflowDataflowsetV9)
            for r in layer.records
            if "IPV4_SRC_ADDR" in r.fields or "IPV6_SRC_ADDR" in r.fields  # flows, not options
        ]
        assert len(theirs) == len(decoded.flows)
        for ours, fields in zip(decoded.flows, theirs, strict=True):
            for column, names_ in SCAPY_COLUMNS.items():
                name = next((n for n in names_ if n in fields), None)
                if name is None:
                    continue
                expected = _scapy_value(fields[name])
                if column in ("first", "last"):
                    got: object = int(ours["start_ms" if column == "first" else "end_ms"])
                    expected = header.unixSecs * 1000 + uptime_offset(int(expected), header.sysUptime)  # type: ignore[call-overload]
                elif column.endswith("_addr"):
                    got = addr(ours[column])
                else:
                    got = int(ours[column])
                assert got == expected, (column, name)
            compared += 1
    assert compared == sum(len(d.flows) for _, d in pairs) > 0


# Exact values (IPFIX from tshark; v9 vendor quirks) ---------------------------------------------

# (files, index among all flows) → column values
EXACT = [
    ("ipfix.dat", 0, {"src_addr": "192.168.253.1", "dst_addr": "192.168.253.128", "src_port": 60560, "dst_port": 22, "protocol": 6, "bytes": 260, "packets": 5, "tcp_flags": 16}),
    ("ipfix.dat", 11, {"src_addr": "192.168.253.1", "dst_addr": "224.0.0.251", "src_port": 5353, "dst_port": 5353, "protocol": 17, "bytes": 232, "packets": 1}),
    ("ipfix_test_mikrotik_tpl.dat,ipfix_test_mikrotik_data258.dat", 1, {"src_addr": "192.168.35.143", "dst_addr": "192.168.230.216", "next_hop": "10.10.6.11", "src_port": 46518, "dst_port": 82, "protocol": 6, "bytes": 502, "packets": 8, "input_if": 7, "output_if": 11, "ip_version": 4}),
    ("ipfix_test_mikrotik_tpl.dat,ipfix_test_mikrotik_data259.dat", 0, {"src_addr": "fe80::ff:fe00:401", "dst_addr": "fe80::ff:fe00:401", "next_hop": "ff02::1", "src_port": 5678, "dst_port": 5678, "protocol": 17, "bytes": 555, "packets": 3, "output_if": 9, "ip_version": 6}),
    ("ipfix_test_openbsd_pflow_tpl.dat,ipfix_test_openbsd_pflow_data.dat", 2, {"src_addr": "192.168.0.17", "dst_addr": "192.168.0.1", "src_port": 64021, "dst_port": 80, "bytes": 453, "packets": 9, "start_ms": 1469107799000, "end_ms": 1469107801000}),
    ("ipfix_test_vmware_vds_tpl.dat,ipfix_test_vmware_vds_data264.dat", 0, {"src_addr": "172.18.65.21", "dst_addr": "172.18.65.211", "src_port": 61209, "dst_port": 5985, "protocol": 6, "bytes": 100, "packets": 2, "input_if": 3, "output_if": 11, "start_ms": 1482409057000, "end_ms": 1482409057000, "ttl_max": 128}),
    ("ipfix_test_nokia_bras_tpl.dat,ipfix_test_nokia_bras_data256.dat", 0, {"src_addr": "10.0.1.228", "dst_addr": "10.0.0.34", "src_port": 5878, "dst_port": 80, "protocol": 6, "start_ms": 1513236225148, "bytes": 0}),
    # NetScaler, checked with tshark: the 1525-byte record is 10.0.0.1:443 -> 192.168.0.1:51053, in 0x80000003, out 6.
    # Flows come grouped by template (D258, D258, then D257; D280 has no template), so it is flow 2.
    ("ipfix_test_netscaler_tpl.dat,ipfix_test_netscaler_data.dat", 2, {"src_addr": "10.0.0.1", "dst_addr": "192.168.0.1", "src_port": 443, "dst_port": 51053, "bytes": 1525, "packets": 2, "input_if": 2147483651, "output_if": 6, "start_ms": 1478866159000}),
    ("ipfix_test_netscaler_tpl.dat,ipfix_test_netscaler_data.dat", 1, {"src_addr": "192.168.0.1", "dst_addr": "10.0.0.1", "src_port": 51053, "dst_port": 443, "bytes": 1541, "packets": 2, "input_if": 8, "output_if": 2147483651}),
    ("ipfix_test_yaf_tpl45841.dat,ipfix_test_yaf_data45841.dat", 0, {"src_addr": "172.16.32.201", "dst_addr": "172.16.32.100", "src_port": 46086, "dst_port": 53, "protocol": 17, "bytes": 132, "packets": 2, "start_ms": 1482670715818, "end_ms": 1482670715819}),
    ("akvorado_netflow_juniper-cpid-template.pcap,akvorado_netflow_juniper-cpid-data.pcap", 0, {"input_if": 737, "output_if": 0, "ip_version": 0}),
    ("akvorado_netflow_ipfixprobe-templates.pcap,akvorado_netflow_ipfixprobe-data.pcap", 2, {"src_addr": "10.10.1.4", "dst_addr": "74.53.140.153", "src_port": 1470, "dst_port": 25, "bytes": 21673, "packets": 28, "input_if": 10, "start_ms": 1254722767529, "end_ms": 1254722775106}),
    ("akvorado_netflow_physicalinterfaces.pcap", 0, {"src_addr": "147.53.240.75", "dst_addr": "212.82.101.24", "src_port": 55629, "dst_port": 993, "bytes": 4506, "packets": 3, "start_ms": 1737739081621}),
    ("akvorado_netflow_mpls.pcap", 1, {"src_addr": "fd00::1:0:1:7:1", "dst_addr": "fd00::1:0:1:6:1", "src_port": 49153, "dst_port": 862, "protocol": 17, "bytes": 890, "packets": 10, "output_if": 17, "start_ms": 1699893297901, "end_ms": 1699893381901, "ttl_min": 255, "ip_version": 6}),
    # v9: Cisco ASA NSEL counts come from initiatorOctets (IE 231), the ASR9k next hop from BGP next hop (IE 18).
    ("netflow9_test_cisco_asr9k_tpl260.dat,netflow9_test_cisco_asr9k_data260.dat", 0, {"src_addr": "10.0.9.146", "dst_addr": "10.0.31.81", "next_hop": "10.0.14.33", "src_port": 54017, "dst_port": 443, "packets": 1, "bytes": 40, "input_if": 110, "output_if": 158, "dst_as": 64496, "src_mask": 16, "dst_mask": 20}),
    # Huawei NetStream, read by hand from the bytes (scapy reads PROTOCOL as 1 there): a 3-byte padding field (IE 210).
    ("netflow9_test_huawei_netstream_tpl.dat,netflow9_test_huawei_netstream_data.dat", 0, {"src_addr": "10.108.219.53", "dst_addr": "10.111.112.204", "next_hop": "10.108.252.41", "packets": 4, "bytes": 200, "input_if": 8, "output_if": 31, "src_port": 45587, "dst_port": 2598, "protocol": 6, "tcp_flags": 24, "src_mask": 24, "dst_mask": 25, "start_ms": 0x5A6E8EBC * 1000 - 0x9FA68DD8 + 0x9FA18C5C, "end_ms": 0x5A6E8EBC * 1000 - 0x9FA68DD8 + 0x9FA689F0}),
    # softflowd exported 3.4 s after boot: First is 0xFFFFFFFF, before a sysUptime of 3381 ms wrapped.
    ("netflow5.dat", 0, {"start_ms": 1430591884898, "end_ms": 1430591887476, "sampling_rate": 1}),
    ("netflow5_test_juniper_mx80.dat", 0, {"src_addr": "10.0.0.1", "dst_addr": "192.168.0.2", "src_port": 443, "dst_port": 61608, "packets": 1, "bytes": 1500, "src_as": 64497, "dst_as": 64496, "sampling_rate": 1000, "start_ms": 1469109154936}),
]


@pytest.mark.parametrize(
    ("names", "index", "expected"), EXACT,
    ids=[f"{n.split(',')[-1]}[{i}]" for n, i, _ in (e.values if hasattr(e, "values") else e for e in EXACT)],
)
def test_exact_values(names: str, index: int, expected: dict[str, object]) -> None:
    flow = all_flows(names)[index]
    got = {k: addr(flow[k]) if k.endswith(("_addr", "next_hop")) else int(flow[k]) for k in expected}
    assert got == expected


def test_v9_sampling_rate_per_flow_akvorado() -> None:
    flows = all_flows("akvorado_netflow_samplingrate-template.pcap,akvorado_netflow_samplingrate-data.pcap")
    assert flows["sampling_rate"].tolist() == [2048] * 6


# Options, ordering, template state --------------------------------------------------------------


def test_softflowd_ipfix_options_set_is_options_not_flows() -> None:
    first = next(d for _, d in run("ipfix.dat"))
    assert len(first.flows) == 6
    assert first.options == (
        {"ie_143": 2679, "system_init_ms": 1431516013506, "selector_algorithm": 1, "sampling_interval": 1, "sampling_space": 0},
    )
    assert {k.template_id for k in first.templates} == {256, 1024, 2048}


def test_options_data_of_vendors() -> None:
    asr = [d for _, d in run("netflow9_test_cisco_asr9k_opttpl256.dat,netflow9_test_cisco_asr9k_data256.dat")][-1]
    assert asr.options[0] == {"scope_system": 3250896451, "interface_index": 74, "interface_description": "TenGigE0_0_1_0"}
    akv = [d for _, d in run("akvorado_netflow_options-template.pcap,akvorado_netflow_options-data.pcap")][-1]
    assert akv.options[0] == {"scope_system": 2886977764, "sampler_id": 1, "sampling_interval": 30000, "sampler_mode": 2, "sampler_name": "sampler1"}
    srx = next(d for _, d in run("netflow9_test_juniper_srx_tplopt.dat"))  # scope field of length 0 accepted
    assert srx.options == ({"scope_system": 0, "sampling_algorithm": 2, "sampling_interval": 1},)
    mx = [d for _, d in run("ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat,ipfix_test_juniper_mx240_junos151r6s3_data512.dat")][-1]
    assert (mx.domain, mx.options[0]["sampling_interval"], mx.options[0]["system_init_ms"]) == (524288, 1000, 1262761598000)


def test_asa_data_before_template_is_skipped_then_decoded() -> None:
    data = (HERE / "netflow9_test_cisco_asa_1_data.dat").read_bytes()
    template = (HERE / "netflow9_test_cisco_asa_1_tpl.dat").read_bytes()
    cache = TemplateCache()
    before = decode(data, RAW, cache.mapping())
    assert (len(before.flows), before.skipped_sets) == (0, 1)
    learned = decode(template, RAW, cache.mapping())
    cache.apply(learned)
    assert len(cache) == 13
    after = decode(data, RAW, cache.mapping())
    assert (len(after.flows), after.skipped_sets) == (14, 0)
    assert after.flows["bytes"].sum() > 0


def test_template_in_same_datagram_applies_without_mutating_caller_mapping() -> None:
    datagram = (HERE / "netflow9_test_softflowd_tpl_data.dat").read_bytes()
    theirs: dict[TemplateKey, object] = {}
    decoded = decode(datagram, RAW, theirs)  # type: ignore[arg-type]
    assert theirs == {}
    assert len(decoded.flows) == 7
    assert sorted(k.template_id for k in decoded.templates) == [1024, 2048]
    assert sorted(set(decoded.flows["ip_version"].tolist())) == [4, 6]


def test_iptnetflow_reduced_size_decodes_what_it_can() -> None:
    decoded = next(d for _, d in run("netflow9_test_iptnetflow_reduced_size_encoding_tpldata260.dat"))
    assert (len(decoded.flows), decoded.skipped_sets) == (12, 6)


def _ipfix(sets: bytes, domain: int = 7) -> bytes:
    return struct.pack(">HHIII", 10, 16 + len(sets), 1_700_000_000, 1, domain) + sets


def _set(set_id: int, body: bytes) -> bytes:
    return struct.pack(">HH", set_id, 4 + len(body)) + body


# template 300: sourceIPv4Address, enterprise field (PEN 9), variable-length string, octetDeltaCount(3 bytes)
VAR_TEMPLATE = _set(2, struct.pack(">HH", 300, 4) + struct.pack(">HH", 8, 4) + struct.pack(">HHI", 0x8000 | 5, 2, 9) + struct.pack(">HH", 96, 65535) + struct.pack(">HH", 1, 3))


def test_ipfix_variable_length_enterprise_and_three_byte_counter() -> None:
    records = bytes([10, 0, 0, 1]) + b"\x00\x01" + b"\x03abc" + b"\x00\x01\x00" + bytes([10, 0, 0, 2]) + b"\x00\x02" + b"\xff\x00\x02hi" + b"\x01\x00\x01"
    decoded = decode(_ipfix(VAR_TEMPLATE + _set(300, records + b"\0\0")), "192.0.2.9", {})
    assert [addr(a) for a in decoded.flows["src_addr"]] == ["10.0.0.1", "10.0.0.2"]
    assert decoded.flows["bytes"].tolist() == [256, 65537]


def test_ipfix_withdrawal_removes_template_from_cache() -> None:
    cache = TemplateCache()
    cache.apply(decode(_ipfix(VAR_TEMPLATE), "192.0.2.9", cache.mapping()))
    key = TemplateKey("192.0.2.9", 7, 300)
    assert cache.get(key) is not None
    withdrawal = decode(_ipfix(_set(2, struct.pack(">HH", 300, 0))), "192.0.2.9", cache.mapping())
    assert withdrawal.templates == {key: None}
    cache.apply(withdrawal)
    assert cache.get(key) is None
    assert decode(_ipfix(_set(300, b"\0" * 12)), "192.0.2.9", cache.mapping()).skipped_sets == 1


# Malformed input: only DecodeError subclasses escape -------------------------------------------

BAD = [
    (_ipfix(_set(2, struct.pack(">HHHH", 300, 1, 8, 0))), BadTemplateError),  # zero-length field
    (_ipfix(_set(2, struct.pack(">HH", 300, 2) + struct.pack(">HH", 8, 40000) * 2)), BadTemplateError),  # absurd
    (_ipfix(_set(3, struct.pack(">HHH", 300, 1, 0) + struct.pack(">HH", 34, 4))), BadTemplateError),  # no scope
    (_ipfix(_set(2, struct.pack(">HH", 300, 3) + struct.pack(">HH", 8, 4))), TruncatedError),  # fields past set
    (_ipfix(b"") [:14], TruncatedError),
    (struct.pack(">HHIII", 10, 100, 0, 0, 0), TruncatedError),  # length beyond datagram
    (_ipfix(struct.pack(">HH", 300, 2)), DecodeError),  # set length below 4
    (struct.pack(">HHIIIIBBH", 5, 3, 0, 0, 0, 0, 0, 0, 0) + b"\0" * 48 * 2, TruncatedError),  # count overruns
    (struct.pack(">HHIIII", 9, 1, 0, 0, 0, 0) + struct.pack(">HHHHHH", 0, 12, 300, 1, 8, 0), BadTemplateError),
    (struct.pack(">HHIIII", 9, 1, 0, 0, 0, 0) + struct.pack(">HH", 300, 400), TruncatedError),
    (b"\x00\x07" + b"\0" * 30, UnknownVersionError),
    (b"\x09", TruncatedError),
]


@pytest.mark.parametrize(("datagram", "error"), BAD)
def test_malformed_datagrams_raise_typed_errors(datagram: bytes, error: type[DecodeError]) -> None:
    with pytest.raises(error):
        decode(datagram, "192.0.2.9", {})


def _corpus() -> list[tuple[str, bytes, dict]]:
    """(name, datagram, templates known before it) for every copied fixture."""
    out = []
    for group in COUNTS:
        if "akvorado" in group:
            continue
        cache = TemplateCache()
        for name in group.split(","):
            for exporter, datagram in read_datagrams(HERE / name):
                out.append((name, datagram, dict(cache.mapping())))
                cache.apply(decode(datagram, exporter, cache.mapping()))
    return out


CORPUS = _corpus()


@pytest.mark.parametrize(("name", "datagram", "templates"), CORPUS, ids=[c[0] for c in CORPUS])
def test_every_truncation_of_every_fixture_raises_only_decode_errors(name: str, datagram: bytes, templates: dict) -> None:
    version = datagram[1]
    whole = Counter(row.tobytes() for row in decode(datagram, RAW, templates).flows)
    for cut in sorted({0, 1, 2, 15, 16, 19, 20, 23, 24, 25, 30, 47, 48, 60, 100, len(datagram) // 2, len(datagram) - 1}):
        if cut >= len(datagram):
            continue
        try:
            decoded = decode(datagram[:cut], RAW, templates)
        except DecodeError:
            continue
        assert version == 9, f"{name} cut at {cut} decoded"  # v9 has no length field: a cut on a set boundary is valid
        # what a cut datagram yields are the records of its complete sets: some of the whole datagram's, none new
        part = Counter(row.tobytes() for row in decoded.flows)
        assert part <= whole, f"{name} cut at {cut}"


def test_random_bytes_raise_only_decode_errors() -> None:
    rng = random.Random(20240501)
    for _ in range(2000):
        version = rng.choice([b"\x00\x05", b"\x00\x09", b"\x00\x0a", b""])
        datagram = version + rng.randbytes(rng.randrange(0, 200))
        try:
            decode(datagram, RAW, {})
        except DecodeError:
            pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_fixtures(data: st.DataObject) -> None:
    _, datagram, templates = data.draw(st.sampled_from(CORPUS))
    buf = bytearray(datagram)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    _assert_decoded_or_decode_error(bytes(buf[:cut]), templates)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(datagram: bytes) -> None:
    _assert_decoded_or_decode_error(datagram, {})


def _assert_decoded_or_decode_error(datagram: bytes, templates: dict) -> None:
    """The fuzz properties: only a DecodeError may be raised (any other exception fails the test), and what
    does decode is of the datagram's version, in FLOW_DTYPE, with no more records than the datagram has bytes
    (every record, flow or options, takes at least one byte: nothing is amplified)."""
    try:
        decoded = decode(datagram, RAW, templates)
    except DecodeError:
        return
    assert decoded.version == struct.unpack_from(">H", datagram)[0]
    assert decoded.flows.dtype == FLOW_DTYPE
    assert len(decoded.flows) + len(decoded.options) <= len(datagram)
    assert decoded.skipped_sets <= len(datagram) // 4


# Capture reading --------------------------------------------------------------------------------


def test_read_datagrams_splits_raw_files_and_pcaps() -> None:
    sizes = [len(d) for _, d in read_datagrams(HERE / "netflow5.dat")]
    assert sizes == [24 + 48 * n for n in (2, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2)]
    assert [len(d) for _, d in read_datagrams(HERE / "ipfix.dat")] == [484, 64, 240]
    pcap = list(read_datagrams(fixture("akvorado_netflow_nfv5.pcap")))
    assert [(e, len(d)) for e, d in pcap] == [("10.19.144.41", 24 + 48 * 29)]


def test_read_datagrams_skips_an_ethernet_frame_too_short_for_its_header(tmp_path: Path) -> None:
    # A 10-byte Ethernet frame used to raise ValueError out of the header unpacking; it is skipped like any
    # other frame that holds no UDP datagram, and the frame after it is still read.
    payload = (HERE / "netflow5_test_microtik.dat").read_bytes()[:24]
    udp = struct.pack(">HHHH", 40000, 2055, 8 + len(payload), 0) + payload
    ip = bytes([0x45, 0]) + struct.pack(">HHH", 20 + len(udp), 0, 0) + bytes([64, 17, 0, 0, 192, 0, 2, 7, 192, 0, 2, 9])
    good = b"\0" * 12 + b"\x08\x00" + ip + udp
    frames = [b"\0" * 10, good]
    pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    pcap += b"".join(struct.pack("<IIII", 0, 0, len(f), len(f)) + f for f in frames)
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap)
    assert list(read_datagrams(path)) == [("192.0.2.7", payload)]
