"""Parse NetFlow v9 and IPFIX templates and turn each into a cached numpy decode plan.

NetFlow v9: RFC 3954 §5.2 (template flowset), §6.1 (options template).
https://www.rfc-editor.org/rfc/rfc3954
IPFIX: RFC 7011 §3.4 (template records, enterprise bit), §7 (variable length),
§8.1 (withdrawal). https://www.rfc-editor.org/rfc/rfc7011
Information elements: https://www.iana.org/assignments/ipfix/ipfix.xhtml

A `Template` is parsed once and used for every data set that follows, so all
the work that does not depend on the data (which wire field lands in which
FLOW_DTYPE column, with which numpy types at which offsets) is done when it is
built. Turning data set bytes into records with a plan is `records.py`.

Which information element fills which column is the table `COLUMN_SOURCES`
(declared data, not branches): per column, elements in order of preference,
so `octetTotalCount` (85) is used only when `octetDeltaCount` (1) is absent.
"""

from __future__ import annotations

import functools
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from collectors.flow.model import FLOW_COLUMNS, FLOW_DTYPE, BadTemplateError, TruncatedError

VARIABLE_LENGTH = 65535
ENTERPRISE_BIT = 0x8000
MAX_RECORD_BYTES = 65535 - 16  # a record must fit in one IPFIX message
# Real templates carry tens of fields (Cisco's largest, about 100); one datagram can declare 16,000, which would cost
# about 5 MB once cached. More than this is malformed input.
MAX_FIELDS_PER_TEMPLATE = 1024
MEMO_MAX_FIELDS = 65_536  # fields of the memoized templates (≈350 bytes each), oldest forgotten first

# Kinds of conversion from wire bytes to a column.
UINT = "uint"  # unsigned big-endian integer of any width
IPV4 = "ipv4"  # 4 bytes → IPv4-mapped IPv6
IPV6 = "ipv6"  # 16 bytes as is
UPTIME_MS = "uptime_ms"  # sysUptime-relative milliseconds (v9 FIRST/LAST_SWITCHED)
UNIX_S = "unix_s"  # seconds since the epoch
UNIX_MS = "unix_ms"  # milliseconds since the epoch
NTP = "ntp"  # RFC 7011 §6.1.9/10 dateTimeMicro/Nanoseconds: NTP seconds since 1900 . 32-bit fraction
NTP_EPOCH_OFFSET_S = 2_208_988_800

# column → ((information element id, kind), ...) in order of preference.
COLUMN_SOURCES: dict[str, tuple[tuple[int, str], ...]] = {
    "src_addr": ((8, IPV4), (27, IPV6)),
    "dst_addr": ((12, IPV4), (28, IPV6)),
    "next_hop": ((15, IPV4), (62, IPV6), (18, IPV4), (63, IPV6)),
    "protocol": ((4, UINT),),
    "tcp_flags": ((6, UINT),),
    "tos": ((5, UINT),),
    "src_port": ((7, UINT), (180, UINT), (182, UINT)),
    "dst_port": ((11, UINT), (181, UINT), (183, UINT)),
    "src_mask": ((9, UINT), (29, UINT)),
    "dst_mask": ((13, UINT), (30, UINT)),
    "ttl_min": ((52, UINT),),
    "ttl_max": ((53, UINT),),
    "input_if": ((10, UINT), (252, UINT)),
    "output_if": ((14, UINT), (253, UINT)),
    "src_as": ((16, UINT),),
    "dst_as": ((17, UINT),),
    # 85/86 total counts, 231/298 NSEL initiator counts: fallbacks when no delta count is exported.
    "packets": ((2, UINT), (86, UINT), (298, UINT)),
    "bytes": ((1, UINT), (85, UINT), (231, UINT)),
    "start_ms": ((152, UNIX_MS), (150, UNIX_S), (154, NTP), (156, NTP), (22, UPTIME_MS)),
    "end_ms": ((153, UNIX_MS), (151, UNIX_S), (155, NTP), (157, NTP), (21, UPTIME_MS)),
    "sampling_rate": ((34, UINT), (305, UINT), (50, UINT)),
}

