"""server.settings (loaded by core.settings): YAML file, EGOVMON_* environment and explicit overrides, by strength."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.settings import SettingsError
from server.settings import Settings, TsdbKind, load_settings, settings_json_schema

FULL_CONFIG = """\
data_dir: /var/lib/egovmon
language: en
server:
  host: 0.0.0.0
  port: 9000
  workers: 4
  trusted_proxies: [10.0.0.1, 10.0.0.2]
tsdb:
  kind: influxdb2
  url: http://127.0.0.1:8086
  token: k9-Real-Token-f00
  org: 市政务
  bucket: metrics
  lines_per_request: 5000
log:
  level: DEBUG
  json_format: true
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No EGOVMON_* variable of the machine running the tests leaks in; relative paths land in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("EGOVMON_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "egovmon.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    settings = load_settings()

    assert settings.data_dir == Path("egovmon-data")
    assert settings.language == "zh-CN"
    assert (settings.server.host, settings.server.port, settings.server.workers) == ("127.0.0.1", 8080, 1)
    assert settings.server.max_body_bytes == 16 * 1024 * 1024
    assert settings.tsdb.kind is TsdbKind.NONE
    assert (settings.tsdb.url, settings.tsdb.token, settings.tsdb.password) == (None, None, None)
    assert (settings.log.level, settings.log.json_format) == ("INFO", False)


def test_values_from_the_file(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, FULL_CONFIG))

    assert settings.data_dir == Path("/var/lib/egovmon")
    assert settings.language == "en"
    assert settings.server.host == "0.0.0.0"
    assert settings.server.port == 9000
    assert settings.server.workers == 4
    assert settings.server.trusted_proxies == ["10.0.0.1", "10.0.0.2"]
    assert settings.tsdb.kind is TsdbKind.INFLUXDB2
    assert settings.tsdb.url == "http://127.0.0.1:8086"
    assert settings.tsdb.token is not None
    assert settings.tsdb.token.get_secret_value() == "k9-Real-Token-f00"
    assert settings.tsdb.org == "市政务"
    assert settings.tsdb.bucket == "metrics"
    assert settings.tsdb.lines_per_request == 5000
    assert (settings.log.level, settings.log.json_format) == ("DEBUG", True)


def test_secret_is_hidden_in_repr(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, FULL_CONFIG))

    assert "k9-Real-Token-f00" not in repr(settings)
    assert "k9-Real-Token-f00" not in settings.model_dump_json()
    assert str(settings.tsdb.token) == "**********"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, ""))

    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)


def test_environment_beats_the_file_and_keeps_its_siblings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOVMON_SERVER__PORT", "9090")

    settings = load_settings(write_config(tmp_path, FULL_CONFIG))

    assert settings.server.port == 9090
    assert settings.server.host == "0.0.0.0"
    assert settings.server.workers == 4


def test_environment_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOVMON_LANGUAGE", "en")
    monkeypatch.setenv("EGOVMON_TSDB__KIND", "influxdb1")
    monkeypatch.setenv("EGOVMON_TSDB__URL", "http://tsdb:8086")
    monkeypatch.setenv("EGOVMON_TSDB__PASSWORD", "Vq7-not-a-placeholder")

    settings = load_settings()

    assert settings.language == "en"
    assert settings.tsdb.kind is TsdbKind.INFLUXDB1
    assert settings.tsdb.url == "http://tsdb:8086"
    assert settings.tsdb.password is not None
    assert settings.tsdb.password.get_secret_value() == "Vq7-not-a-placeholder"


def test_overrides_beat_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOVMON_SERVER__PORT", "9090")
    monkeypatch.setenv("EGOVMON_LANGUAGE", "zh-CN")

    settings = load_settings(write_config(tmp_path, FULL_CONFIG), server={"port": 0}, language="en")

    assert settings.server.port == 0
    assert settings.language == "en"


def test_override_merges_into_the_file(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, FULL_CONFIG), server={"port": 0})

    assert settings.server.port == 0
    assert settings.server.host == "0.0.0.0"
    assert settings.server.workers == 4
    assert settings.server.trusted_proxies == ["10.0.0.1", "10.0.0.2"]
    assert settings.tsdb.url == "http://127.0.0.1:8086"


def test_file_does_not_leak_into_the_next_load(tmp_path: Path) -> None:
    load_settings(write_config(tmp_path, FULL_CONFIG))

    settings = load_settings()

    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.tsdb.kind is TsdbKind.NONE


def test_settings_without_load_settings_see_no_file() -> None:
    assert Settings().server.port == 8080


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("tsdb:\n  token: changeme\n", "tsdb.token is a placeholder ('changeme'); set a real secret"),
        ("tsdb:\n  token: CHANGEME\n", "tsdb.token is a placeholder ('CHANGEME'); set a real secret"),
        ("tsdb:\n  token: ' changeme '\n", "tsdb.token is a placeholder (' changeme '); set a real secret"),
        ("tsdb:\n  token: change-me\n", "tsdb.token is a placeholder ('change-me'); set a real secret"),
        ("tsdb:\n  token: ''\n", "tsdb.token is a placeholder (''); set a real secret"),
        ("tsdb:\n  token: token\n", "tsdb.token is a placeholder ('token'); set a real secret"),
        ("tsdb:\n  password: password\n", "tsdb.password is a placeholder ('password'); set a real secret"),
        ("tsdb:\n  password: admin\n", "tsdb.password is a placeholder ('admin'); set a real secret"),
        ("tsdb:\n  password: xxx\n", "tsdb.password is a placeholder ('xxx'); set a real secret"),
    ],
)
def test_placeholder_secrets_refused(tmp_path: Path, yaml_text: str, expected: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write_config(tmp_path, yaml_text))

    assert expected in str(caught.value)


