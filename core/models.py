"""The data model every part of egovmon speaks: samples, observations, batches.

A `Sample` is one point of a time series, shaped like an InfluxDB line-protocol
line (measurement, tags, fields, timestamp). An `Observation` is a fact about the
network (an address on an interface, a route, a neighbour, a DHCP offer) that the
inventory reconciles against what was declared. A `Batch` is what an agent ships.

The limits below are the server's first line of defence: everything an agent
sends passes through these models once, so a value that would corrupt line
protocol (a newline in a tag), explode cardinality (hundreds of tags) or land in
1970 is refused here with a message naming the field.

Timestamps are checked against a window around "now"; the clock is injected
through the validation context (`{"now": datetime}`) so tests and the server
decide what now is. Without a context the window is not applied.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

# -- limits ---------------------------------------------------------------------------

MAX_TAGS: Final = 32
MAX_FIELDS: Final = 64
MAX_TAG_VALUE_CHARS: Final = 256
MAX_STRING_FIELD_CHARS: Final = 4096
MAX_SAMPLES_PER_BATCH: Final = 50_000
MAX_OBSERVATIONS_PER_BATCH: Final = 10_000
MAX_ATTRIBUTES: Final = 64
MAX_PAST: Final = timedelta(days=7)
MAX_FUTURE: Final = timedelta(minutes=10)
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1

# Names: what InfluxQL, PromQL (after VictoriaMetrics joins measurement and field
# with "_") and Grafana legends all accept without quoting surprises.
NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Tag values: printable text without control characters (line protocol cannot
# carry a newline in a tag, and tabs and NULs only cause grief downstream), not
# ending in a backslash (which InfluxDB 1.x and 2.x unescape differently before
# the comma or space that follows it).
TAG_VALUE_PATTERN: Final = r"^[^\x00-\x1f\x7f]{0,255}[^\x00-\x1f\x7f\\]$"
KIND_PATTERN: Final = r"^[a-z][a-z0-9_.]{0,63}$"
ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# An RFC 1123 host name or an IPv4 address (what agents enrol with; IPv6 literals,
# which start or end with a colon, are not host names here).
HOSTNAME_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9_.:-]{0,251}[A-Za-z0-9])?$"

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
TagValue = Annotated[str, StringConstraints(pattern=TAG_VALUE_PATTERN)]
Kind = Annotated[str, StringConstraints(pattern=KIND_PATTERN)]
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Hostname = Annotated[str, StringConstraints(pattern=HOSTNAME_PATTERN)]
StringField = Annotated[StrictStr, StringConstraints(max_length=MAX_STRING_FIELD_CHARS)]
IntField = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]


def _not_an_int(value: Any) -> Any:
    """Keep ints out of the float member: StrictFloat takes an int, so 2**63 would pass as 9.2e18.

    Floats pass through; the only int that gets here is one the int member refused
    (beyond int64). Taking it as a float would drop its low digits and turn an int
    series into a float one, which InfluxDB refuses as a field type conflict.
    """
    if type(value) is int:
        raise ValueError(f"integer {value} is outside the int64 range [{INT64_MIN}, {INT64_MAX}]")
    return value


FloatField = Annotated[StrictFloat, Field(allow_inf_nan=False), BeforeValidator(_not_an_int)]
# Order matters only for documentation: pydantic's smart union picks the exact type,
# so JSON 5 stays an int, 5.0 a float, true a bool.
FieldValue = StrictBool | IntField | FloatField | StringField
AttributeScalar = StrictBool | IntField | FloatField | Annotated[StrictStr, StringConstraints(max_length=1024)]
AttributeValue = AttributeScalar | Annotated[list[AttributeScalar], Field(max_length=256)]

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def _check_time(value: datetime, info: ValidationInfo, what: str) -> None:
    """Reject a timestamp outside [now - MAX_PAST, now + MAX_FUTURE] when a clock is given."""
    context = info.context
    if not context or "now" not in context:
        return
    now: datetime = context["now"]
    if value < now - MAX_PAST:
        raise ValueError(f"{what} {value.isoformat()} is more than {MAX_PAST.days} days in the past")
    if value > now + MAX_FUTURE:
        raise ValueError(f"{what} {value.isoformat()} is more than {int(MAX_FUTURE.total_seconds() // 60)} minutes in the future")


class Sample(BaseModel):
    """One point of one series: a measurement, its tags, one or more fields, a UTC time.

    Counters travel raw (an int that only grows until it wraps or resets); rates are
    computed by queries and rules, never by the sender.
    """

    model_config = _STRICT

    measurement: Name
    tags: Annotated[dict[Name, TagValue], Field(max_length=MAX_TAGS)] = {}
    fields: Annotated[dict[Name, FieldValue], Field(min_length=1, max_length=MAX_FIELDS)]
    timestamp: AwareDatetime

    @model_validator(mode="after")
    def _in_window(self, info: ValidationInfo) -> Sample:
        _check_time(self.timestamp, info, "timestamp")
        return self


class Observation(BaseModel):
    """A fact about the network seen by one source at one time.

    `kind` says what sort of fact (`interface_address`, `route`, `arp_entry`,
    `dhcp_offer`, ...), `subject` what it is about (a prefix, an address, an
    interface), `attributes` the details, `source` who saw it (`netstate`,
    `snmp`, `flow`, `probe.dhcp`, ...).
    """

    model_config = _STRICT

    kind: Kind
    subject: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=TAG_VALUE_PATTERN)]
    attributes: Annotated[dict[Name, AttributeValue], Field(max_length=MAX_ATTRIBUTES)] = {}
    source: Kind
    observed_at: AwareDatetime

    @model_validator(mode="after")
    def _in_window(self, info: ValidationInfo) -> Observation:
        _check_time(self.observed_at, info, "observed_at")
        return self


class Batch(BaseModel):
    """What an agent ships in one request.

    `batch_id` makes re-sending safe: the server stores a batch id once and
    acknowledges a repeat without storing it again. `host` is the sender's claim;
    the server takes host and agency from the credential and refuses a mismatch.
    """

    model_config = _STRICT

    batch_id: Identifier
    agent: Identifier | None = None
    host: Hostname | None = None
    samples: Annotated[list[Sample], Field(max_length=MAX_SAMPLES_PER_BATCH)] = []
    observations: Annotated[list[Observation], Field(max_length=MAX_OBSERVATIONS_PER_BATCH)] = []


def validation_context(now: datetime | None = None) -> dict[str, datetime]:
    """The context that turns on the timestamp window, with `now` defaulting to the wall clock."""
    return {"now": now if now is not None else datetime.now(UTC)}

