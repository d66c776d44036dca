"""Decode IPFIX messages (RFC 7011) into FLOW_DTYPE records and options dicts.

Spec: https://www.rfc-editor.org/rfc/rfc7011 (§3.1 message header, §3.4 template
records and the enterprise bit, §7 variable-length encoding, §8.1 template
withdrawal). Templates are scoped by (exporter, observation domain, template id).
A template earlier in the same message applies to data sets after it; the
caller's mapping is never changed: learned templates and withdrawals (None)
are returned in `Decoded.templates`.

IPFIX has no sysUptime in its header: flowStart/EndSysUpTime (IE 22/21, which
softflowd exports) become absolute only once the exporter's options data gave
systemInitTimeMilliseconds (IE 160; `ExporterContext`), and are 0 until then.
Absolute times (IE 150-157) need nothing.
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

HEADER = struct.Struct(">HHIII")
SET_HEADER = struct.Struct(">HH")
TEMPLATE_SET = 2
OPTIONS_TEMPLATE_SET = 3
MIN_DATA_SET = 256


def decode_ipfix(
    datagram: bytes,
    exporter: str,
    templates: Mapping[TemplateKey, Template],
    *,
    contexts: Mapping[int, ExporterContext] | None = None,
    defer: bool = False,
) -> Decoded:
    """Decode one IPFIX message; bytes past the header's length field are ignored.

    Data sets whose template is unknown (or withdrawn) are counted in `skipped_sets`.
    `contexts` (observation domain → what its options data said) supplies the
    sampling interval and system init time; `defer` leaves flow data sets in
    `Decoded.blocks` for the caller to decode with other datagrams'.

    Raises:
        UnknownVersionError: the version field is not 10.
        TruncatedError: the message or a set runs past the end of the datagram.
        BadTemplateError: zero or absurd field lengths, an options template without scope.
        DecodeError: a length field below its header size.
    """
    end, export_time, sequence, domain = _header(datagram)
    sets = DataSets(templates, contexts, domain, export_time * 1000, None)
    pos = HEADER.size
    while end - pos >= SET_HEADER.size:
        set_id, length = SET_HEADER.unpack_from(datagram, pos)
        set_end = pos + length
        if length < SET_HEADER.size or set_end > end:
            raise _set_error(set_id, length, end - pos)
        if set_id == TEMPLATE_SET or set_id == OPTIONS_TEMPLATE_SET:
            _templates(datagram, pos + SET_HEADER.size, set_end, exporter, domain, sets.learned,
                       options=set_id == OPTIONS_TEMPLATE_SET)
        elif set_id >= MIN_DATA_SET:
            sets.read(TemplateKey(exporter, domain, set_id), datagram, pos + SET_HEADER.size, set_end)
        pos = set_end
    return sets.decoded(10, exporter, domain, sequence, defer=defer)


def _header(datagram: bytes) -> tuple[int, int, int, int]:
    """(message length, export time in Unix seconds, sequence number, observation domain) of the header (§3.1).

    Raises:
        UnknownVersionError, TruncatedError, DecodeError: see `decode_ipfix`.
    """
    if len(datagram) < HEADER.size:
        raise TruncatedError(f"IPFIX header needs {HEADER.size} bytes, got {len(datagram)}")
    version, end, export_time, sequence, domain = HEADER.unpack_from(datagram)
    if version != 10:
        raise UnknownVersionError(f"not IPFIX: version {version}")
    if end < HEADER.size:
        raise DecodeError(f"IPFIX message length {end} below the header size")
    if end > len(datagram):
        raise TruncatedError(f"IPFIX message of {end} bytes, datagram has {len(datagram)}")
    return end, export_time, sequence, domain


def _set_error(set_id: int, length: int, left: int) -> DecodeError:
    """The error for a set header (§3.3.2) whose length is below its own size or runs past the `left` bytes."""
    if length < SET_HEADER.size:
        return DecodeError(f"set {set_id} has length {length}")
    return TruncatedError(f"set {set_id} of {length} bytes runs past the message ({left} left)")


def _templates(
    data: bytes,
    pos: int,
    end: int,
    exporter: str,
    domain: int,
    learned: dict[TemplateKey, Template | None],
    *,
    options: bool,
) -> None:
    """Parse the (options) template records of one set into `learned`; field count 0 is a withdrawal."""
    while end - pos >= 4:
        template_id, count = SET_HEADER.unpack_from(data, pos)
        if template_id == 0 and count == 0 and not any(data[pos:end]):
            return  # padding
        pos += 4
        if count == 0:
            if template_id >= MIN_DATA_SET:
                learned[TemplateKey(exporter, domain, template_id)] = None
            # template_id equal to the set id withdraws all templates of the set (§8.1); the caller
            # sees nothing for it here, and templates simply get replaced when re-sent.
            continue
        if template_id < MIN_DATA_SET:
            raise BadTemplateError(f"template id {template_id} below 256")
        scope = 0
        if options:
            scope, pos = _scope_count(data, pos, end, template_id, count)
        learned[TemplateKey(exporter, domain, template_id)], pos = read_template(
            data, pos, end, template_id, count, ipfix=True, scope=scope, is_options=options, version=10
        )


def _scope_count(data: bytes, pos: int, end: int, template_id: int, count: int) -> tuple[int, int]:
    """(scope field count, position after it) of an options template record of `count` fields (§3.4.2.2).

    Raises:
        TruncatedError: the scope count runs past the set.
        BadTemplateError: a scope count of 0 or above the field count.
    """
    if end - pos < 2:
        raise TruncatedError("options template scope count past the end of the set")
    (scope,) = struct.unpack_from(">H", data, pos)
    if scope == 0 or scope > count:
        raise BadTemplateError(f"options template {template_id}: scope count {scope} of {count} fields")
    return scope, pos + 2
