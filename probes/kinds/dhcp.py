"""Kind `dhcp`: rogue DHCP detection, a DISCOVER broadcast and every server that offers (probes/dhcp.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.dhcp import detect
from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.result import ProbeResult


class DhcpExpect(BaseModel):
    """The interface to send on and the servers allowed to answer."""

    model_config = ConfigDict(extra="forbid")

    interface: str | None = Field(None, description="Network interface (required)")
    authorized_servers: list[str] = Field(default_factory=list, description="Server ids allowed to offer")


class DhcpCheck(CheckSettings):
    """A DISCOVER on `expect.interface`; the target is ignored."""

    needs: ClassVar[tuple[str, ...]] = ("interface",)
    needs_target: ClassVar[bool] = False

    kind: Literal["dhcp"]
    expect: DhcpExpect = Field(default_factory=DhcpExpect)


async def run(check: DhcpCheck, ctx: RunContext) -> ProbeResult:
    return await detect(check.expect.interface or "", authorized=check.expect.authorized_servers,
                        timeout=check.timeout_seconds)


KIND = ProbeKind("dhcp", DhcpCheck, run, reasons={
    "no_offer": ("未收到 DHCP OFFER", "no DHCP OFFER received"),
    "rogue_dhcp": ("发现未授权的 DHCP 服务器", "unauthorized DHCP server found"),
}, summary=("私设 DHCP 检测", "rogue DHCP detection"))
