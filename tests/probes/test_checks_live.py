"""The probes against real servers on loopback: an HTTP(S) server with a self-signed certificate that
expires in 5 days, dnsmasq as DNS server, closed and silent ports, and the kernel's ICMP echo."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.dns import DnsExpect, probe_dns
from probes.http import HttpExpect, HttpProber
from probes.icmp import probe_icmp
from probes.result import ProbeResult
from probes.safety import AllowedRanges
from probes.tcp import probe_tcp
from probes.tls import TlsExpect, probe_tls
from tests.probes.conftest import Dns, skip_or_fail
from tests.probes.servers import PAGE, WebServer

ROOT = Path(__file__).resolve().parents[2]


def run(coro: object) -> ProbeResult:
    return asyncio.run(coro)  # type: ignore[arg-type]


DEFAULT = HttpExpect()


def http(url: str, expect: HttpExpect = DEFAULT, timeout: float = 3.0) -> ProbeResult:
    async def go() -> ProbeResult:
        async with HttpProber() as prober:
            return await prober.probe(url, expect, timeout=timeout)
    return run(go())


@pytest.fixture()
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: connecting gets an RST


@pytest.fixture()
def silent_port() -> Iterator[int]:
    """A port that accepts connections (backlog) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


# -- ICMP and TCP ------------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_icmp_echo_to_loopback(address: str) -> None:
    if ":" in address and not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    result = run(probe_icmp(address, timeout=2))
    assert (result.success, result.reason, list(result.phases)) == (True, "ok", ["rtt"])
    assert 0 < result.phases["rtt"] < 1


