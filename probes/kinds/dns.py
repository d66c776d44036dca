"""Kind `dns`: ask one server one question; rcode, expected records, response time (probes/dns.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.dns import DnsExpect, probe_dns
from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.result import ProbeResult


class DnsExpectSettings(BaseModel):
    """The server to ask and what a good answer holds."""

    model_config = ConfigDict(extra="forbid")

    dns_server: str | None = Field(None, description="Server to ask, host or host:port (required)")
    record_type: str = Field("A", pattern=r"^[A-Z0-9]{1,10}$")
    rcode: str = Field("NOERROR", pattern=r"^[A-Z]{1,10}$")
    records: list[str] = Field(default_factory=list, description="Records that must be in the answer")


class DnsCheck(CheckSettings):
    """A question for the name `target`."""

    needs: ClassVar[tuple[str, ...]] = ("dns_server",)

    kind: Literal["dns"]
    expect: DnsExpectSettings = Field(default_factory=DnsExpectSettings)


async def run(check: DnsCheck, ctx: RunContext) -> ProbeResult:
    e = check.expect
    expect = DnsExpect(e.record_type, e.rcode, tuple(e.records))
    return await probe_dns(check.target, e.dns_server or "", expect, timeout=check.timeout_seconds,
                           allowed=ctx.allowed)


KIND = ProbeKind("dns", DnsCheck, run, reasons={
    "nxdomain": ("域名不存在(NXDOMAIN)", "name does not exist (NXDOMAIN)"),
    "servfail": ("DNS 服务器失败(SERVFAIL)", "DNS server failure (SERVFAIL)"),
    "refused": ("DNS 服务器拒绝查询(REFUSED)", "DNS server refused the query (REFUSED)"),
    "rcode_mismatch": ("DNS 返回码不符合预期", "unexpected DNS response code"),
    "records_mismatch": ("DNS 记录不符合预期", "expected DNS records missing"),
    "no_answer": ("DNS 无应答记录", "no records in the answer"),
}, summary=("DNS 解析", "DNS answer"))
