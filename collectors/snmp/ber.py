"""SNMPv2c messages in BER (RFC 3416 PDUs, RFC 1901 community framing, X.690 BER): pure encode/decode.

Why our own codec: pysnmp 7 decodes through pyasn1 at about 180 µs per varbind
(REAL_COMPONENTS.md), too slow to walk IF-MIB on 1,000 devices a minute in one
core. A GETBULK response is a flat, well-known structure, decoded here with plain
slicing at a few µs per varbind. SNMPv3 reuses these PDU codecs: `collectors.snmp.usm`
frames, authenticates and decrypts USM messages (RFC 3412/3414/3826) around them; only
what `usm` does not speak (noAuthNoPriv, DES, Cisco's AES-256 key extension) goes
through pysnmp (`collectors.snmp.engine.PysnmpEngine`).

Values come out as plain Python: `int` (INTEGER, Counter32/64, Gauge32, TimeTicks),
`bytes` (OCTET STRING, Opaque), `Oid` (tuple of ints), `IPv4Address` (IpAddress),
`None` (NULL) and the `VarBindException` sentinels (noSuchObject, noSuchInstance, endOfMibView).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Final, TypeAlias

from collectors.snmp.errors import SnmpDecodeError

Oid: TypeAlias = tuple[int, ...]


class VarBindException(enum.Enum):
    """The RFC 3416 varbind exceptions (context tags 0x80-0x82)."""

    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


Value: TypeAlias = int | bytes | Oid | ipaddress.IPv4Address | VarBindException | None
VarBind: TypeAlias = tuple[Oid, Value]

VERSION_1: Final = 0
VERSION_2C: Final = 1
GET: Final = 0xA0
GET_NEXT: Final = 0xA1
RESPONSE: Final = 0xA2
GET_BULK: Final = 0xA5
INFORM: Final = 0xA6
TRAP_V2: Final = 0xA7
REPORT: Final = 0xA8
PDU_TAGS: Final = frozenset({GET, GET_NEXT, RESPONSE, GET_BULK, INFORM, TRAP_V2})

_UNSIGNED_TAGS: Final = frozenset({0x41, 0x42, 0x43, 0x46, 0x47})  # Counter32 Gauge32 TimeTicks Counter64 UInteger32
_EXCEPTIONS: Final = {e.value: e for e in VarBindException}

ERROR_STATUS: Final = (
    "noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType", "wrongLength",
    "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue", "resourceUnavailable", "commitFailed",
    "undoFailed", "authorizationError", "notWritable", "inconsistentName",
)


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded SNMPv1/v2c message: its PDU type and the fields every PDU shares."""

    version: int
    community: bytes
    pdu_type: int
    request_id: int
    error_status: int
    error_index: int
    varbinds: tuple[VarBind, ...]


def oid_from_text(text: str) -> Oid:
    """'1.3.6.1.2.1' (a leading dot allowed) → (1, 3, 6, 1, 2, 1). Raises ValueError on anything else."""
    parts = text.strip().lstrip(".").split(".")
    oid = tuple(int(part) for part in parts)
    if len(oid) < 2 or any(part < 0 for part in oid):
        raise ValueError(f"not a numeric OID: {text!r}")
    return oid


def oid_text(oid: Oid) -> str:
    return ".".join(map(str, oid))


# -- decoding ------------------------------------------------------------------------------------