# Options data: information element id → key in Decoded.options dicts.
OPTION_NAMES: dict[int, str] = {
    34: "sampling_interval",
    305: "sampling_interval",
    50: "sampling_interval",  # v9 FLOW_SAMPLER_RANDOM_INTERVAL
    306: "sampling_space",
    48: "sampler_id",
    49: "sampler_mode",
    84: "sampler_name",
    302: "selector_id",
    304: "selector_algorithm",
    10: "interface_index",
    14: "output_interface_index",
    82: "interface_name",
    83: "interface_description",
    35: "sampling_algorithm",
    36: "active_timeout_seconds",
    37: "idle_timeout_seconds",
    144: "exporting_process_id",
    149: "observation_domain_id",
    160: "system_init_ms",
    130: "exporter_ipv4",
    41: "exported_messages",
    42: "exported_flows",
    40: "exported_octets",
}
# v9 options scope field types (RFC 3954 §6.1) share numbers with IEs 1-5, so they get their own names.
V9_SCOPE_NAMES: dict[int, str] = {1: "scope_system", 2: "interface_index", 3: "scope_line_card", 4: "scope_cache", 5: "scope_template"}
TEXT_OPTIONS = frozenset({82, 83, 84})


@dataclass(frozen=True, slots=True)
class TemplateField:
    """One field of a template: information element id, length in bytes (65535 = variable), enterprise number."""

    ie: int
    length: int
    enterprise: int = 0
    scope: bool = False


@dataclass(frozen=True, slots=True)
class FixedPlan:
    """How to turn a block of fixed-length records into FLOW_DTYPE rows (built once per template)."""

    record_length: int
    src_dtype: np.dtype  # wire view: FLOW column names at their record offsets, big-endian
    dst_dtype: np.dtype  # FLOW_DTYPE view of the same columns, same order
    base: np.ndarray  # one FLOW_DTYPE row with constants (ip_version, ::ffff: prefixes, sampling_rate 1)
    odd_dtype: np.dtype | None  # columns of unusual width (3, 6, >8 bytes) as raw byte subarrays
    odd_columns: tuple[str, ...]
    uptime_columns: tuple[str, ...]
    seconds_columns: tuple[str, ...]
    ntp_columns: tuple[str, ...]
    sampling_mapped: bool


@dataclass(frozen=True)
class Template:
    """A parsed (options) template. `plan` is None when it maps no flow column (options templates)."""

    template_id: int
    fields: tuple[TemplateField, ...]
    is_options: bool = False
    version: int = 9
    plan: FixedPlan | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def fixed_length(self) -> int | None:
        """Record length in bytes, or None when a field is variable-length (IPFIX only)."""
        if any(f.length == VARIABLE_LENGTH for f in self.fields) and self.version == 10:
            return None
        return sum(f.length for f in self.fields)

    @functools.cached_property
    def min_record_length(self) -> int:
        """The fewest bytes one record can take (variable-length fields count their 1-byte length prefix)."""
        return sum(1 if (f.length == VARIABLE_LENGTH and self.version == 10) else f.length for f in self.fields)


def make_template(template_id: int, fields: Sequence[TemplateField], *, is_options: bool, version: int) -> Template:
    """Validate fields and build the template with its decode plan; re-announced templates reuse the cached one.

    Exporters resend every template every few seconds (softflowd: in every packet),
    and building a plan costs tens of microseconds, so templates are memoized
    on their definition (they are immutable).

    Raises:
        BadTemplateError: a zero-length field (v9 scope fields excepted), a record of
            length 0, a flow template with no fixed-length field, or a record longer than
            any datagram can carry.
    """
    if len(fields) > MAX_FIELDS_PER_TEMPLATE:
        raise BadTemplateError(f"template {template_id}: {len(fields)} fields (more than {MAX_FIELDS_PER_TEMPLATE})")
    key = (template_id, tuple(fields), is_options, version)
    template = _MEMO.get(key)
    if template is None:
        template = _build_template(*key)
        _MEMO.put(key, template)
    return template


_MemoKey = tuple[int, tuple[TemplateField, ...], bool, int]  # template id, fields, is_options, version


