"""Fixtures of the probe tests: an HTTPS server whose self-signed certificate expires in 5 days, a plain
HTTP server, and dnsmasq as a DNS server on loopback. A missing program skips (fails when CI=true)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest

from tests.probes.servers import WebServer, make_cert, start_dnsmasq, start_web
from tests.services import BinaryMissingError, ServerProcess, _free_udp_port

CERT_NAME = "www.egov.test"


def skip_or_fail(message: str) -> None:
    """Skip the test, or fail it in CI where every component must be installed."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (required when CI=true)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Self-signed certificates: `short` (5 days left, SAN www.egov.test and 127.0.0.1)."""
    directory = tmp_path_factory.mktemp("certs")
    return {"short": make_cert(directory, common_name=CERT_NAME, dns_names=[CERT_NAME], ips=["127.0.0.1"],
                               valid_days=5)}


@pytest.fixture(scope="session")
def https_server(certs: dict[str, tuple[Path, Path]]) -> Iterator[WebServer]:
    server = start_web(certs["short"])
    yield server
    server.stop()


@pytest.fixture(scope="session")
def http_server() -> Iterator[WebServer]:
    server = start_web()
    yield server
    server.stop()


@dataclass
class Dns:
    port: int
    process: ServerProcess

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"


DNS_RECORDS = ["--host-record=www.egov.test,10.9.8.7", "--host-record=www.egov.test,10.9.8.8",
               "--address=/gone.egov.test/", "--cname=portal.egov.test,www.egov.test"]


@pytest.fixture(scope="session")
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dns]:
    """dnsmasq answering for egov.test on 127.0.0.1; `broken.test` is forwarded to a closed port (SERVFAIL)."""
    port = _free_udp_port()
    closed = _free_udp_port()
    try:
        process = start_dnsmasq(tmp_path_factory.mktemp("dns"), port, [
            "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
            f"--server=/broken.test/127.0.0.1#{closed}", *DNS_RECORDS])
    except BinaryMissingError as exc:
        skip_or_fail(str(exc))

    def answers() -> bool:
        try:
            dns.query.udp(dns.message.make_query("www.egov.test", "A"), "127.0.0.1", port=port, timeout=0.5)
        except (dns.exception.DNSException, OSError):
            return False
        return True

    process.wait_ready(answers)
    yield Dns(port, process)
    process.stop()