def test_placeholder_secret_from_environment_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGOVMON_TSDB__TOKEN", "changeme")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    assert "tsdb.token is a placeholder ('changeme'); set a real secret" in str(caught.value)


@pytest.mark.parametrize("kind", ["influxdb2", "influxdb1"])
def test_tsdb_url_required_for_a_real_tsdb(tmp_path: Path, kind: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write_config(tmp_path, f"tsdb:\n  kind: {kind}\n"))

    assert f"tsdb.url is required when tsdb.kind is {kind}" in str(caught.value)


def test_tsdb_url_not_required_for_embedded_history(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, "tsdb:\n  kind: none\n"))

    assert (settings.tsdb.kind, settings.tsdb.url) == (TsdbKind.NONE, None)


def test_error_does_not_print_a_real_secret(tmp_path: Path) -> None:
    text = "tsdb:\n  kind: influxdb2\n  token: k9-Real-Token-f00\n  password: Vq7-real-password\n"

    with pytest.raises(SettingsError) as caught:
        load_settings(write_config(tmp_path, text))

    message = str(caught.value)
    assert "tsdb.url is required when tsdb.kind is influxdb2" in message
    assert "k9-Real-Token-f00" not in message
    assert "Vq7-real-password" not in message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(SettingsError) as caught:
        load_settings(path)

    assert str(caught.value) == f"cannot read config file {path}: No such file or directory"


def test_directory_instead_of_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(tmp_path)

    assert str(caught.value) == f"cannot read config file {tmp_path}: Is a directory"


@pytest.mark.parametrize("text", ["server: [\n", "server:\n  port: 1\n bad-indent: 2\n", "a: b: c\n", "\tserver: 1\n"])
def test_bad_yaml_names_the_path(tmp_path: Path, text: str) -> None:
    path = write_config(tmp_path, text)

    with pytest.raises(SettingsError) as caught:
        load_settings(path)

    assert str(caught.value).startswith(f"config file {path} is not valid YAML: ")


@pytest.mark.parametrize("text", ["- server\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write_config(tmp_path, text)

    with pytest.raises(SettingsError) as caught:
        load_settings(path)

    assert str(caught.value) == f"config file {path} must hold a mapping at the top level"


@pytest.mark.parametrize(
    ("text", "location", "message"),
    [
        ("servr:\n  port: 1\n", "servr", "Extra inputs are not permitted"),
        ("server:\n  prot: 1\n", "server.prot", "Extra inputs are not permitted"),
        ("tsdb:\n  bukket: x\n", "tsdb.bukket", "Extra inputs are not permitted"),
        ("log:\n  colour: true\n", "log.colour", "Extra inputs are not permitted"),
        ("server:\n  port: 70000\n", "server.port", "Input should be less than or equal to 65535"),
        ("server:\n  port: http\n", "server.port", "Input should be a valid integer, unable to parse string as an integer"),
        ("server:\n  workers: 0\n", "server.workers", "Input should be greater than or equal to 1"),
        ("language: fr\n", "language", "Input should be 'zh-CN' or 'en'"),
        ("log:\n  level: TRACE\n", "log.level", "Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("tsdb:\n  kind: prometheus\n", "tsdb.kind", "Input should be 'none', 'influxdb2' or 'influxdb1'"),
        ("tsdb:\n  timeout_seconds: 0\n", "tsdb.timeout_seconds", "Input should be greater than 0"),
    ],
)
def test_invalid_values_name_the_key(tmp_path: Path, text: str, location: str, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(write_config(tmp_path, text))

    assert f"\n{location}\n  {message} [" in str(caught.value)


def test_unknown_override_refused() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(servr={"port": 1})

    assert "\nservr\n  Extra inputs are not permitted [" in str(caught.value)


# -- derived values and schema --------------------------------------------------------


def test_database_url_defaults_inside_data_dir(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "state")

    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/state/egovmon.db"


def test_relative_data_dir_resolves_from_the_working_directory(tmp_path: Path) -> None:
    settings = load_settings()

    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/egovmon-data/egovmon.db"


def test_explicit_database_url_wins(tmp_path: Path) -> None:
    path = write_config(tmp_path, "server:\n  database_url: postgresql+psycopg://egovmon@db/egovmon\n")

    assert load_settings(path).database_url == "postgresql+psycopg://egovmon@db/egovmon"


def test_json_schema_describes_the_file() -> None:
    schema = json.loads(settings_json_schema())

    assert schema["title"] == "Settings"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"data_dir", "language", "timezone", "server", "tsdb", "log", "alerting"}
    server = schema["$defs"]["ServerSettings"]
    assert server["properties"]["port"]["maximum"] == 65535
    assert server["properties"]["port"]["default"] == 8080
    assert server["additionalProperties"] is False
    tsdb = schema["$defs"]["TsdbSettings"]
    assert tsdb["properties"]["token"]["anyOf"][0] == {"format": "password", "type": "string", "writeOnly": True}
    assert schema["$defs"]["TsdbKind"]["enum"] == ["none", "influxdb2", "influxdb1"]
    assert schema["$defs"]["TsdbReadApi"]["enum"] == ["influxql", "prometheus"]
    assert tsdb["properties"]["read_api"]["default"] == "influxql"
