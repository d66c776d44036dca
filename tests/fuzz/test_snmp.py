"""BER fuzz for the SNMP codec (collectors/snmp/ber.py) and the trap receiver (issue 14 item 5).

The corpus is net-snmp's own bytes, captured here: GETBULK responses of a real snmpd and `snmptrap` datagrams.
Properties, each stated where it is checked:

- codec: on any mutation, `decode_message` raises SnmpDecodeError or returns a message that encodes and decodes
  back to itself, with no more varbinds than the bytes can hold and OIDs within RFC 2578's bounds; and the
  receiver's screen never refuses a message the codec accepts (within its size and element bounds);
- receiver (real pysnmp engine on a loopback UDP socket): every one of the valid traps interleaved with the
  mutated and hand-built ones becomes exactly one event; the screen refuses exactly the datagrams `screen()`
  names, counted by reason; no exception reaches the event loop; the receiver is still running at the end.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.snmp.ber import MAX_OID_SUBIDS, decode_message, encode_message, tlv
from collectors.snmp.errors import SnmpDecodeError
from collectors.snmp.screen import (
    MALFORMED,
    MAX_ELEMENTS,
    MAX_TRAP_BYTES,
    TOO_DEEP,
    TOO_LARGE,
    TOO_MANY_ELEMENTS,
    screen,
)
from collectors.snmp.traps import Event, TrapReceiver
from tests.fuzz.mutate import mutate, splice
from tests.fuzz.snmpcorpus import MARKER_OID, marked, net_snmp_traps, walk_responses
from tests.services import BinaryMissingError, missing, require_program, start_snmpd

SEED = 20261205
CODEC_MUTATIONS = 20_000
TRAP_MUTATIONS = 2_000
VALID_TRAPS = 1_000
COMMUNITY = "egovmon-trap"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    require_program("snmptrap")  # skipped when missing, failed when CI=true
    try:
        snmpd = start_snmpd(tmp_path_factory.mktemp("snmpd-fuzz"))
    except BinaryMissingError as exc:
        missing(str(exc))
    try:
        responses = walk_responses(snmpd.port, snmpd.community)
    finally:
        snmpd.stop()
    traps = net_snmp_traps(COMMUNITY)
    return {"responses": responses, "traps": list(traps.values()), "marked": [traps["marked"]]}


def test_codec_mutations_raise_only_decode_errors_and_what_decodes_round_trips(corpus):
    rng = random.Random(SEED)
    real = corpus["responses"] + [t for t in corpus["traps"] if t[decode_offset(t)] != 0xA4]
    outcomes = Counter()
    for n in range(CODEC_MUTATIONS):
        data = splice(rng.choice(real), rng.choice(real), rng) if n % 10 == 0 else mutate(rng.choice(real), rng)
        try:
            message = decode_message(data)  # any exception but SnmpDecodeError fails the test here
        except SnmpDecodeError:
            outcomes["refused"] += 1
            continue
        outcomes["decoded"] += 1
        assert len(message.varbinds) <= len(data) // 7  # a varbind takes 7 bytes at least (30 05 06 01 xx 05 00)
        assert all(2 <= len(oid) <= MAX_OID_SUBIDS + 1 for oid, _ in message.varbinds)
        again = decode_message(encode_message(message.pdu_type, message.community, message.request_id,
                                              message.varbinds, error_status=message.error_status,
                                              error_index=message.error_index, version=message.version))
        assert again == message
        if len(data) <= MAX_TRAP_BYTES and 3 * len(message.varbinds) + 8 <= MAX_ELEMENTS:
            assert screen(data) is None, data.hex()
    # Both outcomes occur in numbers: the mutations reach past the first bytes.
    assert outcomes["decoded"] > CODEC_MUTATIONS // 20 and outcomes["refused"] > CODEC_MUTATIONS // 4, outcomes


def decode_offset(message: bytes) -> int:
    """Where the PDU tag of a v1/v2c message is (after version and community)."""
    pos = 2 if message[1] < 0x80 else 2 + (message[1] & 0x7F)
    pos += 2 + message[pos + 1]  # version
    return pos + 2 + message[pos + 1]  # community


def _hostile() -> list[tuple[str, bytes, str | None]]:
    """Hand-built hostile notifications: (name, datagram, the screen's verdict)."""

    def trap(varbinds: bytes) -> bytes:
        pdu = tlv(0xA7, tlv(2, b"\x01") + tlv(2, b"\0") + tlv(2, b"\0") + tlv(0x30, varbinds))
        return tlv(0x30, tlv(2, b"\x01") + tlv(4, COMMUNITY.encode()) + pdu)

    nested = b"\x05\x00"
    for _ in range(3000):
        nested = tlv(0x30, nested)
    empty_varbind = tlv(0x30, tlv(6, b"\x2b\x06\x01") + b"\x05\x00")
    return [
        ("6,000 empty varbinds", trap(empty_varbind * 6000), TOO_LARGE),
        ("400 empty varbinds", trap(empty_varbind * 400), TOO_MANY_ELEMENTS),
        ("3,000 nested SEQUENCEs", trap(tlv(0x30, tlv(6, b"\x2b\x06\x01") + nested))[:MAX_TRAP_BYTES], TOO_DEEP),
        ("a 30,000-octet sub-identifier", trap(tlv(0x30, tlv(6, b"\x2b" + b"\x81" * 30000 + b"\x01") + b"\x05\x00")), TOO_LARGE),
        ("a 12,000-byte INTEGER", trap(tlv(0x30, tlv(6, b"\x2b\x06\x01") + tlv(2, b"\x7f" * 12000))), None),
        ("indefinite length", b"\x30\x80" + trap(b"")[2:] + b"\x00\x00", MALFORMED),
        ("length past the datagram", b"\x30\x84\x7f\xff\xff\xff" + trap(b"")[2:], MALFORMED),
        ("not a SEQUENCE", b"\x04\x03abc", MALFORMED),
        ("empty", b"", MALFORMED),
        ("v3 with garbage security parameters and data", tlv(0x30, tlv(2, b"\x03") + tlv(0x30, tlv(2, b"\x01") * 2
                                                             + tlv(4, b"\x07") + tlv(2, b"\x03")) + tlv(4, os_random(60)) + tlv(4, os_random(80))), None),
        ("v3 with a garbage header", tlv(0x30, tlv(2, b"\x03") + tlv(0x30, os_random(40)) + tlv(4, os_random(60))), MALFORMED),
    ]


def os_random(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def test_hostile_notifications_get_the_declared_verdict():
    for name, datagram, verdict in _hostile():
        assert screen(datagram) == verdict, name


def _interleaved(corpus, rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """("valid" | "attack", datagram): the hand-built attacks first, then mutations, a valid trap every other."""
    template = corpus["marked"][0]
    attacks = [d for _, d, _ in _hostile()]
    for _ in range(TRAP_MUTATIONS):
        attacks.append(mutate(rng.choice(corpus["traps"]), rng))
    for n in range(max(VALID_TRAPS, len(attacks))):
        if n < len(attacks):
            yield "attack", attacks[n]
        if n < VALID_TRAPS:
            yield "valid", marked(template, n)


def test_the_trap_receiver_keeps_every_valid_trap_through_the_campaign(corpus):
    sequence = list(_interleaved(corpus, random.Random(SEED + 1)))
    attacks = [d for kind, d in sequence if kind == "attack"]
    expected_refusals = Counter(r for r in map(screen, attacks) if r is not None)

    async def run() -> tuple[list[Event], TrapReceiver, list[dict]]:
        loop_errors: list[dict] = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: loop_errors.append(context))
        events: list[Event] = []
        receiver = TrapReceiver("127.0.0.1", 0, communities=[COMMUNITY], on_event=events.append)
        await receiver.start()
        valid_sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        valid_sender.bind(("127.0.0.1", 0))
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker.bind(("127.0.0.2", 0))
        target = receiver.address
        try:
            sent = 0
            for kind, datagram in sequence:
                (valid_sender if kind == "valid" else attacker).sendto(datagram, target)
                if kind == "valid":
                    sent += 1
                    if sent % 25 == 0:  # let the receiver drain: the test is about decoding, not the socket buffer
                        await _until(lambda sent=sent: _valid(events) >= sent, f"{sent} valid traps")
                else:
                    await asyncio.sleep(0)
            await _until(lambda: _valid(events) >= VALID_TRAPS, "every valid trap")
            await asyncio.sleep(0.2)  # nothing more may arrive: a duplicate would show now
            assert receiver.address == target  # still bound and serving
            return events, receiver, loop_errors
        finally:
            valid_sender.close()
            attacker.close()
            receiver.stop()

    events, receiver, loop_errors = asyncio.run(run())
    valid = [e for e in events if e.source == "127.0.0.1"]
    markers = sorted(dict(e.varbinds)[MARKER_OID] for e in valid)
    assert markers == [f"VALID-{n:06d}" for n in range(VALID_TRAPS)]  # each exactly once
    assert all(e.event == "link_down" and e.if_index == 3 and e.interface == "GigabitEthernet0/0/3" for e in valid)
    assert {e.source for e in events} <= {"127.0.0.1", "127.0.0.2"}
    assert {k: v for k, v in receiver.refused.items() if v} == dict(expected_refusals)
    assert receiver.received == len(events)
    assert receiver.received + receiver.errors + sum(receiver.refused.values()) <= len(sequence)
    assert loop_errors == []  # nothing escaped into the event loop's exception handler
    print(f"traps: {len(attacks)} attacks, refused {dict(expected_refusals)}, engine errors {receiver.errors}, "
          f"attacker events {len(events) - len(valid)}")


def _valid(events: list[Event]) -> int:
    return sum(1 for e in events if e.source == "127.0.0.1")


async def _until(predicate, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def test_egovmon_snmp_traps_prints_its_counts_when_stopped(corpus):
    """The CLI receiver (a real process): a valid trap is an event line, refusals are counted by reason."""
    import re
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-m", "cli", "snmp", "traps", "--port", "0", "--host", "127.0.0.1",
                                "--community", COMMUNITY, "--lang", "en"], cwd=root,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(re.search(r":(\d+) ", process.stderr.readline()).group(1))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in (b"\x04\x03abc", b"\x30" * 20000, marked(corpus["marked"][0], 7)):
                sock.sendto(datagram, ("127.0.0.1", port))
        event = process.stdout.readline()
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert '"VALID-000007"' in event and '"event": "link_down"' in event
    assert "received 1, engine errors 0, refused 2 (too_large=1, too_many_elements=0, too_deep=0, malformed=1)" in err
