"""Decode one NetFlow v5/v9 or IPFIX datagram, keep templates per exporter, read capture files.

`decode` dispatches on the version field to `v5`, `v9` and `ipfix` (each links
its spec). `TemplateCache` is the caller-owned state those decoders never
mutate: the listener (or a test) applies each `Decoded` to it.
`read_datagrams` reads classic libpcap files (https://wiki.wireshark.org/Development/LibpcapFileFormat)
or raw concatenated export datagrams such as the logstash `.dat` fixtures; it
is for tests and offline replay, not the receive path.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from collectors.flow.ipfix import decode_ipfix
from collectors.flow.model import (
    NO_CONTEXT,
    Decoded,
    DecodeError,
    ExporterContext,
    OptionsRecord,
    TemplateKey,
    TruncatedError,
    UnknownVersionError,
)
from collectors.flow.templates import Template
from collectors.flow.v5 import HEADER as V5_HEADER
from collectors.flow.v5 import RECORD_BYTES as V5_RECORD_BYTES
from collectors.flow.v5 import decode_v5
from collectors.flow.v9 import decode_v9


def decode(
    datagram: bytes,
    exporter: str,
    templates: Mapping[TemplateKey, Template],
    *,
    contexts: Mapping[int, ExporterContext] | None = None,
    defer: bool = False,
) -> Decoded:
    """Decode one export datagram from `exporter` with the templates (and options context) known so far.

    `defer` leaves the flow records in `Decoded.blocks`, undecoded (see `batch.BatchDecoder`).

    Raises:
        DecodeError: (or a subclass) for anything malformed; nothing else escapes.
    """
    if len(datagram) < 2:
        raise TruncatedError(f"datagram of {len(datagram)} bytes has no version field")
    version = (datagram[0] << 8) | datagram[1]
    if version == 9:
        return decode_v9(datagram, exporter, templates, contexts=contexts, defer=defer)
    if version == 10:
        return decode_ipfix(datagram, exporter, templates, contexts=contexts, defer=defer)
    if version == 5:
        return decode_v5(datagram, exporter, defer=defer)
    raise UnknownVersionError(f"unsupported export version {version}")


MAX_SAMPLING_INTERVALS = 16  # distinct intervals remembered per domain
# Bounds against template floods (issue 14: 200 random domain ids per datagram made 10^6 cached templates): a real
# exporter announces tens of templates in a few observation domains; past these the oldest are forgotten, counted.
MAX_TEMPLATES_PER_EXPORTER = 4096
MAX_DOMAINS_PER_EXPORTER = 256
# A cached template costs about 350 bytes per field (its fields and decode plan), so the caches are bounded in fields
# too: 4,096 templates of 1,024 fields would be 1.4 GB. 32,768 fields ≈ 11 MB per exporter.
MAX_FIELDS_PER_EXPORTER = 32_768


class TemplateCache:
    """The templates of one or more exporters, and what their options data said; updated only by `apply`.

    Not thread-safe: one cache belongs to one decoding thread. Key the cache by
    exporter: `contexts()` is per observation domain / source id only.
    """

    def __init__(self, *, max_templates: int = MAX_TEMPLATES_PER_EXPORTER, max_domains: int = MAX_DOMAINS_PER_EXPORTER,
                 max_fields: int = MAX_FIELDS_PER_EXPORTER) -> None:
        self._templates: OrderedDict[TemplateKey, Template] = OrderedDict()  # oldest learned first, O(1) to drop
        self.fields = 0  # fields of the cached templates: what they cost in memory
        self.max_fields = max_fields
        self._intervals: dict[int, set[int]] = {}
        self._contexts: dict[int, ExporterContext] = {}
        # Read-only live views, made once: `decode` is handed them for every datagram.
        self._templates_view = MappingProxyType(self._templates)
        self._contexts_view = MappingProxyType(self._contexts)
        self.max_templates = max_templates
        self.max_domains = max_domains
        self.evicted = 0  # templates and domain contexts forgotten to stay within the bounds

    def get(self, key: TemplateKey) -> Template | None:
        """The template for `key`, or None if never learned or withdrawn."""
        return self._templates.get(key)

    def apply(self, decoded: Decoded) -> None:
        """Add the templates learned from `decoded` and drop those it withdrew (mapped to None)."""
        templates = self._templates
        for key, template in decoded.templates.items():
            if template is None:
                self._withdraw(key)
            elif key in templates:
                self.fields += len(template.fields) - len(templates[key].fields)
                templates[key] = template  # a re-announcement (every few seconds): no reordering, no cost
            else:
                self._add(key, template)
        if decoded.options:
            if decoded.domain not in self._contexts and len(self._contexts) >= self.max_domains:
                self._forget_oldest_domain()
            self._learn(decoded.domain, decoded.options)

    def _withdraw(self, key: TemplateKey) -> None:
        withdrawn = self._templates.pop(key, None)
        if withdrawn is not None:
            self.fields -= len(withdrawn.fields)

    def _add(self, key: TemplateKey, template: Template) -> None:
        """Learn a new template, first forgetting the oldest ones until it fits `max_templates` and `max_fields`."""
        templates = self._templates
        while templates and (
            len(templates) >= self.max_templates or self.fields + len(template.fields) > self.max_fields
        ):
            self.forget_oldest()
        templates[key] = template
        self.fields += len(template.fields)

    def _forget_oldest_domain(self) -> None:
        """Forget the context of the domain learned first (the domain bound was reached); counted in `evicted`."""
        oldest = next(iter(self._contexts))
        del self._contexts[oldest]
        self._intervals.pop(oldest, None)
        self.evicted += 1

    def forget_oldest(self) -> None:
        """Forget the oldest learned template (a bound was reached); counted in `evicted`."""
        _key, oldest = self._templates.popitem(last=False)
        self.fields -= len(oldest.fields)
        self.evicted += 1

    def _learn(self, domain: int, options: Sequence[OptionsRecord]) -> None:
        """Sampling intervals and system init time from options records (RFC 7270 §4.1, RFC 3954 §8)."""
        intervals = self._intervals.setdefault(domain, set())
        init_ms = self._contexts.get(domain, NO_CONTEXT).system_init_ms
        for record in options:
            interval = record.get("sampling_interval")
            if isinstance(interval, int) and interval > 0 and len(intervals) < MAX_SAMPLING_INTERVALS:
                intervals.add(interval)
            init = record.get("system_init_ms")
            if isinstance(init, int) and init > 0:
                init_ms = init
        # Several samplers with different intervals: records do not say which one sampled them.
        sampling = next(iter(intervals)) if len(intervals) == 1 else 1
        self._contexts[domain] = ExporterContext(sampling_interval=sampling, system_init_ms=init_ms)

    def contexts(self) -> Mapping[int, ExporterContext]:
        """A read-only live view, domain → context, to pass to `decode`."""
        return self._contexts_view

    def mapping(self) -> Mapping[TemplateKey, Template]:
        """A read-only live view to pass to `decode`."""
        return self._templates_view

    def __len__(self) -> int:
        return len(self._templates)


# Capture files ---------------------------------------------------------------------------------

_PCAP_MAGIC = {
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",  # nanosecond timestamps
    b"\x4d\x3c\xb2\xa1": "<",
}
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (101, 12, 14)
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
_VLAN_TYPES = (0x8100, 0x88A8, 0x9100)
RAW_FILE_EXPORTER = "0.0.0.0"


def read_datagrams(path: Path | str, *, exporter: str = RAW_FILE_EXPORTER) -> Iterator[tuple[str, bytes]]:
    """Yield (exporter address, UDP payload) from a pcap, or split a raw file of export datagrams.

    In a pcap, the exporter is the IP source address; frames that are not UDP over
    IPv4/IPv6 are skipped, and checksums are not checked. A raw file (no pcap magic)
    is split by headers: v5 by 24+48*count, IPFIX by its length field, and v9, which
    has no length field, is one datagram; `exporter` names its source.

    Raises:
        DecodeError: a truncated pcap, or raw data that is not NetFlow/IPFIX.
    """
    data = Path(path).read_bytes()
    order = _PCAP_MAGIC.get(data[:4])
    if order is None:
        for payload in split_raw(data):
            yield exporter, payload
        return
    if len(data) < 24:
        raise TruncatedError("pcap global header truncated")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    record = struct.Struct(order + "IIII")
    pos = 24
    while pos < len(data):
        if pos + record.size > len(data):
            raise TruncatedError("pcap record header truncated")
        _, _, caplen, _ = record.unpack_from(data, pos)
        pos += record.size
        frame = data[pos : pos + caplen]
        if len(frame) < caplen:
            raise TruncatedError("pcap record truncated")
        pos += caplen
        found = _udp_payload(frame, linktype)
        if found is not None:
            yield found


# Bytes before the IP packet in a frame of each link type whose header has a fixed length.
_FIXED_LINK_HEADERS = {LINKTYPE_LINUX_SLL: 16, LINKTYPE_LINUX_SLL2: 20, LINKTYPE_IPV4: 0, LINKTYPE_IPV6: 0}
_FIXED_LINK_HEADERS.update(dict.fromkeys(LINKTYPE_RAW, 0))


def _ethernet_payload(frame: bytes) -> bytes:
    """What follows the Ethernet header (and any 802.1Q/802.1ad VLAN tags) of a frame."""
    if len(frame) < 14:
        return b""
    pos = 12
    (ethertype,) = struct.unpack_from(">H", frame, pos)
    while ethertype in _VLAN_TYPES and len(frame) >= pos + 6:
        pos += 4
        (ethertype,) = struct.unpack_from(">H", frame, pos)
    return frame[pos + 2 :]


def _ip_packet(frame: bytes, linktype: int) -> bytes | None:
    """The IP packet of one captured frame, or None for a link type we do not read or a frame too short for it."""
    if linktype == LINKTYPE_ETHERNET:
        return _ethernet_payload(frame)
    header = _FIXED_LINK_HEADERS.get(linktype)
    if header is None or len(frame) < header:
        return None
    return frame[header:]


def _ipv4_udp(packet: bytes) -> tuple[str, bytes] | None:
    """(source address, UDP datagram) of an IPv4 packet, or None if it is not an unfragmented UDP one."""
    if len(packet) < 20:
        return None
    header = (packet[0] & 0x0F) * 4
    flags_fragment = (packet[6] << 8) | packet[7]
    if packet[9] != 17 or flags_fragment & 0x3FFF or len(packet) < header + 8:
        return None
    return str(ipaddress.IPv4Address(packet[12:16])), packet[header:]


def _ipv6_udp(packet: bytes) -> tuple[str, bytes] | None:
    """(source address, UDP datagram) of an IPv6 packet whose next header is UDP (extension headers are not
    followed), or None."""
    if len(packet) < 48 or packet[6] != 17:
        return None
    return str(ipaddress.IPv6Address(packet[8:24])), packet[40:]


_IP_READERS = {4: _ipv4_udp, 6: _ipv6_udp}


def _udp_payload(frame: bytes, linktype: int) -> tuple[str, bytes] | None:
    """Source address and UDP payload of one captured frame, or None if it is not unfragmented UDP."""
    packet = _ip_packet(frame, linktype)
    if not packet:
        return None
    reader = _IP_READERS.get(packet[0] >> 4)
    found = reader(packet) if reader is not None else None
    if found is None:
        return None
    source, udp = found
    length = (udp[4] << 8) | udp[5]
    end = length if 8 <= length <= len(udp) else len(udp)
    return source, udp[8:end]


def split_raw(data: bytes) -> Iterator[bytes]:
    """Split concatenated export datagrams by their headers (v9: the rest of the data is one datagram).

    Raises:
        TruncatedError: a header or a declared length runs past the data.
        UnknownVersionError: a version other than 5, 9 or 10.
    """
    pos = 0
    while pos < len(data):
        if len(data) - pos < 4:
            raise TruncatedError("trailing bytes shorter than a header")
        version, second = struct.unpack_from(">HH", data, pos)
        if version == 5:
            size = V5_HEADER.size + second * V5_RECORD_BYTES
        elif version == 10:
            size = second
            if size < 16:
                raise DecodeError(f"IPFIX message length {size}")
        elif version == 9:
            size = len(data) - pos
        else:
            raise UnknownVersionError(f"raw datagram of version {version} at byte {pos}")
        if pos + size > len(data):
            raise TruncatedError(f"datagram at byte {pos} declares {size} bytes, {len(data) - pos} left")
        yield data[pos : pos + size]
        pos += size
