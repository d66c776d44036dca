"""Kind `http`: status, timings by phase, expected content and redirects of a URL (probes/http.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from probes.http import HttpExpect
from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.result import ProbeResult


class HttpExpectSettings(BaseModel):
    """What a good HTTP answer looks like."""

    model_config = ConfigDict(extra="forbid")

    status_codes: list[int] = Field(default_factory=list, description="Accepted status codes (empty: any 2xx)")
    body_regex: str | None = Field(None, description="The body must match this regular expression")
    body_not_regex: str | None = Field(None, description="The body must not match this regular expression")
    follow_redirects: bool = Field(True, description="Follow redirects (up to max_redirects)")
    max_redirects: int = Field(10, ge=0, le=30)
    verify_tls: bool = Field(True, description="Verify the server certificate")
    ca_file: str | None = Field(None, description="CA bundle to verify against (default: the system's)")


class HttpCheck(CheckSettings):
    """A request to `target` (a URL)."""

    kind: Literal["http"]
    expect: HttpExpectSettings = Field(default_factory=HttpExpectSettings)


async def run(check: HttpCheck, ctx: RunContext) -> ProbeResult:
    e = check.expect
    expect = HttpExpect(tuple(e.status_codes), e.body_regex, e.body_not_regex, e.follow_redirects, e.max_redirects,
                        e.verify_tls, e.ca_file)
    return await ctx.http.probe(check.target, expect, timeout=check.timeout_seconds, allowed=ctx.allowed)


KIND = ProbeKind("http", HttpCheck, run, reasons={
    "status_mismatch": ("HTTP 状态码不符合预期", "unexpected HTTP status code"),
    "content_mismatch": ("页面内容不符合预期", "expected content not found"),
    "too_many_redirects": ("重定向次数过多", "too many redirects"),
}, summary=("网页可用性", "HTTP check"))
