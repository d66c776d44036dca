"""Turn validated sample records into line protocol, points and the newest value per series.

One pass over the samples does the jobs the pipeline needs, because on a
10,000-sample batch every extra pass costs milliseconds: it checks each distinct
timestamp against the accepted window, encodes the line (with the server's host
and agency tags), and keeps the newest fields per series for latest state. The
per-series work (escaping tags, building the series key) is done once per series.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.lineprotocol import LineEncoder, LineProtocolError, escape_key, format_field_value, timestamp_ns
from core.models import MAX_FUTURE, MAX_PAST, FieldValue
from core.wire import (
    FLOAT_CHECK_LIMIT,
    FastSampleRecord,
    NameChecks,
    SampleRecord,
    UncheckedInputError,
    parse_timestamp,
)
from server.history.base import EncodedBatch, Point


class TimestampWindowError(ValueError):
    """A timestamp lies outside the accepted window; the message names the sample."""


@dataclass(slots=True)
class SeriesLatest:
    """One series of a batch: its encoded head and its newest point (fields of equal timestamps merged)."""

    measurement: str
    tags: Mapping[str, str]
    ns: int
    fields: Mapping[str, FieldValue]
    head: str
    key: str


SeriesId = tuple[str | tuple[str, str], ...]  # (measurement, *sorted-as-sent tag items): one series of one batch
CacheKey = tuple[Hashable, SeriesId]  # (sender, series): whose heads, of which series


def series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """A stable text key for a series: `measurement,k1=v1,k2=v2` with tags sorted."""
    return measurement + "".join(f",{k}={tags[k]}" for k in sorted(tags))


class SeriesCache:
    """Line head and series key per (sender, measurement, tags), kept across batches.

    An agent sends the same series batch after batch, so escaping their tags
    once saves most of the per-series work. Bounded: cleared when it holds
    `limit` entries (a cheap stand-in for LRU that keeps memory flat).
    Safe to share between threads: lookups and inserts are single dict
    operations, and a lost race only costs a recomputation.
    """

    def __init__(self, limit: int = 500_000) -> None:
        self.limit = limit
        self._entries: dict[CacheKey, tuple[str, str]] = {}
        self.clears = 0  # times it was full and cleared (exported as egovmon_cache_clears_total{cache="series"})

    def get(self, key: CacheKey) -> tuple[str, str] | None:
        return self._entries.get(key)

    def put(self, key: CacheKey, value: tuple[str, str]) -> None:
        if len(self._entries) >= self.limit:
            self._entries.clear()
            self.clears += 1
        self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)


SERVER_TAGS = frozenset({"host", "agency", "site"})  # set by the server from the credential and the inventory, never by agents


def encode_batch(
    samples: Sequence[SampleRecord | FastSampleRecord],
    *,
    extra_tags: Mapping[str, str],
    now: datetime,
    with_points: bool = True,
    cache: SeriesCache | None = None,
    sender: Hashable = None,
    trusted: bool = False,
    checks: NameChecks | None = None,
) -> tuple[EncodedBatch, dict[str, SeriesLatest]]:
    """Lines (and, with `with_points`, points) for `samples`, and the newest value per series key.

    Tags named like `extra_tags` or (unless `trusted`: samples the server made) `SERVER_TAGS` are dropped from the payload's
    tags and set from `extra_tags` in the lines; points carry the payload's own
    tags only.

    With `checks`, the samples are `core.wire.FastSampleRecord`s: timestamps are text, and names and tag values
    are checked here, once per new series and once per distinct field name (a series found in `cache` was
    checked when it was put there, so `cache` must only ever be filled by calls with `checks`).

    Raises:
        TimestampWindowError: a sample's timestamp is older than MAX_PAST or newer than MAX_FUTURE.
        LineProtocolError: a value line protocol cannot carry.
        UncheckedInputError: (with `checks`) a string or value the fast path cannot vouch for.
    """
    oldest = timestamp_ns(now - MAX_PAST)
    newest = timestamp_ns(now + MAX_FUTURE)
    encoder = LineEncoder(extra_tags)
    cache = cache if cache is not None else SeriesCache()
    reserved = frozenset(extra_tags) if trusted else frozenset(extra_tags) | SERVER_TAGS
    times: dict[datetime | str, tuple[int, str]] = {}  # timestamp (datetime, or text with `checks`) → (ns, " ns" as text)
    series: dict[SeriesId, SeriesLatest] = {}
    points: list[Point] = []
    lines: list[str] = []
    append = lines.append
    empty: dict[str, str] = {}
    prefixes = _CHECKED_FIELD_PREFIXES if checks is not None else None
    encode_fields = encoder.fields
    for index, sample in enumerate(samples):
        at: datetime | str = sample["timestamp"]
        known_time = times.get(at)
        if known_time is None:
            known_time = times[at] = _checked_time(at, index, oldest, newest)
        ns, ns_text = known_time
        measurement = sample["measurement"]
        tags = sample.get("tags") or empty
        if tags and not reserved.isdisjoint(tags):
            tags = _without_reserved(measurement, tags, reserved, checks)
        fields = sample["fields"]
        key: SeriesId = (measurement, *tags.items())
        entry = series.get(key)
        if entry is None:
            head, text_key = cache.get((sender, key)) or _new_series(measurement, tags, (sender, key), encoder, cache, checks)
            entry = series[key] = SeriesLatest(measurement, tags, ns, fields, head, text_key)
        else:  # the series came earlier in this batch (rare: a batch holds a series once per snapshot)
            _keep_newest(entry, ns, fields)
        if prefixes is None:
            text = encode_fields(fields)
        else:  # `_checked_fields` written out: this runs once per sample
            parts = []
            for name, value in fields.items():
                prefix = prefixes.get(name) or _checked_prefix(name, checks)
                if type(value) is int:
                    parts.append(f"{prefix}{value}i")
                elif isinstance(value, float) and -FLOAT_CHECK_LIMIT < value < FLOAT_CHECK_LIMIT:
                    parts.append(prefix + repr(value))
                else:
                    parts.append(_checked_value(name, prefix, value))
            text = ",".join(parts)
        append(f"{entry.head} {text}{ns_text}")
        if with_points:
            points.append(Point(measurement, tags, fields, ns))
    latest = {e.key: e for e in series.values()}
    return EncodedBatch(points=points, lines=lines), latest


def _keep_newest(entry: SeriesLatest, ns: int, fields: Mapping[str, FieldValue]) -> None:
    """A later point of a series replaces its fields; one of the same time adds to them."""
    if ns > entry.ns:
        entry.ns, entry.fields = ns, fields
    elif ns == entry.ns:
        entry.fields = {**entry.fields, **fields}


def _checked_time(at: datetime | str, index: int, oldest: int, newest: int) -> tuple[int, str]:
    """(ns, " ns" as text) of a sample's timestamp (text on the fast path), within [oldest, newest]."""
    ns = timestamp_ns(parse_timestamp(at) if isinstance(at, str) else at)
    if ns < oldest or ns > newest:
        raise TimestampWindowError(
            f"samples.{index}.timestamp {at if isinstance(at, str) else at.isoformat()} is outside the accepted window "
            f"({MAX_PAST.days} days back to {int(MAX_FUTURE.total_seconds() // 60)} minutes ahead of the server clock)"
        )
    return ns, f" {ns}"


