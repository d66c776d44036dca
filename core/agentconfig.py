"""The agent's settings: one YAML file plus `EGOVMON_AGENT_*` environment overrides.

An agent host has its own file (`egovmon agent install` writes one). Nested keys
in the environment are joined by `__`: `EGOVMON_AGENT_SHIPPER__TIMEOUT_SECONDS=5`.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from core.models import HOSTNAME_PATTERN
from core.settings import LogSettings, YamlFileSettings, load_yaml_settings

# Each probe kind's check settings live in its module in probes/kinds/ beside its runner (see probes/settings.py).
from probes.settings import ProbeCheck as ProbeCheck  # importable from here as before
from probes.settings import ProbesSettings as ProbesSettings


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


class FlowSettings(BaseModel):
    """Flow reception and aggregation (collector hosts next to core routers and firewalls)."""

    model_config = ConfigDict(extra="forbid")

    listen_host: str = Field("0.0.0.0", description="Address to receive NetFlow/IPFIX on")
    listen_port: int = Field(2055, ge=0, le=65535, description="UDP port (0: any free port)")
    receive_buffer_bytes: int = Field(32 << 20, ge=1 << 16, description="Socket receive buffer asked for")
    approved_prefixes: list[str] = Field(default_factory=list, description="The approved address plan (extranet prefixes)")
    internal_prefixes: list[str] = Field(
        default_factory=lambda: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"],
        description="Address space that counts as internal: internal traffic outside the plan is reported",
    )
    top_n: int = Field(20, ge=1, le=1000, description="Conversations kept per exporter and interval")


class BackupJob(BaseModel):
    """One backup (or restore test) whose success the agent checks.

    kind `path`: the newest file under `path` (recursively, optionally matching
    `pattern`) must be younger than the RPO; its size is reported.
    kind `status_file`: `path` holds the last run's outcome, as JSON
    (`{"status": "success", "finished_at": "...", "size_bytes": N}`) or as a
    first word `success`/`ok`/`failed`; the file's mtime is the run time.
    kind `command`: `command` (argv list, no shell) is run; exit status 0 means
    the last backup succeeded; a JSON object on stdout may add `finished_at` and
    `size_bytes`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Job name, a tag value")
    kind: Literal["path", "status_file", "command"]
    role: Literal["backup", "restore_test"] = Field("backup", description="A backup job or a restore test")
    rpo_seconds: float = Field(86_400, gt=0, allow_inf_nan=False, description="Longest acceptable time since the last success")
    path: Path | None = Field(None, description="Directory or file (path), status file (status_file)")
    pattern: str = Field("*", description="Glob of backup files under path (path)")
    command: list[str] | None = Field(None, description="argv of the check command (command)")
    timeout_seconds: float = Field(60, gt=0, le=3600, allow_inf_nan=False, description="Longest a check may take")

    @model_validator(mode="after")
    def _needs(self) -> BackupJob:
        if self.kind in ("path", "status_file") and self.path is None:
            raise ValueError(f"backup job {self.name}: kind {self.kind} needs path")
        if self.kind == "command" and not self.command:
            raise ValueError(f"backup job {self.name}: kind command needs command (an argv list)")
        return self


_DEFAULT_COMMUNITIES = frozenset({"public", "private"})


class SnmpDeviceSettings(BaseModel):
    """One device to poll: v2c with a community, or v3 with a USM user (authPriv when both keys are given)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", description="Device name, the `device` tag")
    address: str = Field(description="Host name or IP address of the agent")
    port: int = Field(161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = Field(None, description="v2c community (not public/private)")
    user: str | None = Field(None, description="v3 USM user name")
    auth_protocol: Literal["SHA", "SHA256", "SHA512", "MD5"] = "SHA256"
    auth_key: SecretStr | None = None
    priv_protocol: Literal["AES", "AES256", "AES256C", "DES"] = Field(
        "AES", description="AES is AES-128; AES256 as net-snmp and most vendors (Blumenthal), AES256C as Cisco")
    priv_key: SecretStr | None = None
    modules: list[str] | None = Field(None, description="Modules to poll (default: all that fit the device)")
    timeout_seconds: float | None = Field(None, gt=0, le=60, description="Per request; default snmp.timeout_seconds")
    retries: int | None = Field(None, ge=0, le=10)

    @model_validator(mode="after")
    def _credentials(self) -> SnmpDeviceSettings:
        if self.version == "2c":
            if self.community is None:
                raise ValueError(f"snmp device {self.name}: version 2c needs community")
            if self.community.get_secret_value() in _DEFAULT_COMMUNITIES:
                raise ValueError(f"snmp device {self.name}: the default community is refused; configure a real one")
        elif not self.user:
            raise ValueError(f"snmp device {self.name}: version 3 needs user")
        for key in (self.auth_key, self.priv_key):
            if key is not None and len(key.get_secret_value()) < 8:
                raise ValueError(f"snmp device {self.name}: v3 keys must be at least 8 characters (RFC 3414)")
        return self


class SnmpTrapUser(BaseModel):
    """A v3 user whose traps are accepted (authPriv when both keys are given)."""

    model_config = ConfigDict(extra="forbid")

    user: str
    auth_protocol: Literal["SHA", "SHA256", "SHA512", "MD5"] = "SHA256"
    auth_key: SecretStr | None = None
    priv_protocol: Literal["AES", "AES256", "AES256C", "DES"] = "AES"
    priv_key: SecretStr | None = None
    engine_id: str | None = Field(None, description="Hex authoritative engine id of the sender (needed for v3 traps)")


class SnmpTrapSettings(BaseModel):
    """The trap and inform receiver."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    listen_host: str = "0.0.0.0"
    listen_port: int = Field(162, ge=0, le=65535, description="UDP port (0: any free port)")
    communities: list[SecretStr] = Field(default_factory=list, description="v1/v2c communities accepted")
    users: list[SnmpTrapUser] = Field(default_factory=list)


class SnmpSettings(BaseModel):
    """SNMP polling on a collector host next to the devices."""

    model_config = ConfigDict(extra="forbid")

    devices: list[SnmpDeviceSettings] = Field(default_factory=list)
    max_concurrency: int = Field(64, ge=1, le=4096, description="Devices polled at once")
    timeout_seconds: float = Field(2, gt=0, le=60, description="Default per-request timeout")
    retries: int = Field(1, ge=0, le=10, description="Default re-sends of an unanswered request")
    max_repetitions: int = Field(50, ge=1, le=500, description="GETBULK max-repetitions (shared by the columns walked)")
    discovery_ranges: list[str] = Field(
        default_factory=list, description="Prefixes inside which neighbours are proposed as devices to poll")
    traps: SnmpTrapSettings = Field(default_factory=SnmpTrapSettings)


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
