"""Generic settings machinery: one YAML file plus environment overrides, loaded once.

Precedence, highest first: keyword arguments (the CLI's flags), environment
variables (nested keys joined by `__`), the YAML file, the defaults of the
settings class. `load_yaml_settings(cls, path, overrides)` is the one loader;
nothing is read at import. The settings classes themselves live with what they
configure: the server's in `server/settings.py`, the agent's in
`agent/settings.py`, each collector's and probe kind's beside its code.
Secrets are `SecretStr` and known placeholder values are refused
(`real_secret`), so an example config copied as is cannot reach production.

This module is part of the pure `core` package: it imports no other egovmon package.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "admin", "token", "xxx"})


class SettingsError(ValueError):
    """The configuration file or environment is unusable; the message names the key."""


def real_secret(value: SecretStr | None, what: str) -> SecretStr | None:
    """`value` unless it is a known placeholder such as `changeme` (then ValueError naming `what`)."""
    if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{what} is a placeholder ({value.get_secret_value()!r}); set a real secret")
    return value


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(False, description="One JSON object per log line")


class YamlFileSettings(BaseSettings):
    """Base of settings loaded by `load_yaml_settings`: overrides, then the environment, then the YAML file."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, yaml_source(settings_cls))


# The top-level mapping of the YAML file being loaded; its values are checked by the settings class.
_YAML_DATA: ContextVar[dict[str, object]] = ContextVar("egovmon_yaml_data")


class _YamlSource(PydanticBaseSettingsSource):
    """The parsed YAML file as a settings source (below the environment)."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, object]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def read_yaml_file(path: Path) -> dict[str, object]:
    """The mapping at the top of a YAML file.

    Raises:
        SettingsError: the file is missing, not YAML, or not a mapping.
    """
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"config file {path} must hold a mapping at the top level")
    return loaded


S = TypeVar("S", bound=BaseSettings)


def load_yaml_settings(cls: type[S], path: Path | None, overrides: dict[str, Any]) -> S:
    """Build settings class `cls` from a YAML file, its environment and overrides (highest first: overrides, env, file).

    `cls` is a `YamlFileSettings`.

    Raises:
        SettingsError: unreadable file or invalid value (the message names the key, never a secret).
    """
    data = read_yaml_file(path) if path is not None else {}
    reset = _YAML_DATA.set(data)
    try:
        return cls(**overrides)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc
    finally:
        _YAML_DATA.reset(reset)


def yaml_source(settings_cls: type[BaseSettings]) -> PydanticBaseSettingsSource:
    """The settings source holding the YAML file being loaded by `load_yaml_settings`."""
    return _YamlSource(settings_cls, _YAML_DATA.get({}))
