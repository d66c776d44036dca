"""Every copied vendor fixture decoded by egovmon and by tshark (Wireshark's NetFlow/IPFIX dissector).

tshark is the independent reference for the formats scapy cannot decode
(IPFIX, many v9 vendors). The fixture's datagrams are written into a pcap as
UDP from one exporter; tshark prints, per datagram, every occurrence of each
field; egovmon decodes the same datagrams with one template cache. Per
datagram, the records must be the same multiset of (addresses, ports,
protocol, packets, bytes, interfaces) over the fields tshark shows once per
flow record. Fields that tshark shows for options records too, or a field
twice per record (both directions of NSEL), are left out for that datagram;
the test requires that addresses and counters were compared for every flow.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from collectors.flow.decode import TemplateCache, decode, read_datagrams
from tests.collectors.flow.test_decode import COUNTS, HERE
from tests.services import require_program

PORT = 2055
EXPORTER = "192.0.2.1"
# tshark field → how to read our record's column as tshark prints it.
FIELDS = {
    "cflow.srcaddr": lambda r: _v4(r["src_addr"]),
    "cflow.dstaddr": lambda r: _v4(r["dst_addr"]),
    "cflow.srcaddrv6": lambda r: _v6(r["src_addr"]),
    "cflow.dstaddrv6": lambda r: _v6(r["dst_addr"]),
    "cflow.srcport": lambda r: str(int(r["src_port"])),
    "cflow.dstport": lambda r: str(int(r["dst_port"])),
    "cflow.protocol": lambda r: str(int(r["protocol"])),
    "cflow.packets": lambda r: str(int(r["packets"])),
    "cflow.octets": lambda r: str(int(r["bytes"])),
    "cflow.permanent_packets": lambda r: str(int(r["packets"])),  # packetTotalCount (IE 86)
    "cflow.permanent_octets": lambda r: str(int(r["bytes"])),  # octetTotalCount (IE 85)
    "cflow.initiator_octets": lambda r: str(int(r["bytes"])),  # NSEL initiatorOctets (IE 231)
    "cflow.inputint": lambda r: str(int(r["input_if"])),
    "cflow.outputint": lambda r: str(int(r["output_if"])),
}
PACKETS = {"cflow.packets", "cflow.permanent_packets"}
OCTETS = {"cflow.octets", "cflow.permanent_octets", "cflow.initiator_octets"}
# Cisco ASA's NSEL has byte counts (initiatorOctets, compared when shown once per flow) but no packet
# counts, so the both-counters requirement is waived.
OTHER_COUNTERS = {"netflow9_test_cisco_asa_1_data.dat"}
# Nokia's BRAS exports NAT events without counters: ours must be 0 where tshark shows none.
NO_COUNTERS = {"ipfix_test_nokia_bras_data256.dat"}
# YAF exports biflows (RFC 5103): tshark shows the forward and then the reverse counters of each
# record; ours are the forward ones.
BIFLOW = {"ipfix_test_yaf_data45841.dat"}
# tshark 4.0 stops at the first record of H3C's export ("Trying to fetch an IPv4 address with
# length 2"): that fixture is checked against logstash's expected values in test_decode instead.
TSHARK_CANNOT = {"netflow9_test_h3c_data3281.dat"}
GROUPS = [
    g for g, counts in COUNTS.items()
    if "akvorado" not in g and counts[0] > 0 and not TSHARK_CANNOT & set(g.split(","))
]  # fmt: skip


def _ip(raw: bytes) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(bytes(raw).ljust(16, b"\0"))


def _v4(raw: bytes) -> str | None:
    mapped = _ip(raw).ipv4_mapped
    return str(mapped) if mapped is not None else None


def _v6(raw: bytes) -> str | None:
    address = _ip(raw)
    return None if address.ipv4_mapped is not None else str(address)


def _tshark_rows(tshark: str, pcap: Path) -> list[dict[str, list[str]]]:
    """Per datagram: tshark field → its occurrences in wire order."""
    names = list(FIELDS)
    out = subprocess.run(
        [tshark, "-r", str(pcap), "-d", f"udp.port=={PORT},cflow", "-T", "fields",
         "-E", "occurrence=a", "-E", "aggregator=;", *[arg for name in names for arg in ("-e", name)]],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = []
    for line in out.stdout.splitlines():
        values = line.split("\t")
        rows.append({name: (v.split(";") if v else []) for name, v in zip(names, values, strict=True)})
    return rows


@pytest.mark.parametrize("names", GROUPS, ids=[g.split(",")[-1] for g in GROUPS])
def test_records_equal_tshark(names: str, tmp_path: Path) -> None:
    tshark = require_program("tshark")
    datagrams = [d for name in names.split(",") for _, d in read_datagrams(HERE / name)]
    pcap = tmp_path / "export.pcap"
    wrpcap(str(pcap), [Ether() / IP(src=EXPORTER, dst="127.0.0.1") / UDP(sport=40000, dport=PORT) / Raw(d) for d in datagrams])
    rows = _tshark_rows(tshark, pcap)
    assert len(rows) == len(datagrams)

    cache = TemplateCache()
    compared_flows = 0
    for datagram, row in zip(datagrams, rows, strict=True):
        decoded = decode(datagram, EXPORTER, cache.mapping(), contexts=cache.contexts())
        cache.apply(decoded)
        flows = decoded.flows
        if not len(flows):
            continue
        ours_by_field = {name: [read(r) for r in flows] for name, read in FIELDS.items()}
        files = set(names.split(","))
        if BIFLOW & files:
            for name in PACKETS | OCTETS:
                if len(row[name]) == 2 * len(flows):
                    row[name] = row[name][::2]
        if NO_COUNTERS & files:
            assert not any(row[name] for name in PACKETS | OCTETS)
            assert int(flows["packets"].sum()) == int(flows["bytes"].sum()) == 0
        # A field takes part when tshark shows it exactly once per flow and we have it for every flow.
        usable = [
            name for name in FIELDS
            if len(row[name]) == len(flows) and None not in ours_by_field[name]
        ]  # fmt: skip
        shown = {n: len(v) for n, v in row.items()}
        if not (OTHER_COUNTERS | NO_COUNTERS) & files:
            assert PACKETS & set(usable) and OCTETS & set(usable), f"{names}: counters not comparable ({shown})"
        theirs = sorted(zip(*(row[name] for name in usable), strict=True))
        ours = sorted(zip(*(ours_by_field[name] for name in usable), strict=True))
        assert ours == theirs, f"{names}: fields {usable}"
        # Addresses, IPv4 and IPv6 mixed in one datagram (softflowd): as multisets per direction.
        for v4, v6, column in (("cflow.srcaddr", "cflow.srcaddrv6", "src_addr"), ("cflow.dstaddr", "cflow.dstaddrv6", "dst_addr")):
            assert len(row[v4]) + len(row[v6]) == len(flows), f"{names}: {column} not shown once per flow ({shown})"
            ours_addresses = sorted(_v4(r[column]) or str(_v6(r[column])) for r in flows)
            assert ours_addresses == sorted(row[v4] + row[v6]), f"{names}: {column}"
        compared_flows += len(flows)
    assert compared_flows == COUNTS[names][0]
