"""Decode NetFlow v9 export packets (RFC 3954) into FLOW_DTYPE records and options dicts.

Spec: https://www.rfc-editor.org/rfc/rfc3954 (§5 packet layout, §5.2 templates,
§6 options). Templates are scoped by (exporter, source id, template id). A
template earlier in the same packet applies to data sets after it; the caller's
mapping is never changed: what was learned is returned in `Decoded.templates`
for the caller to apply (see `decode.TemplateCache`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from collectors.flow.model import (
    BadTemplateError,
    Decoded,
    DecodeError,
    ExporterContext,
    TemplateKey,
    TruncatedError,
    UnknownVersionError,
)
from collectors.flow.records import DataSets
from collectors.flow.templates import Template, read_template

HEADER = struct.Struct(">HHIIII")
SET_HEADER = struct.Struct(">HH")
TEMPLATE_SET = 0
OPTIONS_TEMPLATE_SET = 1
MIN_DATA_SET = 256


def decode_v9(
    datagram: bytes,
    exporter: str,
    templates: Mapping[TemplateKey, Template],
    *,
    contexts: Mapping[int, ExporterContext] | None = None,
    defer: bool = False,
) -> Decoded:
    """Decode one NetFlow v9 packet; times in Unix ms from sysUptime-relative FIRST/LAST_SWITCHED.

    Data sets whose template is unknown are counted in `skipped_sets`.
    `contexts` (source id → what its options data said) supplies the sampling
    interval; `defer` leaves flow data sets in `Decoded.blocks` for the caller
    to decode with other datagrams'.

    Raises:
        UnknownVersionError: the version field is not 9.
        TruncatedError: the header or a flowset runs past the end of the packet.
        BadTemplateError: a template with zero or absurd field lengths.
        DecodeError: a flowset length below 4.
    """
    end = len(datagram)
    if end < HEADER.size:
        raise TruncatedError(f"NetFlow v9 header needs {HEADER.size} bytes, got {end}")
    version, _count, uptime, secs, sequence, source_id = HEADER.unpack_from(datagram)
    if version != 9:
        raise UnknownVersionError(f"not NetFlow v9: version {version}")
    sets = DataSets(templates, contexts, source_id, secs * 1000, uptime)
    pos = HEADER.size
    while end - pos >= SET_HEADER.size:
        set_id, length = SET_HEADER.unpack_from(datagram, pos)
        set_end = pos + length
        if length < SET_HEADER.size or set_end > end:
            error = _flowset_error(datagram, pos, set_id, length, end)
            if error is None:
                break  # zero padding after the last flowset
            raise error
        body = pos + SET_HEADER.size
        if set_id == TEMPLATE_SET:
            _templates(datagram, body, set_end, exporter, source_id, sets.learned)
        elif set_id == OPTIONS_TEMPLATE_SET:
            _options_templates(datagram, body, set_end, exporter, source_id, sets.learned)
        elif set_id >= MIN_DATA_SET:
            sets.read(TemplateKey(exporter, source_id, set_id), datagram, body, set_end)
        pos = set_end
    return sets.decoded(9, exporter, source_id, sequence, defer=defer)


def _flowset_error(datagram: bytes, pos: int, set_id: int, length: int, end: int) -> DecodeError | None:
    """The error for the flowset header at `pos` (§5.3) whose length is below its own size or runs past `end`;
    None when it is the zero padding after the last flowset."""
    if length < SET_HEADER.size:
        if not any(datagram[pos:]):
            return None
        return DecodeError(f"flowset {set_id} has length {length}")
    return TruncatedError(f"flowset {set_id} of {length} bytes runs past the packet ({end - pos} left)")


def _templates(
    data: bytes, pos: int, end: int, exporter: str, source_id: int, learned: dict[TemplateKey, Template | None]
) -> None:
    """Parse the template records of one template flowset (RFC 3954 §5.2) into `learned`."""
    while end - pos >= 4:
        template_id, count = SET_HEADER.unpack_from(data, pos)
        if template_id == 0 and count == 0 and not any(data[pos:end]):
            return  # padding
        if template_id < MIN_DATA_SET:
            raise BadTemplateError(f"template id {template_id} below 256")
        if count == 0:
            raise BadTemplateError(f"template {template_id} has no fields")
        learned[TemplateKey(exporter, source_id, template_id)], pos = read_template(
            data, pos + 4, end, template_id, count, ipfix=False, scope=0, is_options=False, version=9
        )


def _options_templates(
    data: bytes, pos: int, end: int, exporter: str, source_id: int, learned: dict[TemplateKey, Template | None]
) -> None:
    """Parse the options template records of one options flowset (RFC 3954 §6.1) into `learned`.

    Scope and option lengths are in bytes (4 per field specifier). Juniper SRX sends
    a scope field of length 0, which is accepted: it occupies nothing in the record.
    """
    while end - pos >= 6:
        template_id, scope_bytes, option_bytes = struct.unpack_from(">HHH", data, pos)
        if template_id == 0 and not any(data[pos:end]):
            return  # padding
        if template_id < MIN_DATA_SET:
            raise BadTemplateError(f"options template id {template_id} below 256")
        if scope_bytes % 4 or option_bytes % 4:
            raise BadTemplateError(f"options template {template_id}: scope/option lengths not multiples of 4")
        scope = scope_bytes // 4
        learned[TemplateKey(exporter, source_id, template_id)], pos = read_template(
            data, pos + 6, end, template_id, scope + option_bytes // 4, ipfix=False, scope=scope, is_options=True, version=9
        )
