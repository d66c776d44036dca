"""Decode NetFlow v5 export datagrams into FLOW_DTYPE records.

Format: Cisco, "NetFlow Export Datagram Format", version 5 (24-byte header, then
`count` 48-byte records).
https://www.cisco.com/c/en/us/td/docs/net_mgmt/netflow_collection_engine/3-6/user/guide/format.html#wp1006108

The fixed record layout is expressed as a template of NetFlow v9 field types
(RFC 3954 §8), so v5 goes through the same vectorized plan as v9 and IPFIX:
one `np.frombuffer` and one structured assignment per datagram, or per batch
of datagrams with `defer`.
"""

from __future__ import annotations

import struct

from collectors.flow.model import Decoded, TruncatedError, UnknownVersionError
from collectors.flow.records import FixedBlock, settle
from collectors.flow.templates import TemplateField, make_template

HEADER = struct.Struct(">HHIIIIBBH")
RECORD_BYTES = 48
_PAD = 210  # paddingOctets

# (v9 field type, length) in v5 record order.
_V5_LAYOUT = (
    (8, 4), (12, 4), (15, 4), (10, 2), (14, 2), (2, 4), (1, 4), (22, 4), (21, 4),
    (7, 2), (11, 2), (_PAD, 1), (6, 1), (4, 1), (5, 1), (16, 2), (17, 2), (9, 1), (13, 1), (_PAD, 2),
)  # fmt: skip
V5_TEMPLATE = make_template(0, [TemplateField(ie, n) for ie, n in _V5_LAYOUT], is_options=False, version=5)
_PLAN = V5_TEMPLATE.plan


def decode_v5(datagram: bytes, exporter: str, *, defer: bool = False) -> Decoded:
    """Decode one NetFlow v5 datagram; times in Unix ms from sysUptime-relative First/Last.

    `domain` is engine_type << 8 | engine_id; `sampling_rate` is the low 14 bits of
    the header's sampling field (1 when 0). `defer` leaves the records in
    `Decoded.blocks` for the caller to decode with other datagrams'.

    Raises:
        UnknownVersionError: the version field is not 5.
        TruncatedError: the header or the `count` records overrun the datagram.
    """
    if len(datagram) < HEADER.size:
        raise TruncatedError(f"NetFlow v5 header needs {HEADER.size} bytes, got {len(datagram)}")
    version, count, uptime, secs, nsecs, sequence, engine_type, engine_id, sampling = HEADER.unpack_from(datagram)
    if version != 5:
        raise UnknownVersionError(f"not NetFlow v5: version {version}")
    if HEADER.size + count * RECORD_BYTES > len(datagram):
        raise TruncatedError(f"NetFlow v5 count {count} needs {HEADER.size + count * RECORD_BYTES} bytes, got {len(datagram)}")
    assert _PLAN is not None
    block = FixedBlock(_PLAN, datagram, HEADER.size, count, secs * 1000 + nsecs // 1_000_000, uptime, (sampling & 0x3FFF) or 1)
    flows, blocks = settle([block] if count else [], defer)
    return Decoded(
        version=5,
        exporter=exporter,
        domain=(engine_type << 8) | engine_id,
        flows=flows,
        sequence=sequence,
        blocks=blocks,
    )