def _without_reserved(measurement: str, tags: dict[str, str], reserved: frozenset[str],
                      checks: NameChecks | None) -> dict[str, str]:  # fmt: skip
    """The payload's tags without those the server sets: host and agency come from the credential, never from
    the payload. On the fast path the dropped tags are checked too (the strict model refuses a bad one)."""
    if checks is not None:
        checks.series(measurement, tags)
    return {k: v for k, v in tags.items() if k not in reserved}


def _new_series(measurement: str, tags: dict[str, str], cache_key: CacheKey, encoder: LineEncoder, cache: SeriesCache,
                checks: NameChecks | None) -> tuple[str, str]:  # fmt: skip
    """(line head, series key) of a series not in `cache`, checked on the fast path, then put in `cache`."""
    if checks is not None:
        checks.series(measurement, tags)
    known = (encoder.head(measurement, tags), series_key(measurement, tags))
    cache.put(cache_key, known)
    return known


# `name=` per field name that passed `NameChecks.name`, shared by the fast path's encoders; bounded like
# core.lineprotocol's field-key cache (its clears are counted with it as "field_keys").
_CHECKED_FIELD_PREFIXES: dict[str, str] = {}
_CHECKED_FIELD_PREFIXES_LIMIT = 10_000
_checked_field_prefix_clears = 0


def checked_field_prefix_clears() -> int:
    """Times the fast path's field-name cache was full and cleared."""
    return _checked_field_prefix_clears


def _checked_prefix(name: str, checks: NameChecks | None) -> str:
    global _checked_field_prefix_clears
    assert checks is not None
    checks.name(name)
    prefix = escape_key(name) + "="
    if len(_CHECKED_FIELD_PREFIXES) >= _CHECKED_FIELD_PREFIXES_LIMIT:
        _CHECKED_FIELD_PREFIXES.clear()
        _checked_field_prefix_clears += 1
    _CHECKED_FIELD_PREFIXES[name] = prefix
    return prefix


def _checked_value(name: str, prefix: str, value: FieldValue) -> str:
    """`name=value` for a fast-path field that is not a plain int or float: values come as pydantic validated
    them (exact bool, int within int64, finite float, bounded str); a float beyond the int64 range may have been
    an integer literal the strict model refuses, so it goes to the strict path."""
    if type(value) is float:
        raise UncheckedInputError(f"field {name} = {value!r} may be an integer beyond int64")
    return prefix + format_field_value(value)


__all__ = [
    "LineProtocolError", "SeriesCache", "SeriesLatest", "TimestampWindowError", "UncheckedInputError", "checked_field_prefix_clears",
    "encode_batch", "series_key",
]
