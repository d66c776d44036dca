"""Raw JSON as it crosses the API edge: one precise alias instead of `Any`.

`JsonValue` is a `TypeAliasType`, so pydantic models can carry it too (a plain recursive alias leaves a model
"not fully defined")."""

from __future__ import annotations

from typing_extensions import TypeAliasType

JsonScalar = str | int | float | bool | None
JsonValue = TypeAliasType("JsonValue", "JsonScalar | list[JsonValue] | dict[str, JsonValue]")
JsonObject = dict[str, JsonValue]
