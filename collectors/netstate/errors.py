"""The netstate collector's errors, and the boundary where a command's JSON becomes a ParseError."""

from __future__ import annotations

import json
from typing import Any

from core.collect import CollectError


class NetstateError(CollectError):
    """Root of this collector's failures."""


class UnsupportedTargetError(NetstateError):
    """netstate observes the host it runs on; a target with an address is a configuration error."""


class CommandFailedError(NetstateError):
    """A required command (iproute2) exited non-zero or printed what it should not."""


class ParseError(NetstateError):
    """Command output or a /proc file was not in the expected format."""


class WatchError(NetstateError):
    """The rtnetlink socket for `changes()` could not be opened."""


def load_json(text: str, what: str) -> Any:
    """Decode a command's JSON output (`what` names the command in the error).

    Raises:
        ParseError: the text is not JSON.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what}: not JSON ({exc})") from exc