class _TemplateMemo:
    """Built templates by definition, bounded in fields (not in entries: one template may have 1,000 fields);
    the oldest built is forgotten first. Safe to use from several decoder threads."""

    def __init__(self, max_fields: int) -> None:
        self._lock = threading.Lock()
        self._templates: OrderedDict[_MemoKey, Template] = OrderedDict()  # O(1) removal of the oldest
        self._fields = 0
        self.max_fields = max_fields

    def get(self, key: _MemoKey) -> Template | None:
        return self._templates.get(key)

    def put(self, key: _MemoKey, template: Template) -> None:
        with self._lock:
            if key in self._templates:
                return
            self._templates[key] = template
            self._fields += len(template.fields)
            while self._fields > self.max_fields and len(self._templates) > 1:
                _key, oldest = self._templates.popitem(last=False)
                self._fields -= len(oldest.fields)


_MEMO = _TemplateMemo(MEMO_MAX_FIELDS)


def _build_template(template_id: int, fields: tuple[TemplateField, ...], is_options: bool, version: int) -> Template:
    for f in fields:
        if f.length == 0 and not (f.scope and version == 9):
            raise BadTemplateError(f"template {template_id}: field {f.ie} has length 0")
    t = Template(template_id, fields, is_options, version)
    if t.min_record_length == 0:
        raise BadTemplateError(f"template {template_id}: record length 0")
    if t.min_record_length > MAX_RECORD_BYTES:
        raise BadTemplateError(f"template {template_id}: record length {t.min_record_length} exceeds a datagram")
    if is_options:
        return t
    projection = _fixed_projection(fields, version)
    if not sum(f.length for f in projection):
        # Only variable-length fields: nothing of a flow record has a fixed place to decode from (and a record of
        # length 0 would make every data set of it an empty buffer read as N records).
        raise BadTemplateError(f"template {template_id}: no fixed-length field")
    return Template(template_id, fields, is_options, version, _plan(projection))


@functools.lru_cache(maxsize=4096)
def _plan(projection: tuple[TemplateField, ...]) -> FixedPlan:
    """The decode plan of a field list, shared by every template with those fields: a flood of random template ids
    over the same fields then builds one plan (tens of microseconds and a few kilobytes each), not one per id."""
    return _build_plan(projection)


def _fixed_projection(fields: tuple[TemplateField, ...], version: int) -> tuple[TemplateField, ...]:
    """The fields that have a fixed length; what `repack_variable` keeps of each record."""
    if version != 10:
        return fields
    return tuple(f for f in fields if f.length != VARIABLE_LENGTH)


_ADDRESS_SIZES = {IPV4: 4, IPV6: 16}
_NATIVE_WIDTHS = (1, 2, 4, 8)  # integer widths numpy reads directly; others are decoded as raw bytes
# A field format of a numpy structured dtype spec: a scalar type, or (scalar type, (count,)) for a subarray.
_Format = np.dtype | tuple[type[np.generic] | np.dtype, tuple[int]]


def _first_offsets(fields: tuple[TemplateField, ...]) -> tuple[dict[int, tuple[int, int]], int]:
    """(standard IE → (offset, length) of its first occurrence, record length in bytes).

    Enterprise-specific and scope fields are never mapped to a column."""
    offsets: dict[int, tuple[int, int]] = {}
    offset = 0
    for f in fields:
        if f.enterprise == 0 and not f.scope and f.ie not in offsets:
            offsets[f.ie] = (offset, f.length)
        offset += f.length
    return offsets, offset


def _usable_source(
    sources: tuple[tuple[int, str], ...], offsets: dict[int, tuple[int, int]]
) -> tuple[int, int, str] | None:
    """(offset, length, kind) of the first of a column's sources the template carries in a usable size, or None.

    An address of the wrong size is not an address we can use, so the next source is tried."""
    for ie, kind in sources:
        found = offsets.get(ie)
        if found is None:
            continue
        at, length = found
        size = _ADDRESS_SIZES.get(kind)
        if size is None or length == size:
            return at, length, kind
    return None