def test_icmp_without_cap_net_raw_says_so() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        skip_or_fail("setpriv (util-linux) is not installed")
    done = subprocess.run(
        [setpriv, "--inh-caps=-net_raw", "--bounding-set=-net_raw", sys.executable, "-m", "cli", "probe", "icmp",
         "127.0.0.1", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    document = json.loads(done.stdout)
    if document["success"]:
        pytest.skip("this host lets every group use the unprivileged ping socket (net.ipv4.ping_group_range)")
    assert (done.returncode, document["reason"], document["reason_text"]) == (
        1, "no_cap_net_raw", "缺少 CAP_NET_RAW 权限,无法使用原始套接字")
    assert "needs CAP_NET_RAW" in document["detail"]


def test_tcp_connect_refused_and_open(closed_port: int, http_server: WebServer) -> None:
    refused = run(probe_tcp("127.0.0.1", closed_port, timeout=2))
    assert (refused.success, refused.reason, refused.detail) == (False, "connection_refused", "connection refused (RST)")
    assert run(probe_tcp("127.0.0.1", http_server.port, timeout=2)).success is True


def test_tcp_outside_allowed_ranges_is_refused_without_connecting(http_server: WebServer) -> None:
    result = run(probe_tcp("127.0.0.1", http_server.port, timeout=2, allowed=AllowedRanges.parse(["10.0.0.0/8"])))
    assert (result.success, result.reason, result.detail) == (
        False, "out_of_range", "target 127.0.0.1 is outside the allowed ranges (10.0.0.0/8)")


# -- HTTP --------------------------------------------------------------------------------------------


def test_http_ok_with_phases(http_server: WebServer) -> None:
    result = http(f"{http_server.url}/", HttpExpect(body_regex="欢迎"))
    assert (result.success, result.reason) == (True, "ok")
    assert dict(result.fields) == {"http_status_code": 200, "http_redirects": 0, "http_content_length": len(PAGE.encode("gbk")),
                                   "http_ssl": 0}
    assert sorted(result.phases) == ["connect", "processing", "resolve", "transfer"]


@pytest.mark.parametrize(("path", "expect", "success", "reason", "status", "redirects"), [
    ("/hop/2", HttpExpect(), True, "ok", 200, 2),
    ("/hop/2", HttpExpect(follow_redirects=False), False, "status_mismatch", 302, 0),
    ("/hop/5", HttpExpect(max_redirects=3), False, "too_many_redirects", 302, 3),
    ("/missing", HttpExpect(), False, "status_mismatch", 404, 0),
    ("/missing", HttpExpect(status_codes=(404,)), True, "ok", 404, 0),
    ("/error", HttpExpect(), False, "status_mismatch", 503, 0),
    ("/", HttpExpect(body_regex="maintenance"), False, "content_mismatch", 200, 0),
])
def test_http_verdicts(http_server: WebServer, path: str, expect: HttpExpect, success: bool, reason: str,
                       status: int, redirects: int) -> None:
    result = http(http_server.url + path, expect)
    assert (result.success, result.reason, result.fields["http_status_code"], result.fields["http_redirects"]) == (
        success, reason, status, redirects)


def test_https_self_signed(https_server: WebServer, certs: dict[str, tuple[Path, Path]]) -> None:
    invalid = http(f"{https_server.url}/")
    assert (invalid.success, invalid.reason) == (False, "cert_invalid")
    assert "self-signed certificate" in invalid.detail
    trusted = http(f"{https_server.url}/", HttpExpect(ca_file=str(certs["short"][0])))
    assert (trusted.success, trusted.fields["http_ssl"], trusted.fields["tls_version"]) == (True, 1, 1.3)
    assert sorted(trusted.phases) == ["connect", "processing", "resolve", "tls", "transfer"]
    assert http(f"{https_server.url}/", HttpExpect(verify_tls=False)).success is True


def test_http_failures_are_results(closed_port: int, silent_port: int, https_server: WebServer,
                                   http_server: WebServer) -> None:
    assert http(f"http://127.0.0.1:{closed_port}/").reason == "connection_refused"
    silent = http(f"http://127.0.0.1:{silent_port}/", timeout=0.5)
    assert (silent.reason, silent.success) == ("timeout", False)
    assert 0.5 <= silent.duration_seconds < 2
    assert http(f"https://127.0.0.1:{http_server.port}/").reason == "tls_handshake_failed"
    assert http(f"http://127.0.0.1:{https_server.port}/").reason in ("protocol_error", "connection_refused")
    assert http("http://name.invalid/").reason == "resolve_failed"


# -- TLS ---------------------------------------------------------------------------------------------


def test_tls_certificate_expiring_in_5_days(https_server: WebServer, certs: dict[str, tuple[Path, Path]]) -> None:
    ca = str(certs["short"][0])
    expiring = run(probe_tls("127.0.0.1", https_server.port, TlsExpect(ca_file=ca), timeout=3))
    assert (expiring.success, expiring.reason) == (False, "cert_expiring")
    assert 5 * 86400 - 600 < expiring.fields["tls_cert_expiry_seconds"] <= 5 * 86400
    assert (expiring.fields["tls_cert_chain_valid"], expiring.fields["tls_cert_hostname_match"],
            expiring.fields["tls_version"]) == (1, 1, 1.3)
    assert run(probe_tls("127.0.0.1", https_server.port, TlsExpect(min_days_valid=4, ca_file=ca), timeout=3)).success
    untrusted = run(probe_tls("127.0.0.1", https_server.port, timeout=3))
    assert (untrusted.reason, untrusted.detail, untrusted.fields["tls_cert_chain_valid"]) == (
        "cert_invalid", "certificate chain invalid: self-signed certificate", 0)
    assert untrusted.fields["tls_cert_expiry_seconds"] > 5 * 86400 - 600  # expiry is known for a bad chain too
    mismatch = run(probe_tls("127.0.0.1", https_server.port,
                             TlsExpect(min_days_valid=1, ca_file=ca, server_name="other.egov.test"), timeout=3))
    assert (mismatch.reason, mismatch.fields["tls_cert_hostname_match"]) == ("cert_hostname_mismatch", 0)


def test_tls_failures_are_results(http_server: WebServer, closed_port: int, silent_port: int) -> None:
    assert run(probe_tls("127.0.0.1", http_server.port, timeout=3)).reason == "tls_handshake_failed"
    assert run(probe_tls("127.0.0.1", closed_port, timeout=3)).reason == "connection_refused"
    assert run(probe_tls("127.0.0.1", silent_port, timeout=0.3)).reason == "timeout"


# -- DNS ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expect", "success", "reason", "rcode"), [
    ("www.egov.test", DnsExpect(records=("10.9.8.7", "10.9.8.8")), True, "ok", 0),
    ("portal.egov.test", DnsExpect(records=("10.9.8.7",)), True, "ok", 0),  # through the CNAME
    ("www.egov.test", DnsExpect(records=("10.9.8.9",)), False, "records_mismatch", 0),
    ("gone.egov.test", DnsExpect(), False, "nxdomain", 3),
    ("gone.egov.test", DnsExpect(rcode="NXDOMAIN"), True, "ok", 3),
    ("elsewhere.example", DnsExpect(), False, "refused", 5),
])
def test_dns_answers(dns_server: Dns, name: str, expect: DnsExpect, success: bool, reason: str, rcode: int) -> None:
    result = run(probe_dns(name, dns_server.server, expect, timeout=2))
    assert (result.success, result.reason, result.fields["dns_rcode"]) == (success, reason, rcode)
    assert 0 < result.fields["dns_response_seconds"] < 2


def test_dns_upstream_silent_is_a_timeout(dns_server: Dns) -> None:
    result = run(probe_dns("x.broken.test", dns_server.server, timeout=0.5))
    assert (result.success, result.reason, result.detail) == (False, "timeout", "no answer within 0.5 s")


def test_cli_text_is_chinese_by_default(closed_port: int) -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "probe", "tcp", f"127.0.0.1:{closed_port}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert (done.returncode, done.stdout.splitlines()[0]) == (
        1, f"异常  tcp 127.0.0.1:{closed_port}: 连接被拒绝(RST) (connection refused (RST))")


def test_cli_text_in_english_lists_the_duration_fields_and_phases(http_server: WebServer) -> None:
    done = subprocess.run([sys.executable, "-m", "cli", "probe", "http", f"http://127.0.0.1:{http_server.port}/", "--lang", "en"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and lines[0].startswith(f"UP  http http://127.0.0.1:{http_server.port}/: "), done.stdout
    assert lines[1].startswith("  duration: ") and lines[1].endswith(" ms")
    assert any(line.startswith("  http_status_code: 200") for line in lines[2:]), lines
    assert any(line.startswith("  phase_") and "_seconds: " in line for line in lines[2:]), lines
