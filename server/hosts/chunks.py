"""The embedded history's row format: the points of one host's measurement from one minute (as ingested) or one
hour (compacted), in one row.

A row per point (the first layout) cost about 240 bytes a point with its indexes: 1.68 MiB per agent-hour,
so 2,000 agents filled a 5,000,000-point cap in 20 minutes. A chunk names each series (key and tags) and each
field once and lists the points as (series, time, values in field order); zlib then removes what repeats.

Format version 1: one byte 0x01, then zlib of the JSON document
`{"s": [[series key, tags], ...], "f": [field name, ...], "p": [[series index, ns, [value or null, ...]], ...]}`
(null: the point has no such field; a field value is never null). Readers keep every version they ever wrote.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from core.jsontypes import JsonObject, JsonValue

CHUNK_NS: Final = 60 * 1_000_000_000  # ingest writes a chunk per minute (ts // CHUNK_NS)
HOUR_NS: Final = 3600 * 1_000_000_000  # compaction merges a finished hour's chunks into one (ts // HOUR_NS)
MAX_SPAN_NS: Final = HOUR_NS  # no chunk reaches further than this from its oldest point: readers widen by it
_VERSION_1: Final = b"\x01"
_LEVEL: Final = 6


@dataclass(frozen=True, slots=True)
class StoredPoint:
    """One point of the embedded history as read back."""

    series_key: str
    tags: JsonObject
    fields: JsonObject
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """One row to write: a host's points of one measurement within one minute."""

    host_id: int
    measurement: str
    ts_ns: int
    ts_max_ns: int
    points: int
    payload: bytes


def encode(points: Sequence[tuple[str, Mapping[str, JsonValue], Mapping[str, JsonValue], int]]) -> bytes:
    """(series key, tags, fields, ns) points → a version-1 payload."""
    series: dict[str, int] = {}
    names: dict[str, int] = {}
    listed: list[list[JsonValue]] = []
    for key, tags, fields, _ in points:
        if key not in series:
            series[key] = len(series)
            listed.append([key, dict(tags)])
        for name in fields:
            names.setdefault(name, len(names))
    rows: list[list[JsonValue]] = []
    for key, _, fields, ns in points:
        values: list[JsonValue] = [None] * len(names)
        for name, value in fields.items():
            values[names[name]] = value
        rows.append([series[key], ns, values])
    document = orjson.dumps({"s": listed, "f": list(names), "p": rows})
    return _VERSION_1 + zlib.compress(document, _LEVEL)


def decode(payload: bytes) -> Iterator[StoredPoint]:
    """The points of a payload, in the order written."""
    if payload[:1] != _VERSION_1:
        raise ValueError(f"unknown history chunk format {payload[:1]!r}")
    document = orjson.loads(zlib.decompress(payload[1:]))
    series = [(key, tags) for key, tags in document["s"]]
    names = document["f"]
    for index, ns, values in document["p"]:
        key, tags = series[index]
        yield StoredPoint(key, tags, {name: value for name, value in zip(names, values, strict=True) if value is not None}, ns)


def chunks_of(rows: Iterable[tuple[int, str, str, Mapping[str, JsonValue], Mapping[str, JsonValue], int]],
              span_ns: int = CHUNK_NS) -> list[Chunk]:  # fmt: skip
    """(host id, measurement, series key, tags, fields, ns) points → one chunk per host, measurement and `span_ns`
    (a minute, or an hour at most), its points in time order."""
    if not 0 < span_ns <= MAX_SPAN_NS or MAX_SPAN_NS % span_ns:
        raise ValueError(f"a chunk spans a divisor of {MAX_SPAN_NS} ns, not {span_ns}")
    groups: dict[tuple[int, str, int], list[tuple[str, Mapping[str, JsonValue], Mapping[str, JsonValue], int]]] = {}
    for host_id, measurement, key, tags, fields, ns in rows:
        groups.setdefault((host_id, measurement, ns // span_ns), []).append((key, tags, fields, ns))
    out = []
    for (host_id, measurement, _), points in groups.items():
        points.sort(key=lambda p: p[3])
        out.append(Chunk(host_id, measurement, points[0][3], points[-1][3], len(points), encode(points)))
    return out
