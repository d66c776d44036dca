"""The batch as it travels (JSON), validated in one pass without building model objects.

`core.models` is the documented, convenient form (agents build `Sample` objects).
This module validates the same JSON with the same constrained types into plain
dicts, which is what the server's ingest hot path needs: about a third faster
than model instances, because nothing is constructed per sample but the dicts
themselves. `tests/core/test_wire.py` holds both forms to the same verdicts.

The timestamp window is not checked here (it needs the clock); the server checks
it while encoding, where the timestamp is converted anyway.

The ingest hot path goes one step further (`fast_batch_adapter`): pydantic checks
the structure, types and sizes of the samples, and the checks that would run per
sample in Python or per string in a regex are left to the encoder, which does them
once per distinct string (`NameChecks`): names and tag values are the same batch
after batch, so each is checked once, not once per sample. Whatever the fast path
cannot vouch for is validated again by `batch_adapter`, whose verdict and message
are the answer (server/ingest/pipeline.py).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Annotated

import orjson
from pydantic import (
    AwareDatetime,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import NotRequired, TypedDict

from core.models import (
    INT64_MAX,
    MAX_ATTRIBUTES,
    MAX_FIELDS,
    MAX_OBSERVATIONS_PER_BATCH,
    MAX_SAMPLES_PER_BATCH,
    MAX_TAG_VALUE_CHARS,
    MAX_TAGS,
    NAME_PATTERN,
    TAG_VALUE_PATTERN,
    AttributeValue,
    FieldValue,
    Hostname,
    Identifier,
    IntField,
    Kind,
    Name,
    StringField,
    TagValue,
)

_FORBID = ConfigDict(extra="forbid")


@with_config(_FORBID)
class SampleRecord(TypedDict):
    """A `core.models.Sample` as a dict."""

    measurement: Name
    tags: NotRequired[Annotated[dict[Name, TagValue], Field(max_length=MAX_TAGS)]]
    fields: Annotated[dict[Name, FieldValue], Field(min_length=1, max_length=MAX_FIELDS)]
    timestamp: AwareDatetime


@with_config(_FORBID)
class ObservationRecord(TypedDict):
    """A `core.models.Observation` as a dict."""

    kind: Kind
    subject: Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=TAG_VALUE_PATTERN)]
    attributes: NotRequired[Annotated[dict[Name, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]]
    source: Kind
    observed_at: AwareDatetime


@with_config(_FORBID)
class BatchRecord(TypedDict):
    """A `core.models.Batch` as a dict."""

    batch_id: Identifier
    agent: NotRequired[Identifier | None]
    host: NotRequired[Hostname | None]
    samples: NotRequired[Annotated[list[SampleRecord], Field(max_length=MAX_SAMPLES_PER_BATCH)]]
    observations: NotRequired[Annotated[list[ObservationRecord], Field(max_length=MAX_OBSERVATIONS_PER_BATCH)]]


@cache
def batch_adapter() -> TypeAdapter[BatchRecord]:
    """The validator for a JSON batch (built on first use, then reused)."""
    return TypeAdapter(BatchRecord)


# -- the fast path of the ingest hot path ------------------------------------------------------

# Floats without core.models' Python validator that keeps out-of-range ints: the encoder sends any float
# beyond the int64 range to `batch_adapter` instead (see `FLOAT_CHECK_LIMIT`).
_FastFloat = Annotated[StrictFloat, Field(allow_inf_nan=False)]
_FastFieldValue = StrictBool | IntField | _FastFloat | StringField
FLOAT_CHECK_LIMIT = float(INT64_MAX)  # a float at least this large may have been an int beyond int64: strict check

# Timestamps as text: converted once per distinct text by `NameChecks.timestamp` (a batch holds few distinct times).
_TIMESTAMP_CHARS = 64


@with_config(_FORBID)
class FastSampleRecord(TypedDict):
    """A sample as `fast_batch_adapter` leaves it: structure, types and sizes checked; the measurement, tag keys,
    tag values and field names not yet matched against their patterns, and the timestamp still text.
    The encoder does the rest with `NameChecks`."""

    measurement: StrictStr
    tags: NotRequired[Annotated[dict[StrictStr, StrictStr], Field(max_length=MAX_TAGS)]]
    fields: Annotated[dict[StrictStr, _FastFieldValue], Field(min_length=1, max_length=MAX_FIELDS)]
    timestamp: Annotated[StrictStr, StringConstraints(max_length=_TIMESTAMP_CHARS)]


@with_config(_FORBID)
class FastBatchRecord(TypedDict):
    """A `BatchRecord` whose samples are `FastSampleRecord`s (observations fully validated)."""

    batch_id: Identifier
    agent: NotRequired[Identifier | None]
    host: NotRequired[Hostname | None]
    samples: NotRequired[Annotated[list[FastSampleRecord], Field(max_length=MAX_SAMPLES_PER_BATCH)]]
    observations: NotRequired[Annotated[list[ObservationRecord], Field(max_length=MAX_OBSERVATIONS_PER_BATCH)]]


@cache
def fast_batch_adapter() -> TypeAdapter[FastBatchRecord]:
    """The fast path's validator (built on first use, then reused)."""
    return TypeAdapter(FastBatchRecord)


@cache
def _timestamp_adapter() -> TypeAdapter[datetime]:
    return TypeAdapter(AwareDatetime)


class UncheckedInputError(ValueError):
    """A string the fast path cannot vouch for: the batch goes through `batch_adapter`, whose verdict counts."""


_NAME = re.compile(NAME_PATTERN)
_TAG_VALUE = re.compile(TAG_VALUE_PATTERN)


class NameChecks:
    """The pattern checks `FastSampleRecord` leaves out, remembered per distinct string.

    Python's `re.fullmatch` with the same patterns as pydantic's Rust regex: fullmatch refuses a trailing
    newline that `$` alone would let through (tests/core/test_wire.py holds both to the same verdicts).
    Bounded: each set is cleared when it holds `limit` strings (`clears` counts it); the strings come from
    agents' payloads.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._names: set[str] = set()
        self._tag_values: set[str] = set()
        self.clears = 0

    def name(self, text: str) -> None:
        """Raises UncheckedInputError unless `text` is a valid measurement, tag key or field name."""
        if text not in self._names:
            if _NAME.fullmatch(text) is None:
                raise UncheckedInputError(f"name {text[:200]!r}")
            self._remember(self._names, text)

    def tag_value(self, text: str) -> None:
        """Raises UncheckedInputError unless `text` is a valid tag value."""
        if text not in self._tag_values:
            if len(text) > MAX_TAG_VALUE_CHARS or _TAG_VALUE.fullmatch(text) is None:
                raise UncheckedInputError(f"tag value {text[:200]!r}")
            self._remember(self._tag_values, text)

    def series(self, measurement: str, tags: dict[str, str]) -> None:
        """Check a series' measurement, tag keys and tag values (once per new series: callers cache series)."""
        self.name(measurement)
        for key, value in tags.items():
            self.name(key)
            self.tag_value(value)

    def _remember(self, known: set[str], text: str) -> None:
        if len(known) >= self.limit:
            known.clear()
            self.clears += 1
        known.add(text)


def parse_timestamp(text: str) -> datetime:
    """A sample's timestamp text as `batch_adapter` reads it (the same JSON string validation).

    Raises:
        UncheckedInputError: not an aware date and time.
    """
    try:
        return _timestamp_adapter().validate_json(orjson.dumps(text))
    except ValidationError as exc:
        raise UncheckedInputError(f"timestamp {text[:_TIMESTAMP_CHARS]!r}") from exc
