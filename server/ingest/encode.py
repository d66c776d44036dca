"""Turn validated sample records into line protocol, points and the newest value per series.

One pass over the samples does the jobs the pipeline needs, because on a
10,000-sample batch every extra pass costs milliseconds: it checks each distinct
timestamp against the accepted window, encodes the line (with the server's host
and agency tags), and keeps the newest fields per series for latest state. The
per-series work (escaping tags, building the series key) is done once per series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.lineprotocol import LineEncoder, LineProtocolError, timestamp_ns
from core.models import MAX_FUTURE, MAX_PAST
from server.history.base import EncodedBatch, Point


class TimestampWindowError(ValueError):
    """A timestamp lies outside the accepted window; the message names the sample."""


@dataclass(slots=True)
class SeriesLatest:
    """One series of a batch: its encoded head and its newest point (fields of equal timestamps merged)."""

    measurement: str
    tags: Mapping[str, str]
    ns: int
    fields: Mapping[str, Any]
    head: str
    key: str


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
        self._entries: dict[tuple[Any, ...], tuple[str, str]] = {}
        self.clears = 0  # times it was full and cleared (exported as egovmon_cache_clears_total{cache="series"})

    def get(self, key: tuple[Any, ...]) -> tuple[str, str] | None:
        return self._entries.get(key)

    def put(self, key: tuple[Any, ...], value: tuple[str, str]) -> None:
        if len(self._entries) >= self.limit:
            self._entries.clear()
            self.clears += 1
        self._entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)


SERVER_TAGS = frozenset({"host", "agency", "site"})  # set by the server from the credential and the inventory, never by agents


def encode_batch(
    samples: Sequence[Mapping[str, Any]],
    *,
    extra_tags: Mapping[str, str],
    now: datetime,
    with_points: bool = True,
    cache: SeriesCache | None = None,
    sender: Any = None,
    trusted: bool = False,
) -> tuple[EncodedBatch, dict[str, SeriesLatest]]:
    """Lines (and, with `with_points`, points) for `samples`, and the newest value per series key.

    Tags named like `extra_tags` or (unless `trusted`: samples the server made) `SERVER_TAGS` are dropped from the payload's
    tags and set from `extra_tags` in the lines; points carry the payload's own
    tags only.
    Raises:
        TimestampWindowError: a sample's timestamp is older than MAX_PAST or newer than MAX_FUTURE.
        LineProtocolError: a value line protocol cannot carry.
    """
    oldest = timestamp_ns(now - MAX_PAST)
    newest = timestamp_ns(now + MAX_FUTURE)
    encoder = LineEncoder(extra_tags)
    cache = cache if cache is not None else SeriesCache()
    encode_fields = encoder.fields
    reserved = frozenset(extra_tags) if trusted else frozenset(extra_tags) | SERVER_TAGS
    seen_ns: dict[datetime, int] = {}
    series: dict[tuple[Any, ...], SeriesLatest] = {}
    points: list[Point] = []
    lines: list[str] = []
    append = lines.append
    empty: dict[str, str] = {}
    for index, sample in enumerate(samples):
        at = sample["timestamp"]
        ns = seen_ns.get(at)
        if ns is None:
            ns = timestamp_ns(at)
            if ns < oldest or ns > newest:
                raise TimestampWindowError(
                    f"samples.{index}.timestamp {at.isoformat()} is outside the accepted window "
                    f"({MAX_PAST.days} days back to {int(MAX_FUTURE.total_seconds() // 60)} minutes ahead of the server clock)"
                )
            seen_ns[at] = ns
        measurement = sample["measurement"]
        tags = sample.get("tags") or empty
        if tags and not reserved.isdisjoint(tags):
            # host and agency come from the credential, never from the payload
            tags = {k: v for k, v in tags.items() if k not in reserved}
        fields = sample["fields"]
        key = (measurement, *tags.items())
        entry = series.get(key)
        if entry is None:
            known = cache.get((sender, key))
            if known is None:
                known = (encoder.head(measurement, tags), series_key(measurement, tags))
                cache.put((sender, key), known)
            entry = series[key] = SeriesLatest(measurement, tags, ns, fields, *known)
        elif ns > entry.ns:
            entry.ns, entry.fields = ns, fields
        elif ns == entry.ns:
            entry.fields = {**entry.fields, **fields}
        append(f"{entry.head} {encode_fields(fields)} {ns}")
        if with_points:
            points.append(Point(measurement, tags, fields, ns))
    latest = {e.key: e for e in series.values()}
    return EncodedBatch(points=points, lines=lines), latest


__all__ = ["LineProtocolError", "SeriesCache", "SeriesLatest", "TimestampWindowError", "encode_batch", "series_key"]