def header(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the TLV at pos."""
    if pos + 2 > end:
        raise SnmpDecodeError(f"truncated TLV at offset {pos}")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > end:
            raise SnmpDecodeError(f"bad BER length at offset {pos - 1}")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise SnmpDecodeError(f"TLV at offset {pos} runs {pos + length - end} bytes past its container")
    return tag, pos, pos + length


MAX_OID_SUBIDS = 128  # RFC 2578 §3.5: at most 128 sub-identifiers
MAX_SUBID = 2**32 - 1  # ... each at most 2^32-1


def decode_oid(body: bytes) -> Oid:
    """The contents octets of an OBJECT IDENTIFIER (X.690 §8.19) as a tuple of ints.

    Linear in the input: a sub-identifier longer than 5 octets (more than 32 bits) or with a leading 0x80
    (not minimal, which pyasn1 rejects too), and more than 128 sub-identifiers, are malformed; before these
    bounds one 65 KB sub-identifier cost 0.47 s of big-integer shifts.
    """
    if not body:
        raise SnmpDecodeError("empty OBJECT IDENTIFIER")
    out = _subidentifiers(body)
    if body[-1] & 0x80:
        raise SnmpDecodeError("OBJECT IDENTIFIER ends inside a sub-identifier")
    first = out[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + tuple(out[1:])


def _subidentifiers(body: bytes) -> list[int]:
    """The base-128 sub-identifiers of an OID's contents (the first still holding the first two arcs); a trailing
    unfinished one is left out. Raises SnmpDecodeError past the bounds of `decode_oid`."""
    out: list[int] = []
    value = 0
    octets = 0
    for byte in body:
        if octets == 0 and byte == 0x80:
            raise SnmpDecodeError("OBJECT IDENTIFIER sub-identifier starts with 0x80 (not minimally encoded)")
        octets += 1
        if octets > 5:
            raise SnmpDecodeError("OBJECT IDENTIFIER sub-identifier longer than 32 bits")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            if out and value > MAX_SUBID:
                raise SnmpDecodeError("OBJECT IDENTIFIER sub-identifier larger than 2^32-1")
            out.append(value)
            if len(out) > MAX_OID_SUBIDS:
                raise SnmpDecodeError(f"OBJECT IDENTIFIER of more than {MAX_OID_SUBIDS} sub-identifiers")
            value = 0
            octets = 0
    return out


def _value(tag: int, body: bytes) -> Value:
    if tag == 0x02:
        return int.from_bytes(body, "big", signed=True)
    if tag in _UNSIGNED_TAGS:
        return int.from_bytes(body, "big")
    if tag == 0x04 or tag == 0x44:
        return body
    if tag == 0x06:
        return decode_oid(body)
    if tag == 0x40:
        if len(body) != 4:
            raise SnmpDecodeError(f"IpAddress of {len(body)} bytes")
        return ipaddress.IPv4Address(body)
    if tag == 0x05:
        return None
    exception = _EXCEPTIONS.get(tag)
    if exception is not None:
        return exception
    raise SnmpDecodeError(f"unknown value tag 0x{tag:02x}")


def integer_at(data: bytes, pos: int, end: int) -> tuple[int, int]:
    tag, start, stop = header(data, pos, end)
    if tag != 0x02:
        raise SnmpDecodeError(f"expected INTEGER at offset {pos}, found tag 0x{tag:02x}")
    return int.from_bytes(data[start:stop], "big", signed=True), stop


def decode_message(data: bytes) -> Message:
    """Decode one SNMPv1/v2c message with a v2-style PDU (get, response, bulk, inform, trap v2).

    Raises:
        SnmpDecodeError: truncated or malformed BER, an SNMPv3 message, or an unknown PDU type.
    """
    data = bytes(data)
    end = len(data)
    tag, pos, stop = header(data, 0, end)
    if tag != 0x30:
        raise SnmpDecodeError(f"not an SNMP message (starts with tag 0x{tag:02x})")
    version, pos = integer_at(data, pos, stop)
    if version not in (VERSION_1, VERSION_2C):
        raise SnmpDecodeError(f"SNMP version field {version} is not v1/v2c")
    tag, cstart, pos = header(data, pos, stop)
    if tag != 0x04:
        raise SnmpDecodeError("community is not an OCTET STRING")
    community = data[cstart:pos]
    if header(data, pos, stop)[2] != stop:
        raise SnmpDecodeError("trailing bytes after the PDU")
    pdu_type, request_id, error_status, error_index, varbinds = decode_pdu(data, pos, stop)
    return Message(version, community, pdu_type, request_id, error_status, error_index, varbinds)


def decode_pdu(data: bytes, pos: int, end: int) -> tuple[int, int, int, int, tuple[VarBind, ...]]:
    """The PDU starting at data[pos] (RFC 3416 §3): (type, request-id, error-status, error-index, varbinds).

    Shared by v1/v2c messages and SNMPv3 scoped PDUs (a Report-PDU, 0xA8, is accepted here).

    Raises:
        SnmpDecodeError: malformed BER or an unknown PDU type.
    """
    stop = end
    pdu_type, pos, pdu_end = header(data, pos, stop)
    if pdu_type not in PDU_TAGS and pdu_type != REPORT:
        raise SnmpDecodeError(f"unsupported PDU type 0x{pdu_type:02x}")
    request_id, pos = integer_at(data, pos, pdu_end)
    error_status, pos = integer_at(data, pos, pdu_end)
    error_index, pos = integer_at(data, pos, pdu_end)
    tag, pos, list_end = header(data, pos, pdu_end)
    if tag != 0x30:
        raise SnmpDecodeError("varbind list is not a SEQUENCE")
    varbinds: list[VarBind] = []
    while pos < list_end:
        tag, pos, vb_end = header(data, pos, list_end)
        if tag != 0x30:
            raise SnmpDecodeError("varbind is not a SEQUENCE")
        tag, ostart, pos = header(data, pos, vb_end)
        if tag != 0x06:
            raise SnmpDecodeError("varbind name is not an OBJECT IDENTIFIER")
        oid = decode_oid(data[ostart:pos])
        vtag, vstart, pos = header(data, pos, vb_end)
        if pos != vb_end:
            raise SnmpDecodeError("trailing bytes inside a varbind")
        varbinds.append((oid, _value(vtag, data[vstart:pos])))
    if list_end != pdu_end:
        raise SnmpDecodeError("trailing bytes after the varbind list")  # X.690 §8.9: exactly the components
    return pdu_type, request_id, error_status, error_index, tuple(varbinds)



# -- encoding ------------------------------------------------------------------------------------


def tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes((tag, length)) + body
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + body


def int_body(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True)


def encode_oid(oid: Oid) -> bytes:
    """The contents octets of an OBJECT IDENTIFIER. Raises ValueError for fewer than two arcs."""
    if len(oid) < 2:
        raise ValueError(f"OID {oid} has fewer than two arcs")
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = bytearray()
        while arc:
            chunk.append((arc & 0x7F) | 0x80)
            arc >>= 7
        chunk[0] &= 0x7F
        out += chunk[::-1]
    return bytes(out)


def _encode_value(value: Value) -> bytes:
    if value is None:
        return b"\x05\x00"
    if isinstance(value, VarBindException):
        return bytes((value.value, 0))
    if isinstance(value, bool) or not isinstance(value, (int, bytes, tuple, ipaddress.IPv4Address)):
        raise ValueError(f"cannot encode {value!r}")
    if isinstance(value, int):
        return tlv(0x02, int_body(value))
    if isinstance(value, bytes):
        return tlv(0x04, value)
    if isinstance(value, ipaddress.IPv4Address):
        return tlv(0x40, value.packed)
    return tlv(0x06, encode_oid(value))


def encode_message(
    pdu_type: int, community: bytes, request_id: int, varbinds: tuple[VarBind, ...] | list[VarBind],
    *, error_status: int = 0, error_index: int = 0, version: int = VERSION_2C,
) -> bytes:
    """One SNMPv2c message; for GETBULK, error_status is non-repeaters and error_index max-repetitions."""
    pdu = encode_pdu(pdu_type, request_id, varbinds, error_status=error_status, error_index=error_index)
    return tlv(0x30, tlv(0x02, int_body(version)) + tlv(0x04, community) + pdu)


def encode_pdu(pdu_type: int, request_id: int, varbinds: tuple[VarBind, ...] | list[VarBind], *,
               error_status: int = 0, error_index: int = 0) -> bytes:
    """One PDU (RFC 3416 §3); for GETBULK, error_status is non-repeaters and error_index max-repetitions."""
    vbl = b"".join(tlv(0x30, tlv(0x06, encode_oid(oid)) + _encode_value(value)) for oid, value in varbinds)
    return tlv(pdu_type, tlv(0x02, int_body(request_id)) + tlv(0x02, int_body(error_status))
                + tlv(0x02, int_body(error_index)) + tlv(0x30, vbl))


def encode_get_bulk(community: bytes, request_id: int, oids: list[Oid] | tuple[Oid, ...], *,
                    non_repeaters: int = 0, max_repetitions: int = 25) -> bytes:
    """A GetBulkRequest-PDU (RFC 3416 §4.2.3) for `oids` with NULL values."""
    return encode_message(GET_BULK, community, request_id, [(oid, None) for oid in oids],
                          error_status=non_repeaters, error_index=max_repetitions)
