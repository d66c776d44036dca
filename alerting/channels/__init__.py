"""The catalogue of notification channels: every module of this package declares one as `CHANNEL = Channel(...)`.

Adding a channel is one new module here (its receiver settings, its builder, its
sender) and its test; the configuration schema and the outbox's build and
delivery pick it up with no other change (tests/alerting/test_channels.py checks
every module of the package). The modules are imported when the catalogue is
first asked for, not at import.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import typing
from collections.abc import Mapping

from alerting.channel import Channel, ReceiverBase


class CatalogueError(Exception):
    """A module of `alerting.channels` does not declare a usable channel (a programming error, found at start)."""


@functools.cache
def catalogue() -> Mapping[str, Channel[ReceiverBase]]:
    """Every channel by name, in name order. Raises CatalogueError for a module without a proper CHANNEL."""
    channels: dict[str, Channel[ReceiverBase]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        channel = getattr(importlib.import_module(f"{__name__}.{info.name}"), "CHANNEL", None)
        if not isinstance(channel, Channel):
            raise CatalogueError(f"alerting.channels.{info.name} has no CHANNEL = Channel(...)")
        if typing.get_args(channel.receiver.model_fields["kind"].annotation) != (channel.name,):
            raise CatalogueError(f"alerting.channels.{info.name}: kind must be Literal[{channel.name!r}]")
        if channel.name in channels:
            raise CatalogueError(f"channel {channel.name!r} is declared twice")
        channels[channel.name] = channel
    return channels
