"""Kind `website`: HTTP(S) services in a range, with title, Server header, certificate (probes/website.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.result import ProbeResult
from probes.website import discover


class WebsiteExpect(BaseModel):
    """The ports tried on every address."""

    model_config = ConfigDict(extra="forbid")

    ports: list[int] = Field(default_factory=lambda: [80, 443, 8080, 8443], description="Ports tried")


class WebsiteCheck(CheckSettings):
    """A scan of `target` (a CIDR inside the allowed ranges)."""

    kind: Literal["website"]
    expect: WebsiteExpect = Field(default_factory=WebsiteExpect)


async def run(check: WebsiteCheck, ctx: RunContext) -> ProbeResult:
    return await discover(check.target, allowed=ctx.allowed, ports=tuple(check.expect.ports),
                          timeout=min(2.0, check.timeout_seconds), rate=ctx.rate)


KIND = ProbeKind("website", WebsiteCheck, run, scan=True, summary=("网站发现", "website discovery"))
