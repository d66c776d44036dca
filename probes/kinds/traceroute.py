"""Kind `traceroute`: the path to an address, hop by hop (probes/traceroute.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.result import ProbeResult
from probes.traceroute import trace


class TracerouteExpect(BaseModel):
    """The probe packets."""

    model_config = ConfigDict(extra="forbid")

    protocol: Literal["icmp", "udp", "tcp"] = Field("icmp", description="Probe packets")
    port: int | None = Field(None, ge=1, le=65535, description="Destination port (udp, tcp)")


class TracerouteCheck(CheckSettings):
    """A trace to `target` (an IPv4 address inside the allowed ranges)."""

    kind: Literal["traceroute"]
    expect: TracerouteExpect = Field(default_factory=TracerouteExpect)


async def run(check: TracerouteCheck, ctx: RunContext) -> ProbeResult:
    e = check.expect
    return await trace(check.target, allowed=ctx.allowed, protocol=e.protocol, port=e.port,
                       timeout=min(2.0, check.timeout_seconds), rate=ctx.rate)


KIND = ProbeKind("traceroute", TracerouteCheck, run, scan=True, summary=("路由追踪", "traceroute"))
