"""Kind `icmp`: one ICMP echo request to a host (probes/icmp.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from probes.icmp import probe_icmp
from probes.kind import CheckSettings, NoExpect, ProbeKind, RunContext
from probes.result import ProbeResult


class IcmpCheck(CheckSettings):
    """An ICMP echo to `target` (a host name or address)."""

    kind: Literal["icmp"]
    expect: NoExpect = Field(default_factory=NoExpect)


async def run(check: IcmpCheck, ctx: RunContext) -> ProbeResult:
    return await probe_icmp(check.target, timeout=check.timeout_seconds, allowed=ctx.allowed)


KIND = ProbeKind("icmp", IcmpCheck, run, summary=("ICMP 连通性", "ICMP echo"))
