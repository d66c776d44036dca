"""Kind `smtp`: an SMTP server's greeting (RFC 5321 §4.2, §4.3.1), its EHLO answer and STARTTLS (RFC 3207).

The probe connects to host:port (25 by default), reads the greeting, which must
be a 220 reply (a 554 greeting means "no SMTP service here"), optionally matches
its text, sends EHLO and reads the extensions the server offers, then QUIT. It
never sends mail. The server is hostile input: a line longer than 1,024 bytes
(RFC 5321 §4.5.3.1.5 allows 512) or a reply of more than 64 lines is a protocol
error, and the whole exchange runs within the check's timeout.

`parse_reply` and `evaluate` are pure.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from probes.errors import OutOfRangeError
from probes.kind import CheckSettings, ProbeKind, RunContext
from probes.net import check_allowed, classify, resolve, split_host_port
from probes.result import OK, ProbeResult, failed
from probes.safety import AllowedRanges

NAME = "smtp"
DEFAULT_PORT = 25
MAX_LINE_BYTES = 1024
MAX_REPLY_LINES = 64


class SmtpProtocolError(ValueError):
    """What the server sent is not an SMTP reply (RFC 5321 §4.2), or is too long."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: its code and its text lines (without the code)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def _is_reply_line(line: str) -> bool:
    """Whether line is `NNN`, `NNN text` or `NNN-text` with a code of class 2 to 5."""
    return len(line) >= 3 and line[:3].isdigit() and line[:1] in "2345" and (len(line) == 3 or line[3] in " -")


def parse_reply(lines: list[bytes]) -> Reply:
    """The reply of its raw lines (`220-first`, ..., `220 last`). Pure.

    Raises:
        SmtpProtocolError: a line is not `NNN`, `NNN text` or `NNN-text`, codes differ, or the last line
            is a continuation.
    """
    if not lines:
        raise SmtpProtocolError("no reply")
    code = None
    texts = []
    for number, raw in enumerate(lines):
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not _is_reply_line(line):
            raise SmtpProtocolError(f"not an SMTP reply line: {line[:80]!r}")
        if code is not None and int(line[:3]) != code:
            raise SmtpProtocolError(f"reply code changed within one reply: {line[:80]!r}")
        code = int(line[:3])
        last = number == len(lines) - 1
        if (len(line) > 3 and line[3] == "-") == last:
            raise SmtpProtocolError(f"bad continuation at {line[:80]!r}")
        texts.append(line[4:])
    assert code is not None
    return Reply(code, tuple(texts))


def offers_starttls(ehlo: Reply) -> bool:
    """Whether an EHLO reply lists the STARTTLS extension (the lines after the first are keywords). Pure."""
    return any(line.split(" ", 1)[0].upper() == "STARTTLS" for line in ehlo.lines[1:])


class SmtpExpect(BaseModel):
    """What a good SMTP server says."""

    model_config = ConfigDict(extra="forbid")

    banner_regex: str | None = Field(None, max_length=512, description="The greeting's text must match (e.g. 'ESMTP')")
    require_starttls: bool = Field(False, description="The EHLO answer must offer STARTTLS (RFC 3207)")
    helo_name: str = Field("egovmon.invalid", pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$",
                           description="The name this probe gives in EHLO")

    @field_validator("banner_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class SmtpCheck(CheckSettings):
    """The greeting and EHLO answer of `target` (host:port, port 25 by default)."""

    kind: Literal["smtp"]
    expect: SmtpExpect = Field(default_factory=SmtpExpect)


def evaluate(greeting: Reply, ehlo: Reply | None, expect: SmtpExpect) -> tuple[str, str]:
    """The verdict: (reason code, English detail). `ehlo` is None when the greeting already failed. Pure."""
    if greeting.code != 220:
        return "smtp_rejected", f"greeting {greeting.code} {greeting.text[:200]}"
    if expect.banner_regex is not None and not re.search(expect.banner_regex, greeting.text):
        return "smtp_banner_mismatch", f"greeting {greeting.text[:200]!r} does not match {expect.banner_regex!r}"
    if ehlo is None or ehlo.code != 250:
        return "smtp_rejected", f"EHLO answered {ehlo.code} {ehlo.text[:200]}" if ehlo else "no EHLO answer"
    if expect.require_starttls and not offers_starttls(ehlo):
        return "smtp_no_starttls", f"EHLO answer offers {', '.join(ehlo.lines[1:]) or 'no extensions'}, not STARTTLS"
    return OK, f"220 {greeting.text[:200]}"


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    lines: list[bytes] = []
    while len(lines) < MAX_REPLY_LINES:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            raise SmtpProtocolError(f"a reply line longer than {MAX_LINE_BYTES} bytes") from exc
        except asyncio.IncompleteReadError as exc:
            raise SmtpProtocolError(f"connection closed within a reply ({len(exc.partial)} bytes)") from exc
        lines.append(line)
        if not (line[:3].isdigit() and line[3:4] == b"-"):  # the last line, or not a reply at all
            return parse_reply(lines)
    raise SmtpProtocolError(f"a reply of more than {MAX_REPLY_LINES} lines")


async def probe_smtp(host: str, port: int, expect: SmtpExpect, *, timeout: float,
                     allowed: AllowedRanges | None = None) -> ProbeResult:
    """Greet host:port within `timeout` seconds and judge the answers; never raises for the server's failures."""
    target = f"{host}:{port}"
    started = time.perf_counter()
    fields: dict[str, float | bool] = {}
    ehlo = None
    try:
        async with asyncio.timeout(timeout):
            addresses = await resolve(host, port)
            check_allowed(addresses, allowed, "target")
            reader, writer = await asyncio.open_connection(str(addresses[0]), port, limit=MAX_LINE_BYTES)
            try:
                greeting = await _read_reply(reader)
                fields = {"smtp_reply_code": greeting.code, "smtp_banner_seconds": time.perf_counter() - started}
                if greeting.code == 220:
                    writer.write(f"EHLO {expect.helo_name}\r\n".encode())
                    ehlo = await _read_reply(reader)
                    fields["smtp_starttls"] = int(offers_starttls(ehlo))
                    writer.write(b"QUIT\r\n")
                    await writer.drain()
            finally:
                writer.close()
    except OutOfRangeError as exc:
        return failed(NAME, target, "out_of_range", str(exc))
    except SmtpProtocolError as exc:
        return failed(NAME, target, "protocol_error", str(exc), time.perf_counter() - started, **fields)
    except (OSError, TimeoutError) as exc:
        reason, detail = classify(exc)
        return failed(NAME, target, reason, detail, time.perf_counter() - started, **fields)
    reason, detail = evaluate(greeting, ehlo, expect)
    return ProbeResult(NAME, target, reason == OK, reason, detail, time.perf_counter() - started, fields)


async def run(check: SmtpCheck, ctx: RunContext) -> ProbeResult:
    host, port = split_host_port(check.target, DEFAULT_PORT)
    return await probe_smtp(host, port, check.expect, timeout=check.timeout_seconds, allowed=ctx.allowed)


KIND = ProbeKind(NAME, SmtpCheck, run, reasons={
    "smtp_rejected": ("SMTP 服务拒绝(问候或 EHLO 应答非成功)", "SMTP service refused (greeting or EHLO not accepted)"),
    "smtp_banner_mismatch": ("SMTP 问候语不符合预期", "SMTP greeting does not match the expected text"),
    "smtp_no_starttls": ("SMTP 服务未提供 STARTTLS 加密", "SMTP server does not offer STARTTLS"),
}, summary=("邮件服务(SMTP)问候", "SMTP greeting"))
