"""Shared aliases for genuinely raw JSON values (request bodies, JSON columns,
tags/fields maps whose keys are data). Use a real type for known shapes."""

JsonScalar = str | int | float | bool | None
JsonValue = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject = dict[str, JsonValue]
