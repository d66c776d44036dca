"""`alerting.receivers` of the configuration: a receiver is a discriminated union of the channels' models on `kind`.

`server.settings` takes `ReceiverSettings` from here: each channel's settings live
in its module in alerting/channels/ beside its builder and sender.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from alerting.channel import ReceiverBase
from alerting.channels import catalogue

# One receiver: the model of the channel its `kind` names.
ReceiverSettings: Any = Annotated[Union[tuple(channel.receiver for channel in catalogue().values())],
                                  Field(discriminator="kind")]

_ADAPTER: TypeAdapter[ReceiverBase] = TypeAdapter(ReceiverSettings)


def parse_receiver(data: Mapping[str, object]) -> ReceiverBase:
    """One receiver from a mapping, validated by its channel's model. Raises pydantic.ValidationError."""
    return _ADAPTER.validate_python(dict(data))
