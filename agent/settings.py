"""The agent's settings: one YAML file plus `EGOVMON_AGENT_*` environment overrides.

An agent host has its own file (`egovmon agent install` writes one). Nested keys
in the environment are joined by `__`: `EGOVMON_AGENT_SHIPPER__TIMEOUT_SECONDS=5`.
The agent composes the collectors, so it composes their settings too: each
collector's section lives beside the collector (`collectors/settings.py`,
`collectors/flow/settings.py`, `collectors/snmp/settings.py`, `probes/settings.py`);
the schedules, the shipper and the local metrics endpoint are the agent's own.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from collectors.flow.settings import FlowSettings
from collectors.settings import BackupJob
from collectors.snmp.settings import SnmpSettings
from core.models import HOSTNAME_PATTERN
from core.settings import LogSettings, YamlFileSettings, load_yaml_settings
from probes.settings import ProbesSettings


class ScheduleSettings(BaseModel):
    """When one collector runs."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Run this collector")
    interval_seconds: float = Field(15, gt=0, le=86_400, description="Time between runs")
    jitter_seconds: float = Field(1, ge=0, le=300, description="Random delay added to each run, spreads load")
    timeout_seconds: float = Field(10, gt=0, le=3600, description="A run that takes longer is abandoned and reported")


class CollectorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: ScheduleSettings = Field(default_factory=ScheduleSettings)
    netstate: ScheduleSettings = Field(
        default_factory=lambda: ScheduleSettings(interval_seconds=300),
        description="Runs at once when the kernel reports a link, address, route or forwarding change; "
        "the interval is the safety net for what netlink does not announce (sockets, NAT rules)",
    )
    backup: ScheduleSettings = Field(default_factory=lambda: ScheduleSettings(interval_seconds=60, timeout_seconds=120))
    flow: ScheduleSettings = Field(
        default_factory=lambda: ScheduleSettings(enabled=False, interval_seconds=60, jitter_seconds=0),
        description="NetFlow/IPFIX reception on a collector host; the interval is the aggregation window",
    )
    snmp: ScheduleSettings = Field(
        default_factory=lambda: ScheduleSettings(enabled=False, interval_seconds=60, timeout_seconds=50),
        description="SNMP polling of the devices in `snmp.devices` (and trap reception when `snmp.traps.enabled`)",
    )
    probes: ScheduleSettings = Field(
        default_factory=lambda: ScheduleSettings(enabled=False, interval_seconds=5, jitter_seconds=0, timeout_seconds=120),
        description="Active checks and scans in `probes.checks`; the interval is the tick at which due checks start",
    )


class ShipperSettings(BaseModel):
    """How batches travel to the server."""

    model_config = ConfigDict(extra="forbid")

    max_batch_samples: int = Field(5000, ge=1, le=50_000, description="Samples per batch at most")
    flush_interval_seconds: float = Field(2, gt=0, le=300, description="Longest a reading waits before it is sent")
    timeout_seconds: float = Field(15, gt=0, le=300, description="One request's timeout")
    backoff_initial_seconds: float = Field(1, gt=0, description="First retry delay (doubles, with jitter)")
    backoff_max_seconds: float = Field(60, gt=0, description="Longest retry delay")
    queue_max_bytes: int = Field(256 << 20, ge=1 << 16, description="Disk queue bound; the oldest batches go first")
    gzip_level: int = Field(6, ge=1, le=9)
    ca_file: Path | None = Field(None, description="PEM bundle of the CAs that may sign the server's certificate "
                                 "(default: the public CAs)")
    pin_sha256: str | None = Field(
        None, description="SHA-256 of the server certificate (DER, 64 hex digits, colons allowed); "
        "a connection to any other certificate is dropped before anything is sent",
    )
    insecure_http: bool = Field(
        False, description="Allow plain http:// to a server that is not on this machine (the enrolment token, "
        "credential and all data then travel unencrypted); same as --insecure",
    )

    @field_validator("pin_sha256")
    @classmethod
    def _pin(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.replace(":", "").replace(" ", "").strip().lower()
        if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
            raise ValueError("must be the SHA-256 of the server certificate: 64 hex digits (colons allowed)")
        return digits


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str | None = Field("127.0.0.1:9108", description="host:port of the local /metrics; null turns it off")


class AgentSettings(YamlFileSettings):
    """All of the agent's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="EGOVMON_AGENT_", env_nested_delimiter="__", extra="forbid", validate_default=True,
        hide_input_in_errors=True,
    )

    server_url: str | None = Field(None, description="The egovmon server; default: the one the agent enrolled with")
    state_dir: Path = Field(Path("egovmon-agent"), description="Credential, disk queue and state")
    hostname: str | None = Field(None, pattern=HOSTNAME_PATTERN, description="Default: this machine's host name")
    collectors: CollectorSettings = Field(default_factory=CollectorSettings)
    backup_jobs: list[BackupJob] = Field(default_factory=list)
    flow: FlowSettings = Field(default_factory=FlowSettings)
    snmp: SnmpSettings = Field(default_factory=SnmpSettings)
    probes: ProbesSettings = Field(default_factory=ProbesSettings)
    shipper: ShipperSettings = Field(default_factory=ShipperSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @property
    def credential_file(self) -> Path:
        """Where `egovmon agent enroll` stores the agent credential (mode 0600)."""
        return self.state_dir / "credential.json"

    @property
    def queue_dir(self) -> Path:
        return self.state_dir / "queue"

    def resolved_hostname(self) -> str:
        return self.hostname or socket.gethostname()


def load_agent_settings(path: Path | None = None, **overrides: Any) -> AgentSettings:
    """Load agent settings (file, then `EGOVMON_AGENT_*`, then overrides). Raises SettingsError."""
    return load_yaml_settings(AgentSettings, path, overrides)