@dataclass(slots=True)
class _PlanParts:
    """The columns of a plan as they are found, in COLUMN_SOURCES order, before they become numpy dtypes."""

    base: np.ndarray
    names: list[str] = field(default_factory=list)
    src_formats: list[_Format] = field(default_factory=list)
    src_offsets: list[int] = field(default_factory=list)
    dst_formats: list[_Format] = field(default_factory=list)
    dst_offsets: list[int] = field(default_factory=list)
    odd: list[tuple[str, int, int]] = field(default_factory=list)  # (column, offset, length)
    uptime: list[str] = field(default_factory=list)
    seconds: list[str] = field(default_factory=list)
    ntp: list[str] = field(default_factory=list)
    mapped: set[str] = field(default_factory=set)

    def add(self, column: str, at: int, length: int, kind: str) -> None:
        """Map `column` from the wire field of `length` bytes at offset `at`, converted as `kind`."""
        col_type, col_offset = FLOW_COLUMNS[column]
        size = _ADDRESS_SIZES.get(kind)
        if size is not None:
            self._add_address(column, kind, size, col_offset)
        elif length in _NATIVE_WIDTHS:
            self.src_formats.append(np.dtype(f">u{length}"))
            self.dst_formats.append(col_type)
            self.dst_offsets.append(col_offset)
        else:
            self.odd.append((column, at, length))
        if length in _NATIVE_WIDTHS or size is not None:
            self.names.append(column)
            self.src_offsets.append(at)
        self.mapped.add(column)
        if kind == UPTIME_MS:
            self.uptime.append(column)
        elif kind == UNIX_S:
            self.seconds.append(column)
        elif kind == NTP and length == 8:
            self.ntp.append(column)

    def _add_address(self, column: str, kind: str, size: int, col_offset: int) -> None:
        """An address column: raw bytes into the tail of the 16-byte column (IPv4 behind a ::ffff: prefix)."""
        self.src_formats.append((np.uint8, (size,)))
        self.dst_formats.append((np.uint8, (size,)))
        self.dst_offsets.append(col_offset + 16 - size)
        if kind == IPV4:
            self.base[column] = b"\0" * 10 + b"\xff\xff"
        if column == "src_addr" or (column == "dst_addr" and "src_addr" not in self.mapped):
            self.base["ip_version"] = 4 if kind == IPV4 else 6

    def plan(self, record_length: int) -> FixedPlan:
        """The finished plan for records of `record_length` bytes."""
        names, src_formats, src_offsets, dst_formats, dst_offsets = _merge_runs(
            self.names, self.src_formats, self.src_offsets, self.dst_formats, self.dst_offsets
        )
        src_dtype = np.dtype(
            {"names": names, "formats": src_formats, "offsets": src_offsets, "itemsize": max(record_length, 1)}
        )
        dst_dtype = np.dtype(
            {"names": names, "formats": dst_formats, "offsets": dst_offsets, "itemsize": FLOW_DTYPE.itemsize}
        )
        return FixedPlan(
            record_length=record_length,
            src_dtype=src_dtype,
            dst_dtype=dst_dtype,
            base=self.base,
            odd_dtype=self._odd_dtype(record_length),
            odd_columns=tuple(c for c, _, _ in self.odd),
            uptime_columns=tuple(self.uptime),
            seconds_columns=tuple(self.seconds),
            ntp_columns=tuple(self.ntp),
            sampling_mapped="sampling_rate" in self.mapped,
        )

    def _odd_dtype(self, record_length: int) -> np.dtype | None:
        """Raw byte views of the columns of unusual width (3, 6, more than 8 bytes), or None when there are none."""
        if not self.odd:
            return None
        return np.dtype(
            {
                "names": [c for c, _, _ in self.odd],
                "formats": [(np.uint8, (length,)) for _, _, length in self.odd],
                "offsets": [at for _, at, _ in self.odd],
                "itemsize": record_length,
            }
        )


def _build_plan(fields: tuple[TemplateField, ...]) -> FixedPlan:
    """Work out offsets and numpy types for every mapped column of a fixed-length record."""
    offsets, record_length = _first_offsets(fields)
    base = np.zeros(1, FLOW_DTYPE)
    base["sampling_rate"] = 1
    parts = _PlanParts(base)
    for column, sources in COLUMN_SOURCES.items():
        source = _usable_source(sources, offsets)
        if source is not None:
            parts.add(column, *source)
    return parts.plan(record_length)


