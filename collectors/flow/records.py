"""Turn the bytes of NetFlow/IPFIX data sets into FLOW_DTYPE records (and options records into dicts).

A data set of fixed-length records is one `np.frombuffer` plus one structured
assignment with the template's `FixedPlan` (`decode_fixed`). That costs a few
microseconds of numpy call overhead whatever the record count, so the sets are
not decoded one by one: `FixedSets` collects them as `FixedBlock`s — within one
datagram (H3C sends one record per set) or across every datagram that the
listener drained from its queue — and decodes all blocks of one plan in one
pass. Variable-length IPFIX records are re-packed record by record into the
template's fixed-length projection first (RFC 7011 §7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from collectors.flow.model import (
    FLOW_COLUMNS,
    FLOW_DTYPE,
    NO_CONTEXT,
    Decoded,
    ExporterContext,
    OptionsRecord,
    TemplateKey,
    TruncatedError,
)
from collectors.flow.templates import (
    NTP_EPOCH_OFFSET_S,
    OPTION_NAMES,
    TEXT_OPTIONS,
    V9_SCOPE_NAMES,
    VARIABLE_LENGTH,
    FixedPlan,
    Template,
)

_WRAP = 2**32
_HALF_WRAP = 2**31
_TIMES = np.dtype(
    {
        "names": ["times"],
        "formats": [(np.int64, (2,))],
        "offsets": [FLOW_COLUMNS["start_ms"][1]],
        "itemsize": FLOW_DTYPE.itemsize,
    }
)
assert FLOW_COLUMNS["end_ms"][1] == FLOW_COLUMNS["start_ms"][1] + 8

Anchor = int | np.ndarray  # one value for every record, or one per record


def decode_fixed(
    plan: FixedPlan,
    data: bytes,
    offset: int,
    count: int,
    unix_ms: Anchor,
    uptime_ms: Anchor | None,
    sampling: Anchor = 1,
) -> np.ndarray:
    """Decode `count` fixed-length records starting at `offset` of `data` into FLOW_DTYPE rows.

    `unix_ms` and `uptime_ms` anchor sysUptime-relative times: the export time in
    Unix ms and the exporter's sysUptime then (v5/v9 header). `uptime_ms` None
    (IPFIX without systemInitTimeMilliseconds) leaves such times 0. `sampling` is
    the sampling interval from outside the record (v5 header, options data), used
    when the record does not carry one. Each is a scalar or one value per record.
    """
    out = plan.base.repeat(count)
    if count == 0:
        return out
    src = np.frombuffer(data, plan.src_dtype, count=count, offset=offset)
    out.view(plan.dst_dtype)[...] = src
    if plan.odd_dtype is not None:
        raw = np.frombuffer(data, plan.odd_dtype, count=count, offset=offset)
        for column in plan.odd_columns:
            block = raw[column][:, -8:].astype(np.uint64)
            value = np.zeros(count, np.uint64)
            for k in range(block.shape[1]):
                value = (value << np.uint64(8)) | block[:, k]
            out[column] = value
    for column in plan.ntp_columns:
        ntp = out[column].view(np.uint64)
        seconds = (ntp >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET_S
        out[column] = seconds * 1000 + ((ntp & np.uint64(0xFFFFFFFF)) * np.uint64(1000) >> np.uint64(32)).astype(np.int64)
    for column in plan.seconds_columns:
        out[column] *= 1000
    _anchor_uptime(plan, out, unix_ms, uptime_ms)
    if plan.sampling_mapped:
        rate = out["sampling_rate"]
        rate[rate == 0] = 1  # an exported interval of 0 means unsampled
    elif not isinstance(sampling, int) or sampling > 1:
        out["sampling_rate"] = sampling
    return out


def _anchor_uptime(plan: FixedPlan, out: np.ndarray, unix_ms: Anchor, uptime_ms: Anchor | None) -> None:
    """Turn sysUptime-relative milliseconds into Unix ms.

    sysUptime is 32-bit milliseconds (RFC 3954 §5.1): the offset from it is taken
    modulo 2**32, so a stamp from before a wrap (0xFFFFFFFF at uptime 3000) is
    3001 ms in the past.
    """
    if not plan.uptime_columns:
        return
    if uptime_ms is None:
        for column in plan.uptime_columns:
            out[column] = 0
        return
    shift = _HALF_WRAP - np.asarray(uptime_ms, np.int64)
    back = np.asarray(unix_ms, np.int64) - _HALF_WRAP
    if plan.uptime_columns == ("start_ms", "end_ms"):
        times = out.view(_TIMES)["times"]  # start_ms and end_ms are adjacent: one pass for both
        if shift.ndim:
            shift, back = shift[:, None], back[:, None]
        times += shift
        times &= _WRAP - 1
        times += back
        return
    for column in plan.uptime_columns:
        values = out[column]
        values += shift
        values &= _WRAP - 1
        values += back


class FixedBlock(NamedTuple):
    """`record_count` fixed-length records at `pos` of `data`, with the anchors of their datagram."""

    plan: FixedPlan
    data: bytes
    pos: int
    record_count: int
    unix_ms: int
    uptime_ms: int | None
    sampling: int = 1


class FixedSets:
    """Collects fixed-length data sets (of one datagram or of many) so that each plan decodes in one pass.

    Blocks are grouped by (`group`, plan): the listener groups by exporter so
    that each exporter's records come out in their own array. Within a group,
    records come out grouped by template, in the order each was first seen.
    """

    __slots__ = ("_pending", "failed")

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], list[FixedBlock]] = {}
        self.failed: list[tuple[str, Exception]] = []  # (group, error) of groups `decode` had to leave out

    def add(self, block: FixedBlock, group: str = "") -> None:
        if block.record_count:
            key = (group, id(block.plan))
            blocks = self._pending.get(key)
            if blocks is None:
                self._pending[key] = [block]
            else:
                blocks.append(block)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def decode(self) -> list[tuple[str, np.ndarray]]:
        """(group, FLOW_DTYPE records), one entry per group and plan; the collected blocks are cleared."""
        out = []
        for (group, _), blocks in self._pending.items():
            try:
                out.append((group, _decode_blocks(blocks)))
            except Exception as exc:  # noqa: BLE001 - a decoder bug on one group's hostile input spares the others
                self.failed.append((group, exc))
        self._pending.clear()
        return out


def _decode_blocks(blocks: list[FixedBlock]) -> np.ndarray:
    """The records of blocks of one plan, decoded in one pass (two when only some know their sysUptime)."""
    first = blocks[0]
    plan = first.plan
    if len(blocks) == 1:
        return decode_fixed(plan, first.data, first.pos, first.record_count, first.unix_ms, first.uptime_ms, first.sampling)
    anchored = [b for b in blocks if b.uptime_ms is not None]
    if anchored and len(anchored) < len(blocks):  # IPFIX before and after its system init time was known
        return concatenate_flows([_decode_blocks(anchored), _decode_blocks([b for b in blocks if b.uptime_ms is None])])
    length = plan.record_length
    packed = b"".join([memoryview(b.data)[b.pos : b.pos + b.record_count * length] for b in blocks])
    unix, uptime, sampling = _anchors(blocks)
    return decode_fixed(plan, packed, 0, len(packed) // length, unix, uptime, sampling)


def _anchors(blocks: list[FixedBlock]) -> tuple[Anchor, Anchor | None, Anchor]:
    """(unix_ms, uptime_ms, sampling) of blocks that all know their sysUptime or all do not: the first block's
    when every block shares them, else one value per record."""
    first = blocks[0]
    unix, uptime, sampling = first.unix_ms, first.uptime_ms, first.sampling
    if all(b.unix_ms == unix and b.uptime_ms == uptime and b.sampling == sampling for b in blocks):
        return unix, uptime, sampling
    counts = [b.record_count for b in blocks]
    per_record_uptime = None if uptime is None else np.repeat(np.array([b.uptime_ms for b in blocks], np.int64), counts)
    return (
        np.repeat(np.array([b.unix_ms for b in blocks], np.int64), counts),
        per_record_uptime,
        np.repeat(np.array([b.sampling for b in blocks], np.uint32), counts),
    )


_NO_FLOWS = np.empty(0, FLOW_DTYPE)


def settle(blocks: list[FixedBlock], defer: bool) -> tuple[np.ndarray, tuple[FixedBlock, ...]]:
    """(flows, blocks) for a `Decoded`: the blocks decoded now, or kept for the caller when `defer`."""
    if defer:
        return _NO_FLOWS, tuple(blocks)
    if not blocks:
        return _NO_FLOWS, ()
    sets = FixedSets()
    for block in blocks:
        sets.add(block)
    return concatenate_flows([flows for _, flows in sets.decode()]), ()


def concatenate_flows(parts: list[np.ndarray]) -> np.ndarray:
    """One FLOW_DTYPE array from several (no copy when there is one)."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return np.empty(0, FLOW_DTYPE)
    # np.concatenate promotes structured dtypes in Python (tens of µs); slice assignment does not.
    out = np.empty(sum(len(p) for p in parts), FLOW_DTYPE)
    start = 0
    for part in parts:
        out[start : start + len(part)] = part
        start += len(part)
    return out
