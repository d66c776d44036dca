"""The scheduled side and the CLI against the same real loopback servers: the ProbesCollector with a
configuration (due checks, allowed ranges, state changes), website discovery, and `egovmon probe --json`."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.settings import AgentSettings
from core.collect import LOCAL
from probes.collector import ProbesCollector
from probes.errors import OutOfRangeError
from probes.safety import AllowedRanges
from probes.settings import ProbesSettings
from probes.website import discover
from tests.probes.conftest import CERT_NAME, Dns
from tests.probes.servers import SERVER_HEADER, WebServer

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _settings(http_server: WebServer, https_server: WebServer, dns_server: Dns, ca: str) -> ProbesSettings:
    return ProbesSettings.model_validate({
        "allowed_ranges": ["127.0.0.0/8"],
        "rate_limit_per_second": 100,
        "checks": [
            {"name": "portal", "kind": "http", "target": f"{http_server.url}/hop/1", "interval_seconds": 60,
             "expect": {"body_regex": "欢迎"}},
            {"name": "portal-tls", "kind": "tls", "target": f"127.0.0.1:{https_server.port}", "interval_seconds": 300,
             "expect": {"ca_file": ca, "server_name": CERT_NAME}},
            {"name": "dns-gone", "kind": "dns", "target": "gone.egov.test", "interval_seconds": 60,
             "expect": {"dns_server": dns_server.server}},
            {"name": "outside", "kind": "tcp", "target": "192.0.2.10:80", "interval_seconds": 60},
            {"name": "no-iface", "kind": "arp", "target": "127.0.0.0/30", "interval_seconds": 60,
             "expect": {"interface": "egp6-none"}},
        ],
    })


def test_collector_runs_due_checks_and_reports_state_changes(
        http_server: WebServer, https_server: WebServer, dns_server: Dns, certs: dict[str, tuple[Path, Path]]) -> None:
    clock = [1000.0]
    collector = ProbesCollector(_settings(http_server, https_server, dns_server, str(certs["short"][0])),
                                clock=lambda: NOW, monotonic=lambda: clock[0])

    async def go() -> list:
        readings = [await collector.collect(LOCAL, timeout=30)]
        clock[0] += 61  # every check but the 300 s TLS one is due again
        readings.append(await collector.collect(LOCAL, timeout=30))
        readings.append(await collector.collect(LOCAL, timeout=30))  # nothing due
        await collector.aclose()
        return readings

    first, second, third = asyncio.run(go())
    success = {s.tags["check"]: s.fields["success"] for s in first.samples if s.measurement == "probe"}
    assert success == {"portal": 1, "portal-tls": 0, "dns-gone": 0, "outside": 0, "no-iface": 0}
    states = {o.subject: (o.attributes["previous"], o.attributes["state"], o.attributes["reason"])
              for o in first.observations if o.kind == "probe_state"}
    assert states == {"portal": ("unknown", "up", "ok"), "portal-tls": ("unknown", "down", "cert_expiring"),
                      "dns-gone": ("unknown", "down", "nxdomain"), "outside": ("unknown", "down", "out_of_range"),
                      "no-iface": ("unknown", "down", "interface_error")}
    portal = next(s for s in first.samples if s.measurement == "probe" and s.tags["check"] == "portal")
    assert (portal.fields["http_status_code"], portal.fields["http_redirects"], portal.timestamp) == (200, 1, NOW)
    assert {s.tags["phase"] for s in first.samples if s.measurement == "probe_http"} == {
        "resolve", "connect", "processing", "transfer"}
    assert sorted({s.tags["check"] for s in second.samples}) == ["dns-gone", "no-iface", "outside", "portal"]
    assert [o for o in second.observations if o.kind == "probe_state"] == []  # no state changed
    assert (third.samples, third.observations) == ((), ())


def test_probes_schedule_is_off_by_default() -> None:
    settings = AgentSettings()
    assert (settings.collectors.probes.enabled, settings.probes.allowed_ranges, settings.probes.checks) == (False, [], [])
    with pytest.raises(ValueError, match="kind dns needs expect.dns_server"):
        ProbesSettings.model_validate({"checks": [{"name": "d", "kind": "dns", "target": "a.test"}]})


def test_website_discovery_finds_title_server_and_certificate(http_server: WebServer, https_server: WebServer,
                                                              ) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    result = asyncio.run(discover("127.0.0.1/32", allowed=AllowedRanges.parse(["127.0.0.0/8"]),
                                  ports=(http_server.port, https_server.port, closed), timeout=2))
    found = {f.subject: dict(f.attributes) for f in result.findings}
    assert found[f"http://127.0.0.1:{http_server.port}/"] == {
        "status": 200, "title": "某区 专题网站", "server": SERVER_HEADER, "tls": False, "cert_subject": "",
        "cert_issuer": "", "cert_not_after": ""}
    tls_site = found[f"https://127.0.0.1:{https_server.port}/"]
    assert (tls_site["title"], tls_site["tls"], tls_site["cert_subject"]) == (
        "某区 专题网站", True, "O=egovmon test,CN=www.egov.test")
    assert len(found) == 2 and result.fields["website_services"] == 2


def test_website_discovery_refuses_outside_ranges() -> None:
    with pytest.raises(OutOfRangeError, match="website discovery of 127.0.0.0/24 is outside the allowed ranges"):
        asyncio.run(discover("127.0.0.0/24", allowed=AllowedRanges.parse(["10.0.0.0/8"])))


def cli(*args: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "cli", "probe", *args, "--json"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    return done.returncode, json.loads(done.stdout)


def test_cli_one_shot_checks_print_one_json_document(https_server: WebServer, dns_server: Dns,
                                                     certs: dict[str, tuple[Path, Path]]) -> None:
    code, document = cli("http", f"{https_server.url}/", "--ca-file", str(certs["short"][0]))
    assert (code, document["success"], document["fields"]["http_status_code"]) == (0, True, 200)
    code, document = cli("tls", f"127.0.0.1:{https_server.port}", "--lang", "en")
    assert (code, document["state"], document["reason"], document["reason_text"]) == (
        1, "down", "cert_invalid", "certificate invalid (chain verification failed)")
    code, document = cli("dns", "www.egov.test", "--server", dns_server.server, "--expect", "10.9.8.7")
    assert (code, document["reason"], document["fields"]["dns_answer_rrs"]) == (0, "ok", 1)
    code, document = cli("website", "127.0.0.0/24", "--allow", "10.0.0.0/8")
    assert (code, document["error"]) == (2, "OutOfRangeError")


def test_agent_builds_the_probes_job_from_its_settings() -> None:
    from agent.runtime import default_jobs

    settings = AgentSettings(collectors={"probes": {"enabled": True}},
                             probes={"allowed_ranges": ["127.0.0.0/8"], "checks": [
                                 {"name": "self", "kind": "tcp", "target": "127.0.0.1:9"}]})
    jobs = [job for job in default_jobs(settings) if job.name == "probes"]
    assert len(jobs) == 1 and isinstance(jobs[0].collector, ProbesCollector)
    assert [check.name for check in jobs[0].collector.settings.checks] == ["self"]
