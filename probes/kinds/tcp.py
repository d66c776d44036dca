"""Kind `tcp`: does host:port accept a connection (probes/tcp.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from probes.kind import CheckSettings, NoExpect, ProbeKind, RunContext
from probes.net import split_host_port
from probes.result import ProbeResult
from probes.tcp import probe_tcp


class TcpCheck(CheckSettings):
    """A TCP connect to `target` (host:port)."""

    kind: Literal["tcp"]
    expect: NoExpect = Field(default_factory=NoExpect)


async def run(check: TcpCheck, ctx: RunContext) -> ProbeResult:
    host, port = split_host_port(check.target)
    return await probe_tcp(host, port, timeout=check.timeout_seconds, allowed=ctx.allowed)


KIND = ProbeKind("tcp", TcpCheck, run, summary=("TCP 端口连通", "TCP connect"))
