"""The `snmp:` section of the agent's settings: devices to poll and the trap receiver (`collectors.snmp.collector`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

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
