"""The agent over real TLS (issue 14): a private CA file, a certificate pin, untrusted certificates, cleartext refused.

The server is the real `egovmon` app under uvicorn with a certificate for 127.0.0.1 signed by a CA
made here with the `cryptography` package.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from agent.runtime import EnrollmentError, build, enroll
from agent.scheduler import Job
from agent.settings import AgentSettings, ScheduleSettings, load_agent_settings
from agent.transport import CLEARTEXT_WARNING, InsecureServerError, check_server_url
from cli.main import app as cli_app
from tests.agent.test_agent import CountingCollector, running
from tests.services import wait_until

REPO = Path(__file__).resolve().parents[2]
FAST_SHIPPING = {"flush_interval_seconds": 0.2, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5, "timeout_seconds": 5}


def agent_settings(state_dir: Path, *, shipper: dict | None = None) -> AgentSettings:
    return load_agent_settings(None, state_dir=state_dir, metrics={"listen": None}, shipper={**FAST_SHIPPING, **(shipper or {})})


@dataclass
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path
    cert_sha256: str
    rogue_ca_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common_name)).issuer_name(_name(common_name))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("egovmon test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _, rogue = _ca("some other CA")
    paths = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key",
                hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(), directory / "rogue-ca.pem")
    paths.ca_file.write_bytes(_pem(ca_cert))
    paths.rogue_ca_file.write_bytes(_pem(rogue))
    paths.cert_file.write_bytes(_pem(cert))
    paths.key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    os.chmod(paths.key_file, 0o600)
    return paths


@dataclass
class TlsServer:
    url: str
    admin: dict[str, str]
    ca_file: Path

    def enrollment_token(self) -> str:
        with httpx.Client(base_url=self.url, headers=self.admin, verify=ssl.create_default_context(cafile=self.ca_file)) as client:
            agency = client.post("/api/v1/agencies", json={"code": f"tls{os.urandom(3).hex()}", "name": "测试"})
            assert agency.status_code == 201, agency.text
            token = client.post("/api/v1/enrollment-tokens", json={"agency_id": agency.json()["id"]})
            assert token.status_code == 201, token.text
            return str(token.json()["token"])

    def counter_values(self, host_id: int) -> list[int]:
        response = httpx.get(f"{self.url}/api/v1/hosts/{host_id}/history", params={"measurement": "test_counter"},
                             headers=self.admin, verify=ssl.create_default_context(cafile=self.ca_file))
        return [p["fields"]["value"] for p in response.json()] if response.status_code == 200 else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    workdir = tmp_path_factory.mktemp("tls-server")
    config = workdir / "egovmon.yaml"
    config.write_text(f"data_dir: {workdir / 'data'}\ntsdb: {{kind: none}}\n")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "server.asgi:app_from_environment", "--host", "127.0.0.1",
         "--port", str(port), "--ssl-keyfile", str(pki.key_file), "--ssl-certfile", str(pki.cert_file), "--log-level", "warning"],
        cwd=REPO, env={**os.environ, "EGOVMON_CONFIG_FILE": str(config)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"https://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read())
        try:
            return httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=pki.ca_file), timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, 30, "egovmon server with TLS")
        token = (workdir / "data" / "initial-admin-token").read_text().strip()
        yield TlsServer(url, {"Authorization": f"Bearer {token}"}, pki.ca_file)
    finally:
        process.terminate()
        process.wait(20)


def test_the_agent_enrols_and_ships_over_tls_with_its_ca_file_and_pin_and_keeps_its_state_private(tmp_path, pki, tls_server, caplog):
    state = tmp_path / "agent"
    settings = agent_settings(state, shipper={"ca_file": str(pki.ca_file), "pin_sha256": pki.cert_sha256.upper()})
    credential = enroll(tls_server.url, tls_server.enrollment_token(), hostname="tls-host", state_dir=state,
                        shipper=settings.shipper)
    assert (state.stat().st_mode & 0o777, (state / "credential.json").stat().st_mode & 0o777) == (0o700, 0o600)
    os.chmod(state, 0o755)  # loosened by hand: the agent tightens it again at start, and says so
    os.chmod(state / "credential.json", 0o644)
    counter = CountingCollector(limit=5)
    agent = build(settings, jobs=[Job(counter, ScheduleSettings(interval_seconds=0.1, jitter_seconds=0, timeout_seconds=1))])
    with caplog.at_level(logging.WARNING, logger="agent.runtime"), running(agent):
        wait_until(lambda: tls_server.counter_values(credential.host_id) == [1, 2, 3, 4, 5], 30, "all five values over TLS")
    assert (state.stat().st_mode & 0o777, (state / "credential.json").stat().st_mode & 0o777) == (0o700, 0o600)
    assert {r.args[0] for r in caplog.records if "tightened" in r.getMessage()} >= {state, state / "credential.json"}


def test_a_wrong_pin_is_refused_before_the_token_is_sent(tmp_path, pki, tls_server):
    token = tls_server.enrollment_token()
    wrong = agent_settings(tmp_path / "a", shipper={"ca_file": str(pki.ca_file), "pin_sha256": "ab" * 32}).shipper
    with pytest.raises(EnrollmentError, match="pinned"):
        enroll(tls_server.url, token, hostname="tls-pin", state_dir=tmp_path / "a", shipper=wrong)
    assert not (tmp_path / "a" / "credential.json").exists()
    right = agent_settings(tmp_path / "b", shipper={"ca_file": str(pki.ca_file), "pin_sha256": pki.cert_sha256}).shipper
    credential = enroll(tls_server.url, token, hostname="tls-pin", state_dir=tmp_path / "b", shipper=right)
    assert credential.hostname == "tls-pin"  # the one-time token was still unused: the refused attempt sent nothing


def test_a_wrong_pin_keeps_the_agents_batches_on_disk(tmp_path, pki, tls_server):
    state = tmp_path / "agent"
    good = agent_settings(state, shipper={"ca_file": str(pki.ca_file)})
    enroll(tls_server.url, tls_server.enrollment_token(), hostname="tls-keep", state_dir=state, shipper=good.shipper)
    settings = agent_settings(state, shipper={"ca_file": str(pki.ca_file), "pin_sha256": "cd" * 32})
    counter = CountingCollector(limit=3)
    agent = build(settings, jobs=[Job(counter, ScheduleSettings(interval_seconds=0.1, jitter_seconds=0, timeout_seconds=1))])
    with running(agent):
        wait_until(lambda: counter.value == 3 and len(agent.queue) >= 1 and (agent.registry.get_sample_value("egovmon_agent_ship_errors_total") or 0) >= 2,
                   20, "batches kept while the pin does not match")


@pytest.mark.parametrize("ca", ["none", "rogue"])
def test_a_certificate_from_an_untrusted_ca_is_refused(tmp_path, pki, tls_server, ca):
    shipper = agent_settings(tmp_path, shipper={"ca_file": str(pki.rogue_ca_file)} if ca == "rogue" else {}).shipper
    with pytest.raises(EnrollmentError, match="CERTIFICATE_VERIFY_FAILED"):
        enroll(tls_server.url, tls_server.enrollment_token(), hostname="tls-untrusted", state_dir=tmp_path, shipper=shipper)


def test_cleartext_to_another_host_is_refused_unless_insecure_and_the_warning_says_what_travels(tmp_path, caplog):
    with pytest.raises(InsecureServerError, match="enrolment token, this agent's credential and every metric"):
        enroll("http://192.0.2.2:8080", "egve_x", hostname="h", state_dir=tmp_path)  # refused before connecting
    for loopback in ("http://127.0.0.1:8080", "http://[::1]:8080", "http://localhost:8080", "https://192.0.2.2"):
        check_server_url(loopback, insecure=False)
    with caplog.at_level(logging.WARNING, logger="agent.transport"):
        check_server_url("http://192.0.2.2:8080", insecure=True)
    assert [r.getMessage() for r in caplog.records] == [
        CLEARTEXT_WARNING.format(url="http://192.0.2.2:8080") + " (allowed by --insecure)"
    ]
    result = CliRunner().invoke(cli_app, ["agent", "enroll", "--server", "http://192.0.2.2:8080", "--token", "egve_x",
                                          "--state-dir", str(tmp_path / "cli")])
    assert result.exit_code == 2 and "--insecure" in result.output and "credential" in result.output


def test_an_agent_with_a_cleartext_server_elsewhere_does_not_start_without_insecure(tmp_path):
    state = tmp_path / "agent"
    state.mkdir(mode=0o755)
    (state / "credential.json").write_text('{"server_url": "http://192.0.2.2:8080", "agent_id": 1, "agency_id": 1, '
                                           '"host_id": 1, "hostname": "h", "credential": "egva_x"}')
    with pytest.raises(InsecureServerError):
        build(agent_settings(state), jobs=[])
    assert build(agent_settings(state, shipper={"insecure_http": True}), jobs=[]) is not None
    assert build(agent_settings(state), jobs=[], insecure=True) is not None