def read_variable_record(template: Template, data: bytes, pos: int, end: int) -> tuple[list[bytes], int]:
    """Split one IPFIX record at `pos` into its field values (RFC 7011 §7); return them and the next position.

    Raises:
        TruncatedError: the record runs past `end`.
    """
    values: list[bytes] = []
    for f in template.fields:
        length = f.length
        if length == VARIABLE_LENGTH and template.version == 10:
            if pos >= end:
                raise TruncatedError("variable-length field prefix past the end of the set")
            length = data[pos]
            pos += 1
            if length == 255:
                if pos + 2 > end:
                    raise TruncatedError("variable-length field prefix past the end of the set")
                length = (data[pos] << 8) | data[pos + 1]
                pos += 2
        if pos + length > end:
            raise TruncatedError("field runs past the end of the set")
        values.append(data[pos : pos + length])
        pos += length
    return values, pos


def repack_variable(template: Template, data: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """Re-pack the variable-length records of one set into fixed-length records of the template's plan.

    Only fixed-length fields are kept (no column is filled from a variable-length
    field). Returns the packed bytes and the record count; trailing bytes too short
    for a record are padding.

    Raises:
        TruncatedError: a record's declared field length runs past the set.
    """
    keep = [f.length != VARIABLE_LENGTH for f in template.fields]
    minimum = template.min_record_length
    chunks: list[bytes] = []
    count = 0
    while end - pos >= minimum:
        values, pos = read_variable_record(template, data, pos, end)
        chunks.extend(v for v, k in zip(values, keep, strict=True) if k)
        count += 1
    return b"".join(chunks), count


def option_record(template: Template, values: list[bytes]) -> OptionsRecord:
    """Name the known fields of one options record (see OPTION_NAMES); unknown standard IEs become `ie_<id>`."""
    record: OptionsRecord = {}
    for f, value in zip(template.fields, values, strict=True):
        if f.enterprise:
            continue
        if f.scope and template.version == 9:
            name = V9_SCOPE_NAMES.get(f.ie, f"scope_{f.ie}")
        else:
            name = OPTION_NAMES.get(f.ie, f"ie_{f.ie}")
        if name in record:
            continue
        if f.ie in TEXT_OPTIONS and not (f.scope and template.version == 9):
            record[name] = value.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif len(value) <= 8:
            record[name] = int.from_bytes(value, "big")
        else:
            record[name] = value.hex()
    return record


class DataSets:
    """The data sets of one v9 or IPFIX datagram, read set by set as its decoder walks it.

    `learned` is what the datagram's template sets taught (withdrawals map to None); a data set's template is looked
    up there first, then in the caller's `templates`. Collects what the data sets hold: flow blocks (`blocks`, kept
    only when they have records), options records (`options`), and the count of sets whose template is unknown or
    withdrawn (`skipped`, not an error).

    `contexts` (domain → what its options data said) supplies the sampling interval and, for IPFIX, the system
    init time that anchors sysUptime-relative times (RFC 7011 has no sysUptime in its header).
    """

    __slots__ = ("_context", "_templates", "_unix_ms", "_uptime_ms", "blocks", "learned", "options", "skipped")

    def __init__(
        self, templates: Mapping[TemplateKey, Template], contexts: Mapping[int, ExporterContext] | None, domain: int,
        unix_ms: int, uptime_ms: int | None,
    ) -> None:
        self._templates = templates
        self._context = contexts.get(domain, NO_CONTEXT) if contexts else NO_CONTEXT
        self._unix_ms = unix_ms
        self._uptime_ms = uptime_ms
        self.learned: dict[TemplateKey, Template | None] = {}
        self.blocks: list[FixedBlock] = []
        self.options: list[OptionsRecord] = []
        self.skipped = 0

    def read(self, key: TemplateKey, data: bytes, pos: int, end: int) -> None:
        """Read the data set of template `key` whose body runs from `pos` to `end`.

        Trailing bytes too short for one more record are padding (RFC 3954 §5.3, RFC 7011 §3.3.1).

        Raises:
            TruncatedError: a variable-length field runs past the set.
        """
        learned = self.learned
        template = learned[key] if key in learned else self._templates.get(key)
        if template is None:
            self.skipped += 1
            return
        if template.is_options:
            self.options.extend(_option_records(template, data, pos, end))
            return
        plan = template.plan
        assert plan is not None
        context = self._context
        uptime_ms = self._uptime_ms
        if uptime_ms is None and context.system_init_ms is not None:
            uptime_ms = (self._unix_ms - context.system_init_ms) % _WRAP
        if template.fixed_length is None:
            packed, count = repack_variable(template, data, pos, end)
            block = FixedBlock(plan, packed, 0, count, self._unix_ms, uptime_ms, context.sampling_interval)
        else:
            count = (end - pos) // plan.record_length
            block = FixedBlock(plan, data, pos, count, self._unix_ms, uptime_ms, context.sampling_interval)
        if count:
            self.blocks.append(block)

    def decoded(self, version: int, exporter: str, domain: int, sequence: int, *, defer: bool) -> Decoded:
        """The datagram's `Decoded`: its flows decoded now, or left in `blocks` when `defer`."""
        flows, deferred = settle(self.blocks, defer)
        return Decoded(
            version=version,
            exporter=exporter,
            domain=domain,
            flows=flows,
            options=tuple(self.options),
            templates=self.learned,  # made for this datagram, handed over
            skipped_sets=self.skipped,
            sequence=sequence,
            blocks=deferred,
        )


def _option_records(template: Template, data: bytes, pos: int, end: int) -> list[OptionsRecord]:
    """The options records of one options data set.

    Raises:
        TruncatedError: a variable-length field runs past the set.
    """
    records: list[OptionsRecord] = []
    minimum = template.min_record_length
    while end - pos >= minimum:
        values, pos = read_variable_record(template, data, pos, end)
        records.append(option_record(template, values))
    return records
