"""Kind `tls`: days to certificate expiry, chain, host name and protocol version of an endpoint (probes/tls.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.net import split_host_port
from probes.result import ProbeResult
from probes.tls import TlsExpect, probe_tls


class TlsExpectSettings(BaseModel):
    """What a good TLS endpoint looks like."""

    model_config = ConfigDict(extra="forbid")

    ca_file: str | None = Field(None, description="CA bundle to verify against (default: the system's)")
    min_days_valid: float = Field(14, ge=0, description="Fewer days left before expiry is a failure")
    min_tls_version: Literal["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    server_name: str | None = Field(None, description="SNI and the name the certificate must match")


class TlsCheck(CheckSettings):
    """A handshake with `target` (host:port, port 443 by default)."""

    kind: Literal["tls"]
    expect: TlsExpectSettings = Field(default_factory=TlsExpectSettings)


async def run(check: TlsCheck, ctx: RunContext) -> ProbeResult:
    host, port = split_host_port(check.target, 443)
    e = check.expect
    expect = TlsExpect(e.min_days_valid, e.min_tls_version, e.ca_file, e.server_name)
    return await probe_tls(host, port, expect, timeout=check.timeout_seconds, allowed=ctx.allowed)


KIND = ProbeKind("tls", TlsCheck, run, reasons={
    "cert_hostname_mismatch": ("证书与主机名不匹配", "certificate does not match the host name"),
    "cert_expiring": ("证书即将过期", "certificate expires soon"),
    "cert_expired": ("证书已过期", "certificate expired"),
    "tls_version_too_old": ("TLS 协议版本过低", "TLS protocol version too old"),
}, summary=("TLS 证书", "TLS certificate"))
