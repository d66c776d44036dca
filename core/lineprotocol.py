"""Encode samples as InfluxDB line protocol, nanosecond precision.

Follows the escaping rules of the line-protocol reference
(https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/#special-characters):

- measurement: comma and space are escaped with a backslash;
- tag keys, tag values and field keys: comma, equals sign and space;
- string field values: double quote and backslash, inside double quotes;
- a backslash elsewhere is written as is (the parser only treats it as an escape
  before one of the characters above); a trailing backslash in a tag or key is
  refused, because it would escape the separator after it;
- integers carry the `i` suffix, booleans are `true`/`false`, floats use the
  shortest round-trip repr (`1e-05` is valid line protocol);
- tags are written sorted by key, as InfluxDB recommends for write performance.

Line protocol has no way to carry a newline in a measurement, tag or field key or
tag value, so those raise `LineProtocolError` (the `Sample` model already refuses
them; this guard is for direct callers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from core.models import Sample

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ "})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_STRING = str.maketrans({'"': '\\"', "\\": "\\\\"})


class LineProtocolError(ValueError):
    """A value cannot be written as line protocol."""


def _no_newline(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise LineProtocolError(f"{what} {text!r} contains a newline, which line protocol cannot carry")
    return text


def escape_measurement(name: str) -> str:
    """Escape a measurement name (commas and spaces)."""
    return _no_newline(name, "measurement").translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key (commas, equals signs and spaces).

    Raises:
        LineProtocolError: empty, a newline, or a trailing backslash (InfluxDB 1.x and 2.x
            read a backslash before the following separator differently).
    """
    if not text:
        raise LineProtocolError("tag keys, tag values and field keys cannot be empty")
    if text.endswith("\\"):
        raise LineProtocolError(f"tag or field {text!r} ends with a backslash")
    return _no_newline(text, "tag or field").translate(_KEY)


def format_field_value(value: bool | int | float | str) -> str:
    """Format one field value: `true`, `42i`, `0.5`, `"text"`."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field value {value!r} is not finite")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.translate(_STRING) + '"'
    raise LineProtocolError(f"field value {value!r} has unsupported type {type(value).__name__}")


def timestamp_ns(at: datetime) -> int:
    """Nanoseconds since the Unix epoch for an aware datetime (exact, no float rounding)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def encode_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, bool | int | float | str],
    ns: int,
) -> str:
    """One line of line protocol; `ns` is the timestamp in nanoseconds since the epoch.

    Raises:
        LineProtocolError: no fields, or a value line protocol cannot carry.
    """
    if not fields:
        raise LineProtocolError(f"measurement {measurement!r} has no fields")
    head = escape_measurement(measurement)
    if tags:
        head += "".join(f",{escape_key(k)}={escape_key(tags[k])}" for k in sorted(tags))
    body = ",".join(f"{escape_key(k)}={format_field_value(v)}" for k, v in fields.items())
    return f"{head} {body} {ns}"


_FIELD_KEYS: dict[str, str] = {}  # escaped `name=` per field name, shared by every encoder (few distinct names)
_FIELD_KEYS_LIMIT = 10_000  # cleared past this: the names come from agents' payloads
_field_keys_clears = 0


def field_keys_clears() -> int:
    """Times the shared field-key cache was cleared because it was full (the server exports it in /metrics: a
    steady rise means payloads carry ever new field names)."""
    return _field_keys_clears


def _field_prefix(name: str) -> str:
    global _field_keys_clears
    prefix = _FIELD_KEYS.get(name)
    if prefix is None:
        prefix = escape_key(name) + "="
        if len(_FIELD_KEYS) >= _FIELD_KEYS_LIMIT:
            _FIELD_KEYS.clear()
            _field_keys_clears += 1
        _FIELD_KEYS[name] = prefix
    return prefix


class LineEncoder:
    """Encodes many lines, caching the escaped series head and field keys it has seen.

    A batch usually holds many points of few series, so the tag part of a line is
    escaped once per distinct (measurement, tags) and reused. `extra_tags` (the
    server's enrichment: host, agency) override same-named tags of every line.
    One encoder per batch: the caches grow with the distinct series it sees.
    """

    __slots__ = ("_extra", "_heads")

    def __init__(self, extra_tags: Mapping[str, str] | None = None) -> None:
        self._extra = dict(extra_tags or {})
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def head(self, measurement: str, tags: Mapping[str, str]) -> str:
        """The escaped `measurement,tag=value,...` part, tags sorted, extra tags applied."""
        merged = {**tags, **self._extra} if self._extra else tags
        return escape_measurement(measurement) + "".join(
            f",{escape_key(k)}={escape_key(merged[k])}" for k in sorted(merged)
        )

    def fields(self, fields: Mapping[str, bool | int | float | str]) -> str:
        """The field set `k=v,...`; raises LineProtocolError when empty or not encodable."""
        if not fields:
            raise LineProtocolError("a line needs at least one field")
        keys = _FIELD_KEYS
        parts = []
        for name, value in fields.items():
            prefix = keys.get(name)
            if prefix is None:
                prefix = _field_prefix(name)
            # exact types: a numpy float64 (a float subclass) or a bool (an int subclass) goes to the general case
            if type(value) is float and math.isfinite(value):
                parts.append(prefix + repr(value))
            elif type(value) is int:
                parts.append(f"{prefix}{value}i")
            else:
                parts.append(prefix + format_field_value(value))
        return ",".join(parts)

    def line(self, measurement: str, tags: Mapping[str, str], fields: Mapping[str, bool | int | float | str], ns: int) -> str:
        """One line; raises LineProtocolError like `encode_line`."""
        key = (measurement, tuple(tags.items()))
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = self.head(measurement, tags)
        return f"{head} {self.fields(fields)} {ns}"


def encode_sample(sample: Sample) -> str:
    """One `Sample` as one line."""
    return encode_line(sample.measurement, sample.tags, sample.fields, timestamp_ns(sample.timestamp))


def encode_samples(samples: Iterable[Sample], extra_tags: Mapping[str, str] | None = None) -> list[str]:
    """Lines for many samples; `extra_tags` override same-named tags of every sample."""
    encoder = LineEncoder(extra_tags)
    return [encoder.line(s.measurement, s.tags, s.fields, timestamp_ns(s.timestamp)) for s in samples]
