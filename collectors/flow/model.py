"""What the flow decoders produce: flow records as one numpy structured array per datagram.

Every wire format (NetFlow v5, v9, IPFIX) is decoded into the same columns, so
aggregation is one vectorized code path. Addresses are 16 bytes: IPv6 as is,
IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d), with `ip_version` saying which.
Counters are as exported; `sampling_rate` (1 when unsampled or unknown) is kept
so aggregation can scale packets and bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # records and templates import this module
    from collectors.flow.records import FixedBlock
    from collectors.flow.templates import Template

FLOW_DTYPE = np.dtype(
    [
        ("src_addr", "S16"),
        ("dst_addr", "S16"),
        ("next_hop", "S16"),
        ("ip_version", "u1"),
        ("protocol", "u1"),
        ("tcp_flags", "u1"),
        ("tos", "u1"),
        ("src_port", "u2"),
        ("dst_port", "u2"),
        ("src_mask", "u1"),
        ("dst_mask", "u1"),
        ("ttl_min", "u1"),  # 0 when not exported
        ("ttl_max", "u1"),
        ("input_if", "u4"),
        ("output_if", "u4"),
        ("src_as", "u4"),
        ("dst_as", "u4"),
        ("packets", "u8"),
        ("bytes", "u8"),
        ("start_ms", "i8"),  # Unix milliseconds; 0 when not exported
        ("end_ms", "i8"),
        ("sampling_rate", "u4"),
    ]
)


def _columns(dtype: np.dtype[np.void]) -> MappingProxyType[str, tuple[np.dtype[Any], int]]:
    """Each column of a structured dtype: its dtype and byte offset in a record."""
    if dtype.fields is None:
        raise TypeError(f"{dtype} is not a structured dtype")
    return MappingProxyType({name: (spec[0], spec[1]) for name, spec in dtype.fields.items()})


FLOW_COLUMNS = _columns(FLOW_DTYPE)

# One options-data record (RFC 7011 §3.4.2.2, RFC 3954 §6.1), its fields by name (records.OPTION_NAMES,
# else `ie_<id>`): integers for up to 8 bytes, text for the string IEs, hex text for longer values.
OptionsRecord = dict[str, int | str]


@dataclass(frozen=True)
class TemplateKey:
    """Templates are scoped by exporter address, observation domain (IPFIX) or source id (v9), and template id."""

    exporter: str
    domain: int
    template_id: int


@dataclass(frozen=True, slots=True)
class ExporterContext:
    """What an exporter's options data said about one observation domain, applied to its later flows.

    `sampling_interval`: the one interval its sampler options announce (1 when none
    or when several samplers announce different ones: records cannot be told apart).
    `system_init_ms`: systemInitTimeMilliseconds (IPFIX IE 160), which turns
    flowStart/EndSysUpTime into absolute times.
    """

    sampling_interval: int = 1
    system_init_ms: int | None = None


NO_CONTEXT = ExporterContext()


@dataclass(frozen=True)
class Decoded:
    """The result of decoding one datagram.

    `flows`: FLOW_DTYPE records. `options`: options-data records as dicts
    (sampling rate, interface names...), not flows. `templates`: templates
    (and withdrawals, mapped to None) learned from this datagram, for the
    caller to apply to its cache. `skipped_sets`: data sets whose template is
    unknown (counted, not an error). `blocks`: with `defer=True`, the flow data
    sets not yet decoded (`records.FixedBlock`s, for the caller to decode in
    one pass with those of other datagrams); `flows` is then empty.
    """

    version: int
    exporter: str
    domain: int
    flows: np.ndarray
    options: tuple[OptionsRecord, ...] = ()
    templates: dict[TemplateKey, Template | None] = field(default_factory=dict)
    skipped_sets: int = 0
    sequence: int | None = None
    blocks: tuple[FixedBlock, ...] = ()

    @property
    def record_count(self) -> int:
        """Flow records in this datagram, decoded or deferred."""
        return len(self.flows) + sum(block.record_count for block in self.blocks)


class DecodeError(ValueError):
    """Root of flow decoding errors: the datagram is malformed and was dropped."""


class TruncatedError(DecodeError):
    """A header, set or record runs past the end of the datagram."""


class UnknownVersionError(DecodeError):
    """Not NetFlow v5, v9 or IPFIX."""


class BadTemplateError(DecodeError):
    """A template with zero, absurd or overflowing field lengths."""
