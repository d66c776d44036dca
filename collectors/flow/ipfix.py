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
    NO_CONTEXT,
    BadTemplateError,
    Decoded,
    DecodeError,
    ExporterContext,
    OptionsRecord,
    TemplateKey,
    TruncatedError,
    UnknownVersionError,
)
from collectors.flow.records import FixedBlock, read_data_set, settle
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
    if len(datagram) < HEADER.size:
        raise TruncatedError(f"IPFIX header needs {HEADER.size} bytes, got {len(datagram)}")
    version, end, export_time, sequence, domain = HEADER.unpack_from(datagram)
    if version != 10:
        raise UnknownVersionError(f"not IPFIX: version {version}")
    if end < HEADER.size:
        raise DecodeError(f"IPFIX message length {end} below the header size")
    if end > len(datagram):
        raise TruncatedError(f"IPFIX message of {end} bytes, datagram has {len(datagram)}")
    learned: dict[TemplateKey, Template | None] = {}
    options: list[OptionsRecord] = []
    skipped = 0
    blocks: list[FixedBlock] = []
    context = contexts.get(domain, NO_CONTEXT) if contexts else NO_CONTEXT
    pos = HEADER.size
    while end - pos >= SET_HEADER.size:
        set_id, length = SET_HEADER.unpack_from(datagram, pos)
        if length < SET_HEADER.size:
            raise DecodeError(f"set {set_id} has length {length}")
        set_end = pos + length
        if set_end > end:
            raise TruncatedError(f"set {set_id} of {length} bytes runs past the message ({end - pos} left)")
        body = pos + SET_HEADER.size
        if set_id == TEMPLATE_SET or set_id == OPTIONS_TEMPLATE_SET:
            _templates(datagram, body, set_end, exporter, domain, learned, options=set_id == OPTIONS_TEMPLATE_SET)
        elif set_id >= MIN_DATA_SET:
            key = TemplateKey(exporter, domain, set_id)
            template = learned[key] if key in learned else templates.get(key)
            if template is None:
                skipped += 1
            else:
                found = read_data_set(template, datagram, body, set_end, context, export_time * 1000, None)
                if isinstance(found, FixedBlock):
                    if found.record_count:
                        blocks.append(found)
                else:
                    options.extend(found)
        pos = set_end
    flows, deferred = settle(blocks, defer)
    return Decoded(
        version=10,
        exporter=exporter,
        domain=domain,
        flows=flows,
        options=tuple(options),
        templates=dict(learned),
        skipped_sets=skipped,
        sequence=sequence,
        blocks=deferred,
    )


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
        if count == 0:
            if template_id >= MIN_DATA_SET:
                learned[TemplateKey(exporter, domain, template_id)] = None
            # template_id equal to the set id withdraws all templates of the set (§8.1); the caller
            # sees nothing for it here, and templates simply get replaced when re-sent.
            pos += 4
            continue
        if template_id < MIN_DATA_SET:
            raise BadTemplateError(f"template id {template_id} below 256")
        scope = 0
        pos += 4
        if options:
            if end - pos < 2:
                raise TruncatedError("options template scope count past the end of the set")
            (scope,) = struct.unpack_from(">H", data, pos)
            pos += 2
            if scope == 0 or scope > count:
                raise BadTemplateError(f"options template {template_id}: scope count {scope} of {count} fields")
        learned[TemplateKey(exporter, domain, template_id)], pos = read_template(
            data, pos, end, template_id, count, ipfix=True, scope=scope, is_options=options, version=10
        )