@dataclass(slots=True)
class _Run:
    """Adjacent columns of one scalar type both on the wire and in FLOW_DTYPE, read as one subarray field."""

    name: str  # the first column's name
    src: np.dtype
    src_at: int
    dst: np.dtype
    dst_at: int
    count: int = 1

    def extended_by(self, src: np.dtype, src_at: int, dst: np.dtype, dst_at: int) -> bool:
        """Whether the column (src at src_at, dst at dst_at) continues this run; if so it is added to it."""
        follows = (
            src.shape == () and dst.shape == ()
            and self.src == src and self.dst == dst
            and src_at == self.src_at + self.count * src.itemsize
            and dst_at == self.dst_at + self.count * dst.itemsize
        )  # fmt: skip
        if follows:
            self.count += 1
        return follows

    def formats(self) -> tuple[_Format, _Format]:
        """(wire format, FLOW_DTYPE format): the scalar types, or subarrays of `count` of them."""
        if self.count == 1:
            return self.src, self.dst
        return (self.src, (self.count,)), (self.dst, (self.count,))


def _merge_runs(
    names: list[str], src_formats: list[_Format], src_offsets: list[int], dst_formats: list[_Format],
    dst_offsets: list[int],
) -> tuple[list[str], list[_Format], list[int], list[_Format], list[int]]:
    """Merge columns that are adjacent, of one type, both on the wire and in FLOW_DTYPE into subarray fields.

    Structured assignment costs about 0.3 µs per field whatever the record count,
    so v5's ports, masks, interfaces, ASes, counters and times (pairs on the wire
    and in FLOW_DTYPE) go as 6 fields instead of 12.
    """
    entries = sorted(zip(names, src_formats, src_offsets, dst_formats, dst_offsets, strict=True), key=lambda e: e[4])
    runs: list[_Run] = []
    for name, src_format, src_at, dst_format, dst_at in entries:
        src, dst = np.dtype(src_format), np.dtype(dst_format)
        if not (runs and runs[-1].extended_by(src, src_at, dst, dst_at)):
            runs.append(_Run(name, src, src_at, dst, dst_at))
    formats = [run.formats() for run in runs]
    return (
        [r.name for r in runs],
        [src for src, _ in formats],
        [r.src_at for r in runs],
        [dst for _, dst in formats],
        [r.dst_at for r in runs],
    )


_FIELD = struct.Struct(">HH")
_PEN = struct.Struct(">I")


def parse_fields(data: bytes, pos: int, end: int, count: int, *, ipfix: bool, scope: int = 0) -> tuple[list[TemplateField], int]:
    """Read `count` field specifiers at `pos`; the first `scope` are scope fields.

    Raises:
        TruncatedError: the specifiers run past `end`.
    """
    fields: list[TemplateField] = []
    for i in range(count):
        if pos + 4 > end:
            raise TruncatedError("template field specifier past the end of the set")
        ie, length = _FIELD.unpack_from(data, pos)
        pos += 4
        enterprise = 0
        if ipfix and ie & ENTERPRISE_BIT:
            if pos + 4 > end:
                raise TruncatedError("enterprise number past the end of the set")
            (enterprise,) = _PEN.unpack_from(data, pos)
            pos += 4
            ie &= ~ENTERPRISE_BIT
        fields.append(TemplateField(ie, length, enterprise, i < scope))
    return fields, pos


_SEEN_MAX = 4096
_seen: dict[tuple[int, bytes, bool, int, bool, int], Template] = {}


def read_template(
    data: bytes, pos: int, end: int, template_id: int, count: int, *, ipfix: bool, scope: int, is_options: bool, version: int
) -> tuple[Template, int]:
    """Parse the `count` field specifiers at `pos` into a template; return it and the position after them.

    Exporters resend their templates every few seconds (softflowd in every
    datagram), so a template whose specifiers are byte-for-byte one seen before
    is looked up, not parsed: parsing dominated the decoding of small datagrams.
    Only specifiers without enterprise numbers (exactly 4 bytes each) are remembered.

    Raises:
        TruncatedError: the specifiers run past `end`.
        BadTemplateError: see `make_template`.
    """
    raw = data[pos : pos + 4 * count]
    key = (template_id, raw, ipfix, scope, is_options, version)
    template = _seen.get(key)
    if template is not None:
        return template, pos + 4 * count
    fields, after = parse_fields(data, pos, end, count, ipfix=ipfix, scope=scope)
    template = make_template(template_id, fields, is_options=is_options, version=version)
    if after == pos + 4 * count:
        if len(_seen) >= _SEEN_MAX:
            _seen.clear()
        _seen[key] = template
    return template, after
