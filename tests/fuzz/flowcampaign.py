"""The flow fuzz campaign's datagrams and its reference counts, shared by tests/fuzz and bench/flow_fuzz.py.

Three streams, each from its own loopback source address so that the listener keeps a counter line for each:

- VALID (127.0.0.1): real vendor captures (tests/fixtures/flows, Apache-2.0) in file order, plus a hand-built
  IPFIX exporter in observation domain 1 (template 300). Interleaved with it, an attacker spoofing the same
  address re-announces template 300 in domains 2-201 with another layout and then withdraws it there. Every
  valid record must be decoded, with exact packet and byte totals.
- MUTATED (127.0.0.2): the same captures, clean templates first, then seeded mutations and splices.
- HOSTILE (127.0.0.3): hand-built templates, each with the outcome declared next to it (`HOSTILE_CASES`).

`reference()` decodes a stream datagram by datagram with the pure decoder and one template cache, as the
listener's batch decoder must agree with; any exception but DecodeError raised there is a decoder bug.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from collectors.flow.decode import TemplateCache, decode, read_datagrams
from collectors.flow.model import DecodeError
from collectors.flow.templates import MAX_FIELDS_PER_TEMPLATE as MAX_TEMPLATE_FIELDS
from tests.fuzz.mutate import mutate, splice

FLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "flows"
VALID, MUTATED, HOSTILE = "127.0.0.1", "127.0.0.2", "127.0.0.3"
MAX_UDP_PAYLOAD = 65507  # over IPv4

# Capture groups (template file first) whose template ids do not collide when one exporter sends them all.
GROUPS = (
    ("netflow5.dat",),
    ("netflow5_test_juniper_mx80.dat",),
    ("netflow9_test_cisco_asa_1_tpl.dat", "netflow9_test_cisco_asa_1_data.dat"),
    ("netflow9_test_h3c_tpl3281.dat", "netflow9_test_h3c_data3281.dat"),
    ("netflow9_test_paloalto_panos_tpl.dat", "netflow9_test_paloalto_panos_data.dat"),
    ("ipfix_test_mikrotik_tpl.dat", "ipfix_test_mikrotik_data258.dat", "ipfix_test_mikrotik_data259.dat"),
    ("ipfix_test_openbsd_pflow_tpl.dat", "ipfix_test_openbsd_pflow_data.dat"),
    ("ipfix_test_yaf_tpl45841.dat", "ipfix_test_yaf_data45841.dat"),
)
GROUP_FLOWS = 30 + 29 + 14 + 16 + 8 + 46 + 26 + 1  # tests/collectors/flow/test_decode.py COUNTS for GROUPS


def captures() -> list[bytes]:
    """Every datagram of GROUPS, in order."""
    return [datagram for group in GROUPS for name in group for _, datagram in read_datagrams(FLOWS / name)]


# Hand-built IPFIX ---------------------------------------------------------------------------------------------

def ipfix(domain: int, *sets: bytes, sequence: int = 0) -> bytes:
    body = b"".join(sets)
    return struct.pack("!HHIII", 10, 16 + len(body), 1_700_000_000, sequence, domain) + body


def ipfix_set(set_id: int, body: bytes) -> bytes:
    return struct.pack("!HH", set_id, 4 + len(body)) + body


def template(template_id: int, fields: Sequence[tuple[int, int]]) -> bytes:
    """A template record: (information element, length) pairs."""
    return struct.pack("!HH", template_id, len(fields)) + b"".join(struct.pack("!HH", ie, n) for ie, n in fields)


def withdrawal(template_id: int) -> bytes:
    return struct.pack("!HH", template_id, 0)


# sourceIPv4Address, destinationIPv4Address, packetDeltaCount (4 bytes), octetDeltaCount (4 bytes)
SIMPLE = ((8, 4), (12, 4), (2, 4), (1, 4))
# The same id reused by the attacker in other domains: octets first, 8-byte counters, no addresses.
REUSED = ((1, 8), (2, 8), (7, 2))


def simple_records(count: int, seed: int) -> bytes:
    """`count` SIMPLE records with packets seed+i and octets 100*(seed+i)."""
    return b"".join(struct.pack("!4s4sII", bytes([10, 1, 0, 1]), bytes([10, 2, 0, 2]), seed + i, 100 * (seed + i))
                    for i in range(count))


def valid_stream(rounds: int, rng: random.Random) -> list[bytes]:
    """Real captures and the domain-1 exporter, `rounds` times, with the attacker's cross-domain reuse and
    withdrawal storm (which shares the valid exporter's address) spread through it."""
    out: list[bytes] = []
    real = captures()
    for r in range(rounds):
        out.extend(real)
        out.append(ipfix(1, ipfix_set(2, template(300, SIMPLE)), ipfix_set(300, simple_records(5, r))))
        for domain in rng.sample(range(2, 202), 20):
            out.append(ipfix(domain, ipfix_set(2, template(300, REUSED))))
            out.append(ipfix(domain, ipfix_set(2, withdrawal(300) + withdrawal(301)), ipfix_set(2, withdrawal(2))))
        out.append(ipfix(1, ipfix_set(300, simple_records(3, 1000 + r))))  # after the storm: still template 300
    return out


def mutated_stream(count: int, rng: random.Random) -> list[bytes]:
    """Clean templates first (so mutated data meets known templates), then `count` mutations and splices."""
    real = captures()
    out = list(real)
    for _ in range(count):
        if rng.random() < 0.1:
            out.append(splice(rng.choice(real), rng.choice(real), rng))
        else:
            out.append(mutate(rng.choice(real), rng))
    return out


@dataclass(frozen=True)
class HostileCase:
    """One hand-built datagram and what the decoder must make of it."""

    name: str
    datagram: bytes
    malformed: bool
    flows: int = 0


def _wide(template_id: int, count: int) -> bytes:
    """A template of `count` fields: source address, 8-byte packets and octets, then 1-byte padding (IE 210)."""
    fields = [(8, 4), (2, 8), (1, 8)] + [(210, 1)] * (count - 3)
    return template(template_id, fields)


def hostile_cases(flood: int, jumbo: int = 200) -> list[HostileCase]:
    """The hand-built attacks in sending order (one exporter: earlier cases set up later ones)."""
    widest = MAX_TEMPLATE_FIELDS
    wide_record = struct.pack("!4sQQ", bytes([10, 9, 9, 9]), 7, 700) + b"\0" * (widest - 3)
    all_fields = (MAX_UDP_PAYLOAD - 16 - 4 - 4) // 4  # as many field specifiers as one datagram can carry
    cases = [
        # Issue 14's two datagrams: every field variable-length, then a data set for it.
        HostileCase("all-variable template", bytes.fromhex("000a00206553f100000000000000000100020010012c00020052ffff0052ffff"), True),
        HostileCase("data for the all-variable template", bytes.fromhex("000a00166553f1000000000000000001012c00060000"), False),
        HostileCase("zero-length field", ipfix(1, ipfix_set(2, template(310, ((8, 4), (2, 0))))), True),
        HostileCase("65,535 fields announced", ipfix(1, ipfix_set(2, struct.pack("!HH", 311, 65535) + b"\x00\x08\x00\x04" * 100)), True),
        HostileCase("as many fields as fit", ipfix(1, ipfix_set(2, template(312, [(210, 1)] * all_fields))), True),
        HostileCase(f"{widest + 1} fields", ipfix(1, ipfix_set(2, _wide(313, widest + 1))), True),
        HostileCase(f"{widest} fields", ipfix(1, ipfix_set(2, _wide(314, widest))), False),
        HostileCase(f"data for the {widest}-field template", ipfix(1, ipfix_set(314, wide_record * 3)), False, 3),
        HostileCase("record longer than a datagram", ipfix(1, ipfix_set(2, template(315, ((8, 4), (1, 40000), (2, 40000))))), True),
        HostileCase("template id below 256", ipfix(1, ipfix_set(2, template(255, SIMPLE))), True),
        HostileCase("options template with no scope", ipfix(1, ipfix_set(3, struct.pack("!HHH", 316, 1, 0) + struct.pack("!HH", 34, 4))), True),
        HostileCase("set length 0", ipfix(1) + b"\x00\x02\x00\x00", False),  # past the message length: ignored
        HostileCase("set length 0 inside the message", struct.pack("!HHIII", 10, 20, 0, 0, 1) + b"\x00\x02\x00\x00", True),
        HostileCase("message length past the datagram", struct.pack("!HHIII", 10, 4000, 0, 0, 1), True),
        HostileCase("template 314 again in domain 2, other layout", ipfix(2, ipfix_set(2, template(314, REUSED))), False),
        HostileCase("domain 1's data still decodes with its own 314", ipfix(1, ipfix_set(314, wide_record)), False, 1),
        HostileCase("withdrawal storm: 1,000 ids", ipfix(1, ipfix_set(2, b"".join(withdrawal(t) for t in range(256, 1256)))), False),
        HostileCase("withdraw-all (id = set id)", ipfix(1, ipfix_set(2, withdrawal(2)), ipfix_set(3, withdrawal(3))), False),
        HostileCase("data for withdrawn 314", ipfix(1, ipfix_set(314, wide_record * 2)), False, 0),
        HostileCase("NetFlow v9 template with 65,535 fields", struct.pack("!HHIIII", 9, 1, 0, 0, 0, 0)
                    + struct.pack("!HHHH", 0, 8 + 400, 320, 65535) + b"\x00\x08\x00\x04" * 100, True),
        HostileCase("unknown version", b"\x00\x0b" + b"\0" * 30, True),
        HostileCase("empty datagram", b"", True),
    ]
    # A flood of distinct widest-allowed templates (different field lengths defeat the memo): bounded by count.
    for n in range(flood):
        fields = [(8, 4), (2, 8), (1, 8)] + [(210, 1 + n % 7)] * (widest - 3)
        cases.append(HostileCase(f"wide template flood {n}", ipfix(1000 + n // 200, ipfix_set(2, template(256 + n % 200, fields))), False))
    # Datagrams as large as UDP carries (a data set of an unknown template): each fills a whole ring slot.
    for n in range(jumbo):
        cases.append(HostileCase(f"jumbo {n}", ipfix(1, ipfix_set(40000 + n, bytes([n % 256]) * (MAX_UDP_PAYLOAD - 20))), False))
    return cases


# Reference ----------------------------------------------------------------------------------------------------

@dataclass
class Totals:
    """What `egovmon flow listen` prints per exporter, computed by the pure decoder."""

    datagrams: int = 0
    malformed: int = 0
    flows: int = 0
    packets: int = 0
    bytes: int = 0

    @property
    def decoded(self) -> int:
        return self.datagrams - self.malformed


def outcomes(exporter: str, datagrams: Sequence[bytes]) -> Iterator[tuple[bytes, DecodeError | int, int, int]]:
    """Per datagram: the DecodeError it raised or its flow count, with its packets and bytes.

    Anything else raised propagates: only DecodeError may leave the decoder.
    """
    cache = TemplateCache()
    for datagram in datagrams:
        try:
            decoded = decode(datagram, exporter, cache.mapping(), contexts=cache.contexts())
        except DecodeError as exc:
            yield datagram, exc, 0, 0
            continue
        cache.apply(decoded)
        flows = decoded.flows
        yield datagram, len(flows), int(flows["packets"].sum()), int(flows["bytes"].sum())


def reference(exporter: str, datagrams: Sequence[bytes]) -> Totals:
    totals = Totals()
    for _, outcome, packets, octets in outcomes(exporter, datagrams):
        totals.datagrams += 1
        if isinstance(outcome, DecodeError):
            totals.malformed += 1
        else:
            totals.flows += outcome
            totals.packets += packets
            totals.bytes += octets
    return totals
