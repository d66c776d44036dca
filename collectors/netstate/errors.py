"""The netstate collector's errors, and the boundary where a command's JSON becomes a ParseError."""

from __future__ import annotations

import json
from collections.abc import Mapping

from core.collect import CollectError
from core.jsontypes import JsonObject, JsonValue


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


def load_json(text: str, what: str) -> JsonValue:
    """Decode a command's JSON output (`what` names the command in the error).

    Raises:
        ParseError: the text is not JSON.
    """
    try:
        value: JsonValue = json.loads(text)  # JSON text decodes to exactly these types
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what}: not JSON ({exc})") from exc
    return value


def json_objects(doc: JsonValue, what: str) -> list[JsonObject]:
    """The objects of a JSON list (iproute2 prints `{}` placeholders for filtered links: those come back empty).

    Raises:
        ParseError: `doc` is not a list, or an item is not an object.
    """
    if not isinstance(doc, list):
        raise ParseError(f"{what}: expected a JSON list")
    if not all(isinstance(item, dict) for item in doc):
        raise ParseError(f"{what}: expected a list of JSON objects")
    return [item for item in doc if isinstance(item, dict)]


def json_object(value: JsonValue, what: str) -> JsonObject:
    """`value` when it is an object; an absent or empty value is an empty object. Raises ParseError otherwise."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise ParseError(f"{what}: expected a JSON object")
    return value


def json_int(obj: Mapping[str, JsonValue], key: str, default: int | None, what: str) -> int:
    """`obj[key]` as an integer (iproute2 prints numbers, some versions as text), `default` when absent (None:
    required). Raises ParseError otherwise."""
    value = obj.get(key, default)
    if isinstance(value, (int, float, str)):
        try:
            return int(value)
        except ValueError:
            pass
    raise ParseError(f"{what}: {key} is not a number: {value!r:.100}")


def json_text(obj: Mapping[str, JsonValue], key: str, what: str) -> str:
    """`obj[key]`, which must be text. Raises ParseError when it is absent or not text."""
    value = obj.get(key)
    if not isinstance(value, str):
        raise ParseError(f"{what}: {key} missing or not text")
    return value
