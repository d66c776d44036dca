"""The server's settings: one YAML file plus `EGOVMON_*` environment overrides, loaded once.

Precedence, highest first: keyword arguments (the CLI's flags), environment
variables (`EGOVMON_SERVER__PORT=9090`, nested keys joined by `__`), the YAML
file, the defaults below. `load_settings(path)` is the only entry point; nothing
is read at import. Secrets are `SecretStr` and known placeholder values are
refused, so an example config copied as is cannot reach production. The generic
loader is `core/settings.py`; each notification channel's receiver settings live
beside its sender (`alerting/receivers.py`). Pure pydantic: importing this
module loads none of the server stack (FastAPI, SQLAlchemy), so the CLI of an
agent-only install can import it.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from alerting.receivers import ReceiverSettings
from core.settings import LogSettings, YamlFileSettings, load_yaml_settings, real_secret


class TsdbKind(StrEnum):
    """Where history goes."""

    NONE = "none"  # bounded history in the embedded database
    INFLUXDB2 = "influxdb2"  # InfluxDB 2.x/3.x or VictoriaMetrics: /api/v2/write (server/history/influx2.py)
    INFLUXDB1 = "influxdb1"  # InfluxDB 1.x: /write


class TsdbReadApi(StrEnum):
    """How the console reads history back from the TSDB (server/history/read.py)."""

    INFLUXQL = "influxql"  # /query: InfluxDB 1.x, and 2.x/3.x through the v1 compatibility API
    PROMETHEUS = "prometheus"  # /api/v1/query_range: VictoriaMetrics (which answers no InfluxQL)


class TsdbSettings(BaseModel):
    """The time-series database for history."""

    model_config = ConfigDict(extra="forbid")

    kind: TsdbKind = Field(TsdbKind.NONE, description="none (embedded history), influxdb2 or influxdb1")
    url: str | None = Field(None, description="Base URL, e.g. http://127.0.0.1:8086")
    token: SecretStr | None = Field(None, description="InfluxDB 2/3 API token (influxdb2)")
    org: str = Field("egovmon", description="InfluxDB 2 organisation (influxdb2)")
    bucket: str = Field("egovmon", description="InfluxDB 2 bucket (influxdb2)")
    database: str = Field("egovmon", description="InfluxDB 1.x database (influxdb1)")
    username: str | None = Field(None, description="InfluxDB 1.x user (influxdb1)")
    password: SecretStr | None = Field(None, description="InfluxDB 1.x password (influxdb1)")
    timeout_seconds: float = Field(10.0, gt=0, le=300, description="One write request's timeout")
    lines_per_request: int = Field(10_000, ge=100, le=1_000_000, description="Lines per write request")
    spool_max_bytes: int = Field(1 << 30, ge=1 << 20, description="On-disk spool used while the TSDB is down")
    read_api: TsdbReadApi = Field(TsdbReadApi.INFLUXQL, description="How the console reads charts back: influxql "
                                  "(InfluxDB 1.x/2.x/3.x) or prometheus (VictoriaMetrics)")

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr | None) -> SecretStr | None:
        return real_secret(v, "tsdb.token")

    @field_validator("password")
    @classmethod
    def _password(cls, v: SecretStr | None) -> SecretStr | None:
        return real_secret(v, "tsdb.password")

    @model_validator(mode="after")
    def _url_needed(self) -> TsdbSettings:
        if self.kind is not TsdbKind.NONE and not self.url:
            raise ValueError(f"tsdb.url is required when tsdb.kind is {self.kind.value}")
        return self


class ServerSettings(BaseModel):
    """The central server."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="TCP port to listen on (0: any free port)")
    workers: int = Field(1, ge=1, le=64, description="Server processes (uvicorn workers)")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the state database; default: SQLite file in data_dir"
    )
    max_body_bytes: int = Field(16 << 20, ge=1024, description="Largest accepted request body, as sent")
    max_decompressed_bytes: int = Field(128 << 20, ge=1024, description="Largest gzip-inflated body")
    ingest_max_inflations: int = Field(
        2, ge=1, le=64,
        description="Large ingest bodies inflated and parsed at once per process (each may hold up to "
        "max_decompressed_bytes); the others wait their turn",
    )
    history_retention_hours: float = Field(24, gt=0, description="Embedded history kept (tsdb.kind none)")
    # 2,000 agents (31 points every 15 s) write 14.9 million points an hour, 357 million in 24 h; compacted into
    # hourly chunks a point takes about 23 bytes on disk (bench/history_chunks.py), so the default holds 24 h of
    # 2,000 agents in about 9 GB. Before chunks it took 240 bytes and 5,000,000 points held 20 minutes of them.
    history_max_points: int = Field(400_000_000, ge=1000, description="Embedded history cap in points (about 23 bytes each on disk)")
    observation_retention_hours: float = Field(72, gt=0, description="Raw observations kept for inventory")
    batch_id_retention_hours: float = Field(168, gt=0, description="How long a batch id is remembered")
    ingest_max_in_flight: int = Field(
        128,
        ge=1,
        description="Ingest requests a process works on at once (about half a second of work at one process's capacity); "
        "past it, 503 with Retry-After (load shedding)",
    )
    ingest_retry_after_seconds: int = Field(5, ge=1, le=600, description="Retry-After of a shed ingest request")
    storage_retry_after_seconds: int = Field(
        30, ge=1, le=3600, description="Retry-After of an ingest request refused because the disk is full or the database locked"
    )
    ingest_max_group: int = Field(256, ge=1, description="Batches stored together in one transaction at most (group commit)")
    ingest_reconcile_queue: int = Field(
        10_000, ge=1, description="Observation batches waiting for the inventory at most; beyond, counted and dropped"
    )
    credential_check_seconds: float = Field(
        1.0, gt=0, le=60, description="How often a process checks the database for revoked agent credentials"
    )
    trusted_proxies: list[str] = Field(default_factory=list, description="Proxies whose X-Forwarded-For is believed")
    agent_bundle_dir: Path | None = Field(
        None, description="Where `egovmon agent bundle build --output` put the offline agent bundles served at "
        "/agent/bundle/<arch>; default: agent-bundles in data_dir",
    )
    replicated: bool = Field(
        False,
        description="This server is one of several replicas (separate machines behind a load balancer) sharing one "
        "PostgreSQL state database: alert evaluation is then done by the one holder of the evaluation lease, from the "
        "shared database, and notifications are sent once from the shared outbox. Needs a PostgreSQL database_url",
    )

    @model_validator(mode="after")
    def _replicas_share_a_server_database(self) -> ServerSettings:
        if self.replicated and not (self.database_url or "").startswith("postgresql"):
            raise ValueError("server.replicated needs a PostgreSQL database_url shared by every replica "
                             "(a SQLite file cannot be shared between machines)")
        return self


