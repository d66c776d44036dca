"""Conceptual tables (RFC 2578 §7.1.12) from walked varbinds, index decoders and value formatting (pure).

A `Table` is data: the OID of its entry and the columns we read, by number, with
the name we give them. `rows()` regroups the varbinds of a walk by row index.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from collectors.snmp.ber import Oid, Value, VarBind, oid_text


@dataclass(frozen=True, slots=True)
class Table:
    """A conceptual table: `entry` is the xxxEntry OID, `columns` maps column numbers to our names."""

    name: str
    entry: Oid
    columns: Mapping[int, str]

    def roots(self) -> tuple[Oid, ...]:
        """The column OIDs to walk, in column order."""
        return tuple(self.entry + (number,) for number in sorted(self.columns))


Row = dict[str, Value]


def rows(table: Table, varbinds: Iterable[VarBind]) -> dict[Oid, Row]:
    """Group varbinds under table.entry by row index: {index: {column name: value}}, indexes in OID order."""
    entry = table.entry
    size = len(entry)
    out: dict[Oid, Row] = {}
    for oid, value in varbinds:
        if len(oid) <= size + 1 or oid[:size] != entry:
            continue
        name = table.columns.get(oid[size])
        if name is not None:
            out.setdefault(oid[size + 1:], {})[name] = value
    return dict(sorted(out.items()))


# -- index decoding --------------------------------------------------------------------------------


def ipv4_at(index: Oid, start: int = 0) -> ipaddress.IPv4Address:
    """Four sub-identifiers of an IpAddress index from `start`. Raises ValueError when out of range."""
    part = index[start:start + 4]
    if len(part) != 4 or any(not 0 <= octet <= 255 for octet in part):
        raise ValueError(f"not an IPv4 address index: {oid_text(index)}")
    return ipaddress.IPv4Address(bytes(part))


def inet_address_at(index: Oid, start: int) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address | None, int]:
    """An (InetAddressType, InetAddress) pair of an index from `start` (RFC 4001 §4: length-prefixed octets).

    Returns the address (None for unknown(0) or a DNS name) and the position after it.
    Address types 3 and 4 (ipv4z, ipv6z) carry a 4-byte zone index after the address, dropped here.
    Raises ValueError on an index too short for its length.
    """
    kind = index[start]
    length = index[start + 1] if start + 1 < len(index) else 0
    octets = index[start + 2:start + 2 + length]
    if len(octets) != length or any(not 0 <= octet <= 255 for octet in octets):
        raise ValueError(f"bad InetAddress in index {oid_text(index)}")
    end = start + 2 + length
    raw = bytes(octets)
    if kind in (1, 3) and length in (4, 8):
        return ipaddress.IPv4Address(raw[:4]), end
    if kind in (2, 4) and length in (16, 20):
        return ipaddress.IPv6Address(raw[:16]), end
    return None, end


# -- value formatting ------------------------------------------------------------------------------


def text(value: Value) -> str:
    """An OCTET STRING (DisplayString / SnmpAdminString) as text: UTF-8, else Latin-1, NULs and edges trimmed."""
    if isinstance(value, bytes):
        try:
            decoded = value.decode("utf-8")
        except UnicodeDecodeError:
            decoded = value.decode("latin-1")
        return decoded.replace("\x00", "").strip()
    if value is None or not isinstance(value, (int, tuple, ipaddress.IPv4Address)):
        return ""
    if isinstance(value, tuple):
        return oid_text(value)
    return str(value)


def mac(value: Value) -> str:
    """A PhysAddress / MacAddress as aa:bb:cc:dd:ee:ff; "" when absent or empty."""
    if isinstance(value, bytes) and value:
        return ":".join(f"{octet:02x}" for octet in value)
    return ""


def integer(value: Value, default: int = -1) -> int:
    """An INTEGER-ish value as int; `default` for anything else (exceptions, strings)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def address(value: Value) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IpAddress or a 4/16-octet InetAddress value; None otherwise."""
    if isinstance(value, ipaddress.IPv4Address):
        return value
    if isinstance(value, bytes) and len(value) == 4:
        return ipaddress.IPv4Address(value)
    if isinstance(value, bytes) and len(value) == 16:
        return ipaddress.IPv6Address(value)
    return None
