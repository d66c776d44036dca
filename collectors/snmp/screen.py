"""Screen a received SNMP datagram before pysnmp decodes it: bounded size, nesting and element count.

pysnmp decodes through pyasn1 at about 150 µs per varbind, and some hostile encodings make it raise
outside its own error handling. The fuzz campaign (tests/fuzz/test_snmp_traps.py) measured one 54 KB
trap of 6,000 empty varbinds at 0.9 s of receiver time, and mutated traps escaping as TypeError,
ValueConstraintError and ValueError into the event loop's exception handler (a traceback each,
not counted). A real notification is a few hundred bytes with tens of varbinds, so a datagram past
these bounds is refused for its size, in a few microseconds per element, before any of that runs.

The walk follows X.690 definite-length BER (RFC 3417 §8 requires the definite form) and enters
constructed elements only; an SNMPv3 encrypted scoped PDU is an OCTET STRING and is not entered.
"""

from __future__ import annotations

from typing import Final

from collectors.snmp.ber import header
from collectors.snmp.errors import SnmpDecodeError

MAX_TRAP_BYTES: Final = 16384  # real notifications are hundreds of bytes (net-snmp: 71-245 in the fuzz corpus)
MAX_ELEMENTS: Final = 1024  # TLVs in the message: a varbind is 3, so about 330 varbinds
MAX_DEPTH: Final = 8  # message > PDU > varbind list > varbind > value is 5; SNMPv3 noAuth adds 1

TOO_LARGE: Final = "too_large"
TOO_MANY_ELEMENTS: Final = "too_many_elements"
TOO_DEEP: Final = "too_deep"
MALFORMED: Final = "malformed"
REASONS: Final = (TOO_LARGE, TOO_MANY_ELEMENTS, TOO_DEEP, MALFORMED)


def screen(datagram: bytes) -> str | None:
    """Why `datagram` must not reach the SNMP engine (one of REASONS), or None when it may."""
    if len(datagram) > MAX_TRAP_BYTES:
        return TOO_LARGE
    try:
        tag, start, end = header(datagram, 0, len(datagram))
    except SnmpDecodeError:
        return MALFORMED
    if tag != 0x30:
        return MALFORMED
    elements = 1
    stack = [(start, end)]  # the constructed elements being walked: (next child, end)
    while stack:
        pos, end = stack[-1]
        if pos >= end:
            stack.pop()
            continue
        try:
            tag, child_start, child_end = header(datagram, pos, end)
        except SnmpDecodeError:
            return MALFORMED
        stack[-1] = (child_end, end)
        elements += 1
        if elements > MAX_ELEMENTS:
            return TOO_MANY_ELEMENTS
        if tag & 0x20:  # constructed (SEQUENCE, a PDU): walk its contents
            if len(stack) >= MAX_DEPTH:
                return TOO_DEEP
            stack.append((child_start, child_end))
    return None
