"""Probe kind `smtp` (probes/kinds/smtp.py) against aiosmtpd's real SMTP server on loopback, plain and with
STARTTLS; hostile listeners (not SMTP, endless line); the pure reply parser and verdict; and the kind running
through the scheduler, the settings schema and `egovmon probe check` with no other change."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from agent.settings import AgentSettings
from core.collect import LOCAL
from probes.collector import ProbesCollector
from probes.kinds.smtp import (
    Reply,
    SmtpExpect,
    SmtpProtocolError,
    evaluate,
    parse_reply,
    probe_smtp,
)
from probes.result import reason_text
from probes.safety import AllowedRanges
from probes.settings import ProbesSettings
from tests.probes.servers import make_cert

ROOT = Path(__file__).resolve().parents[2]
IDENT = "ESMTP egovtest"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server(tls_context: ssl.SSLContext | None = None) -> Iterator[int]:
    """aiosmtpd's SMTP server on a free loopback port, offering STARTTLS when given a context."""
    port = _free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port, server_hostname="mail.egov.test", ident=IDENT,
                            tls_context=tls_context)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextmanager
def speaking_first(payload: bytes) -> Iterator[int]:
    """A hostile TCP listener on loopback that sends `payload` to whoever connects (what a non-SMTP service does)."""
    class Send(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(payload)
            self.request.recv(4096)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Send)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def run(port: int, expect: SmtpExpect = SmtpExpect(), allowed: AllowedRanges | None = None):  # noqa: B008 - never mutated
    return asyncio.run(probe_smtp("127.0.0.1", port, expect, timeout=5, allowed=allowed))


def test_a_real_smtp_server_greets_and_answers_ehlo() -> None:
    with smtp_server() as port:
        result = run(port, SmtpExpect(banner_regex=r"ESMTP"))
        mismatch = run(port, SmtpExpect(banner_regex=r"Postfix"))
        no_tls = run(port, SmtpExpect(require_starttls=True))
    assert (result.success, result.reason, result.detail) == (True, "ok", f"220 mail.egov.test {IDENT}")
    assert (result.fields["smtp_reply_code"], result.fields["smtp_starttls"]) == (220, 0)
    assert result.fields["smtp_banner_seconds"] > 0
    assert (mismatch.success, mismatch.reason) == (False, "smtp_banner_mismatch")
    assert (no_tls.success, no_tls.reason, reason_text(no_tls.reason)) == (
        False, "smtp_no_starttls", "SMTP 服务未提供 STARTTLS 加密")


def test_starttls_offered_by_a_real_server(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path, common_name="mail.egov.test", dns_names=["mail.egov.test"], ips=["127.0.0.1"],
                          valid_days=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with smtp_server(context) as port:
        result = run(port, SmtpExpect(require_starttls=True))
    assert (result.success, result.reason, result.fields["smtp_starttls"]) == (True, "ok", 1)


def test_closed_port_refused_and_outside_the_ranges() -> None:
    closed = _free_port()
    assert run(closed).reason == "connection_refused"
    outside = run(closed, allowed=AllowedRanges.parse(["10.0.0.0/8"]))
    assert (outside.success, outside.reason) == (False, "out_of_range")


@pytest.mark.parametrize(("payload", "detail"), [
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "not an SMTP reply line: 'SSH-2.0-OpenSSH_9.2p1 Debian-2'"),
    (b"220 " + b"x" * 5000, "a reply line longer than 1024 bytes"),
    (b"220-hello\r\n" * 100, "a reply of more than 64 lines"),
    (b"554 5.3.2 no service for you\r\n", None),
])
def test_hostile_or_refusing_listeners(payload: bytes, detail: str | None) -> None:
    with speaking_first(payload) as port:
        result = run(port)
    if detail is None:  # a well-formed refusal: a verdict about the server, not a protocol error
        assert (result.reason, result.detail, result.fields["smtp_reply_code"]) == (
            "smtp_rejected", "greeting 554 5.3.2 no service for you", 554)
    else:
        assert (result.success, result.reason, result.detail) == (False, "protocol_error", detail)


