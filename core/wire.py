"""The batch as it travels (JSON), validated in one pass without building model objects.

`core.models` is the documented, convenient form (agents build `Sample` objects).
This module validates the same JSON with the same constrained types into plain
dicts, which is what the server's ingest hot path needs: about a third faster
than model instances, because nothing is constructed per sample but the dicts
themselves. `tests/core/test_wire.py` holds both forms to the same verdicts.

The timestamp window is not checked here (it needs the clock); the server checks
it while encoding, where the timestamp is converted anyway.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, TypeAdapter, with_config
from typing_extensions import NotRequired, TypedDict

from core.models import (
    MAX_ATTRIBUTES,
    MAX_FIELDS,
    MAX_OBSERVATIONS_PER_BATCH,
    MAX_SAMPLES_PER_BATCH,
    MAX_TAGS,
    TAG_VALUE_PATTERN,
    AttributeValue,
    FieldValue,
    Hostname,
    Identifier,
    Kind,
    Name,
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