# Routing, inhibition and maintenance windows are configured here rather than in the pure `alerting` package:
# `alerting.route` works on its own frozen values (Route, Inhibition, MaintenanceWindow), and only the server
# turns these settings into them (server/alerting/outbox.py, engine.py). Receivers differ: each channel's
# settings live beside its sender, so they come from `alerting.receivers`.
class RouteSettings(BaseModel):
    """A node of the routing tree (Alertmanager-like)."""

    model_config = ConfigDict(extra="forbid")

    receiver: str
    match: list[str] = Field(default_factory=list, description='Label matchers: severity=critical, agency=~"health|police"')
    group_by: list[str] = Field(default_factory=lambda: ["alertname", "agency"])
    group_wait_seconds: float = Field(30, ge=0, description="A new group waits this long for more alerts before its first message")
    group_interval_seconds: float = Field(300, ge=0, description="Changes to a group are sent at most this often")
    continue_: bool = Field(False, alias="continue")
    repeat_interval_seconds: float = Field(4 * 3600, gt=0)
    escalate_after_seconds: float | None = Field(None, gt=0, description="Critical and unacknowledged this long: also to escalate_to")
    escalate_to: str | None = None
    routes: list[RouteSettings] = Field(default_factory=list)


class InhibitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: list[str]
    target: list[str]
    equal: list[str] = Field(default_factory=list)


class MaintenanceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    match: list[str] = Field(default_factory=list)
    every: Literal["daily", "weekly", "monthly"]
    days: list[int] = Field(default_factory=list, description="weekly: 0=Monday..6; monthly: days of the month")
    start: str = Field(pattern=r"^\d{2}:\d{2}$", description="Local start time HH:MM")
    duration_minutes: float = Field(gt=0, le=7 * 24 * 60)
    timezone: str = "Asia/Shanghai"


class AlertingSettings(BaseModel):
    """Rules, receivers and routing of alerts."""

    model_config = ConfigDict(extra="forbid")

    rules_files: list[Path] = Field(
        default_factory=list,
        description="Rule files added to the built-in default pack (a rule with a default rule's alert name replaces it)",
    )
    default_rules: bool = Field(True, description="false: only rules_files are evaluated, the built-in default pack is left out")
    notification_retention_hours: float = Field(
        7 * 24, gt=0, description="Sent and failed notifications are kept this long in the outbox (shown per alert), then deleted",
    )
    evaluation_interval_seconds: float = Field(15, gt=0, le=3600)
    nodata_after_seconds: float = Field(300, gt=0, description="A series silent this long: its firing alerts lack data")
    dispatch_interval_seconds: float = Field(2, gt=0, le=3600, description="How often the outbox is delivered")
    external_url: str = Field("", description="The console URL put into notifications")
    receivers: list[ReceiverSettings] = Field(default_factory=list)
    route: RouteSettings | None = Field(None, description="The routing tree; none: alerts are kept but not sent")
    inhibit: list[InhibitSettings] = Field(default_factory=list)
    maintenance: list[MaintenanceSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_rules(self) -> AlertingSettings:
        if not self.default_rules and not self.rules_files:
            raise ValueError("alerting.default_rules is false but no rules_files are given: nothing would ever alert")
        return self


class Settings(YamlFileSettings):
    """All of egovmon's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="EGOVMON_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        # A model-level error (tsdb.url missing) would otherwise print the whole
        # tsdb mapping, token and password included, into SettingsError and the log.
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(Path("egovmon-data"), description="Where state, spools and the initial token live")
    language: Literal["zh-CN", "en"] = Field("zh-CN", description="Default language of user-facing texts")
    timezone: str = Field("Asia/Shanghai", max_length=64, description="The zone the console shows times in (IANA name)")
    server: ServerSettings = Field(default_factory=ServerSettings)
    tsdb: TsdbSettings = Field(default_factory=TsdbSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError on a path-like name
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from exc
        return value

    @property
    def database_url(self) -> str:
        """The state database URL, defaulting to a SQLite file in data_dir."""
        if self.server.database_url:
            return self.server.database_url
        return f"sqlite:///{(self.data_dir / 'egovmon.db').resolve()}"


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load the server's settings from a YAML file (optional), the environment and explicit overrides.

    `overrides` use the same nesting as the file (`server={"port": 0}`) and win
    over everything, environment included.

    Raises:
        SettingsError: the file is missing or not YAML, or a value is invalid.
    """
    return load_yaml_settings(Settings, path, overrides)


def settings_json_schema() -> str:
    """The JSON schema of the configuration file, as indented JSON text."""
    return json.dumps(Settings.model_json_schema(), indent=2, ensure_ascii=False)