@pytest.mark.parametrize(("lines", "expected"), [
    ([b"220 mail ESMTP\r\n"], Reply(220, ("mail ESMTP",))),
    ([b"250-mail\r\n", b"250-PIPELINING\r\n", b"250 STARTTLS\r\n"], Reply(250, ("mail", "PIPELINING", "STARTTLS"))),
    ([b"220\r\n"], Reply(220, ("",))),
])
def test_parse_reply(lines: list[bytes], expected: Reply) -> None:
    assert parse_reply(lines) == expected


@pytest.mark.parametrize("lines", [
    [], [b"hello\r\n"], [b"220-a\r\n"], [b"220 a\r\n", b"220 b\r\n"], [b"220-a\r\n", b"250 b\r\n"], [b"220+a\r\n"],
    [b"620 a\r\n"],
])
def test_parse_reply_refuses_what_is_not_a_reply(lines: list[bytes]) -> None:
    with pytest.raises(SmtpProtocolError):
        parse_reply(lines)


@pytest.mark.parametrize(("greeting", "ehlo", "expect", "reason"), [
    (Reply(220, ("a ESMTP",)), Reply(250, ("a", "STARTTLS")), SmtpExpect(require_starttls=True), "ok"),
    (Reply(220, ("a ESMTP",)), Reply(250, ("a", "SIZE 1000")), SmtpExpect(require_starttls=True), "smtp_no_starttls"),
    (Reply(220, ("a ESMTP",)), Reply(502, ("no",)), SmtpExpect(), "smtp_rejected"),
    (Reply(421, ("busy",)), None, SmtpExpect(), "smtp_rejected"),
    (Reply(220, ("a ESMTP",)), Reply(250, ("a",)), SmtpExpect(banner_regex="^b"), "smtp_banner_mismatch"),
])
def test_evaluate(greeting: Reply, ehlo: Reply | None, expect: SmtpExpect, reason: str) -> None:
    assert evaluate(greeting, ehlo, expect)[0] == reason


def test_settings_refuse_a_bad_regex_and_a_bad_helo_name() -> None:
    for expect in ({"banner_regex": "("}, {"helo_name": "bad name"}, {"port": 25}):
        with pytest.raises(ValueError):
            ProbesSettings.model_validate({"checks": [{"name": "m", "kind": "smtp", "target": "a:25", "expect": expect}]})
    assert "SmtpCheck" in AgentSettings.model_json_schema()["$defs"]


def test_the_scheduler_and_the_cli_run_the_kind() -> None:
    now = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
    with smtp_server() as port:
        settings = ProbesSettings.model_validate({"allowed_ranges": ["127.0.0.0/8"], "checks": [
            {"name": "mail", "kind": "smtp", "target": f"127.0.0.1:{port}", "expect": {"banner_regex": "ESMTP"}}]})
        collector = ProbesCollector(settings, clock=lambda: now)
        reading = asyncio.run(collector.collect(LOCAL, timeout=10))
        done = subprocess.run([sys.executable, "-m", "cli", "probe", "check", "smtp", f"127.0.0.1:{port}", "--json",
                               "--expect", "require_starttls=true", "--lang", "en"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    probe = next(s for s in reading.samples if s.measurement == "probe")
    assert (probe.tags, probe.fields["success"], probe.fields["smtp_reply_code"]) == (
        {"check": "mail", "kind": "smtp", "target": f"127.0.0.1:{port}"}, 1, 220)
    state = next(o for o in reading.observations if o.kind == "probe_state")
    assert (state.subject, state.attributes["state"], state.attributes["reason"]) == ("mail", "up", "ok")
    document = json.loads(done.stdout)
    assert (done.returncode, document["reason"], document["reason_text"]) == (
        1, "smtp_no_starttls", "SMTP server does not offer STARTTLS")
