"""Kind `arp`: ARP sweep of a CIDR on an interface; addresses and MACs that answer, and changes (probes/arp.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.arp import sweep
from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.result import ProbeResult


class InterfaceExpect(BaseModel):
    """The interface to send on."""

    model_config = ConfigDict(extra="forbid")

    interface: str | None = Field(None, description="Network interface (required)")


class ArpCheck(CheckSettings):
    """A sweep of `target` (a CIDR inside the allowed ranges)."""

    needs: ClassVar[tuple[str, ...]] = ("interface",)

    kind: Literal["arp"]
    expect: InterfaceExpect = Field(default_factory=InterfaceExpect)


async def run(check: ArpCheck, ctx: RunContext) -> ProbeResult:
    known = ctx.known_arp.setdefault(check.name, {})
    result = await sweep(check.target, check.expect.interface or "", allowed=ctx.allowed,
                         timeout=min(2.0, check.timeout_seconds), rate=ctx.rate, known=known)
    known.update({f.subject: str(f.attributes["mac"]) for f in result.findings})
    return result


KIND = ProbeKind("arp", ArpCheck, run, scan=True, summary=("ARP 扫描", "ARP sweep"))
