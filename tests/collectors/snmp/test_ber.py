"""The SNMPv2c BER codec: round trips, values of every tag, and bad input refused with SnmpDecodeError."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.snmp.ber import (
    GET_BULK,
    RESPONSE,
    VarBindException,
    decode_message,
    decode_oid,
    encode_get_bulk,
    encode_message,
    encode_oid,
    oid_from_text,
)
from collectors.snmp.errors import SnmpDecodeError


def test_get_bulk_request_encoding() -> None:
    # RFC 3416 GetBulkRequest, X.690 BER: request-id 1234, non-repeaters 0, max-repetitions 50, ifTable.
    assert encode_get_bulk(b"public", 1234, [(1, 3, 6, 1, 2, 1, 2, 2)], max_repetitions=50).hex() == (
        "302602010104067075626c6963a519020204d2020100020132300d300b06072b0601020102020500"
    )


def test_response_with_every_value_type_decodes_to_plain_values() -> None:
    varbinds = [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), 2900),
        ((1, 3, 6, 1, 2, 1, 1, 2, 0), (1, 3, 6, 1, 4, 1, 2011, 2, 23, 291)),
        ((1, 3, 6, 1, 2, 1, 1, 5, 0), "交换机-01".encode()),
        ((1, 3, 6, 1, 2, 1, 4, 20, 1, 1, 10, 0, 0, 1), ipaddress.IPv4Address("10.0.0.1")),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 7, 1), -1),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 9, 1), VarBindException.NO_SUCH_INSTANCE),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 1), VarBindException.END_OF_MIB_VIEW),
    ]
    message = decode_message(encode_message(RESPONSE, b"public", 7, varbinds))
    assert (message.pdu_type, message.community, message.request_id, message.error_status) == (RESPONSE, b"public", 7, 0)
    assert message.varbinds == tuple(varbinds)


@pytest.mark.parametrize(("tag", "body", "value"), [
    (0x41, "ffffffff", 4294967295),          # Counter32 max (unsigned, not -1)
    (0x42, "00ffffffff", 4294967295),        # Gauge32 with a leading zero octet
    (0x43, "0b54", 2900),                    # TimeTicks
    (0x46, "00ffffffffffffffff", 2**64 - 1),  # Counter64 max
    (0x02, "ff", -1),                        # INTEGER is signed
    (0x44, "9f780441200000", bytes.fromhex("9f780441200000")),  # Opaque stays bytes
])
def test_application_types(tag: int, body: str, value: object) -> None:
    raw_vb = bytes((0x30, 4 + 2 + len(bytes.fromhex(body)))) + bytes.fromhex("06022b06") + bytes((tag, len(bytes.fromhex(body)))) + bytes.fromhex(body)
    pdu = bytes.fromhex("020101020100020100") + bytes((0x30, len(raw_vb))) + raw_vb
    msg = bytes.fromhex("020101040161") + bytes((RESPONSE, len(pdu))) + pdu
    message = decode_message(bytes((0x30, len(msg))) + msg)
    assert message.varbinds == (((1, 3, 6), value),)


def test_oids_with_large_arcs_round_trip() -> None:
    oid = (1, 3, 6, 1, 4, 1, 2011, 5, 25, 31, 1, 1, 1, 1, 5, 16842753, 4294967295)
    assert decode_oid(encode_oid(oid)) == oid
    assert oid_from_text(".1.0.8802.1.1.2") == (1, 0, 8802, 1, 1, 2)
    assert decode_oid(encode_oid((2, 999, 3))) == (2, 999, 3)


GOOD = encode_message(RESPONSE, b"public", 99, [((1, 3, 6, 1, 2, 1, 1, 5, 0), b"sw1")])


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "truncated"),
    (GOOD[:-1], "runs"),                                      # last byte missing
    (GOOD[:10], "runs"),
    (b"\x04\x03abc", "not an SNMP message"),
    (GOOD.replace(b"\x02\x01\x01", b"\x02\x01\x03", 1), "version field 3"),   # an SNMPv3 message
    (b"\x30\x84\xff\xff\xff\xff", "runs"),                     # absurd length
    (b"\x30\x85\x00\x00\x00\x00\x01", "bad BER length"),
    (GOOD.replace(bytes((RESPONSE,)), b"\xa4", 1), "unsupported PDU type"),   # SNMPv1 Trap-PDU
    (GOOD.replace(b"\x04\x03sw1", b"\x09\x03sw1"), "unknown value tag 0x09"),
])
def test_bad_datagrams_raise_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(SnmpDecodeError, match=reason):
        decode_message(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=len(GOOD)))
def test_garbage_only_ever_raises_decode_error(noise: bytes, cut: int) -> None:
    for data in (noise, GOOD[:cut] + noise):
        try:
            decode_message(data)
        except SnmpDecodeError:
            pass


def test_bulk_request_carries_non_repeaters_and_repetitions() -> None:
    message = decode_message(encode_get_bulk(b"c", 5, [(1, 3, 6, 1), (1, 3, 6, 2)], non_repeaters=1, max_repetitions=9))
    assert (message.pdu_type, message.error_status, message.error_index) == (GET_BULK, 1, 9)
    assert message.varbinds == (((1, 3, 6, 1), None), ((1, 3, 6, 2), None))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x2b" + b"\xff" * 65_000 + b"\x01", "longer than 32 bits"),  # issue 14: 65 KB in one sub-identifier
        (b"\x2b\x80\x01", "not minimally encoded"),  # pyasn1 rejects a leading 0x80 too
        (b"\x2b\x90\x80\x80\x80\x00", r"larger than 2\^32-1"),
        (b"\x2b" + b"\x01" * 200, "more than 128"),
    ],
    ids=["65KB-subid", "leading-0x80", "over-32-bits", "too-many"],
)
def test_hostile_object_identifiers_are_malformed_at_once(body: bytes, message: str) -> None:
    with pytest.raises(SnmpDecodeError, match=message):
        decode_oid(body)


def test_the_largest_legal_sub_identifier_decodes() -> None:
    assert decode_oid(encode_oid((1, 3, 2**32 - 1))) == (1, 3, 2**32 - 1)
