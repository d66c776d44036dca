"""The agent's SNMP collector built from settings, against snmpd (v2c + v3) with traps and discovery; the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from agent.runtime import COLLECTORS
from agent.settings import AgentSettings
from cli.main import app
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.settings import SnmpDeviceSettings, SnmpSettings
from core.collect import LOCAL, Reading
from core.models import Batch
from tests.services import Snmpd


def _settings(snmpd: Snmpd) -> SnmpSettings:
    auth, auth_key, priv, priv_key = snmpd.users["egovmon-sha256"]
    return SnmpSettings.model_validate({
        "devices": [
            {"name": "core-v2c", "address": "127.0.0.1", "port": snmpd.port, "community": snmpd.community},
            {"name": "core-v3", "address": "127.0.0.1", "port": snmpd.port, "version": "3", "user": "egovmon-sha256",
             "auth_protocol": "SHA256", "auth_key": auth_key, "priv_protocol": "AES256", "priv_key": priv_key,
             "modules": ["interfaces"]},
            {"name": "gone", "address": "127.0.0.1", "port": 9, "community": "egovmon-ro", "timeout_seconds": 0.2,
             "retries": 0},
        ],
        "discovery_ranges": ["127.0.0.0/8"],
        "traps": {"enabled": True, "listen_host": "127.0.0.1", "listen_port": 0, "communities": ["egovmon-trap"]},
    })


def test_collector_polls_devices_reports_status_and_traps(snmpd: Snmpd) -> None:
    collector = SnmpCollector(_settings(snmpd))

    async def run() -> tuple[Reading, Reading]:
        try:
            first = await collector.collect(LOCAL, timeout=20)
            assert collector.receiver is not None
            port = collector.receiver.address[1]
            await asyncio.to_thread(subprocess.run, ["snmptrap", "-v2c", "-c", "egovmon-trap", f"127.0.0.1:{port}", "",
                                                     "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.2", "i", "2"],
                                    check=True, timeout=10)
            for _ in range(100):
                if collector.receiver.received:
                    break
                await asyncio.sleep(0.02)
            second = await collector.collect(LOCAL, timeout=20)
            return first, second
        finally:
            collector.close()

    first, second = asyncio.run(run())
    status = {s.tags["device"]: s.fields for s in first.samples if s.measurement == "snmp_device"}
    assert {name: fields["up"] for name, fields in status.items()} == {"core-v2c": 1, "core-v3": 1, "gone": 0}
    assert status["gone"]["error_kind"] == "SnmpTimeoutError"
    assert status["core-v2c"]["last_error"] == ""
    interfaces = {(s.tags["device"], s.tags["if_name"]) for s in first.samples if s.measurement == "snmp_interface"}
    assert ("core-v2c", "lo") in interfaces and ("core-v3", "lo") in interfaces
    kinds = {o.kind for o in first.observations}
    assert {"snmp_device", "interface", "interface_address", "route"} <= kinds
    assert not [o for o in first.observations if o.kind == "snmp_trap"]
    traps = [o for o in second.observations if o.kind == "snmp_trap"]
    assert [(o.subject, o.attributes["event"], o.attributes["if_index"]) for o in traps] == [("127.0.0.1", "link_down", 2)]
    # everything the collector produced passes the server's validation
    Batch(batch_id="b1", samples=list(first.samples), observations=list(first.observations))


def test_agent_builds_the_snmp_collector_from_its_settings(snmpd: Snmpd, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = AgentSettings(state_dir=tmp_path, snmp=_settings(snmpd))
    assert settings.collectors.snmp.enabled is False  # off unless configured
    assert isinstance(COLLECTORS["snmp"](settings), SnmpCollector)


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "a", "address": "10.0.0.1"}, "needs community"),
    ({"name": "a", "address": "10.0.0.1", "community": "public"}, "default community"),
    ({"name": "a", "address": "10.0.0.1", "version": "3"}, "needs user"),
    ({"name": "a", "address": "10.0.0.1", "version": "3", "user": "u", "auth_key": "short"}, "at least 8"),
])
def test_device_settings_refuse_bad_credentials(entry: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SnmpDeviceSettings.model_validate(entry)


def test_secrets_are_hidden_in_settings_output(snmpd: Snmpd) -> None:
    dumped = _settings(snmpd).model_dump_json()
    assert snmpd.community not in dumped and "privpass256" not in dumped


def test_cli_poll_json(snmpd: Snmpd) -> None:
    result = CliRunner().invoke(app, ["snmp", "poll", f"127.0.0.1:{snmpd.port}", "--community", snmpd.community,
                                      "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["device"] == f"127.0.0.1:{snmpd.port}"
    assert body["status"]["up"] is True
    assert {"system", "interfaces", "addresses", "routes", "arp", "lldp"} <= set(body)
    assert "lo" in [i["name"] for i in body["interfaces"]]
    assert "hc_in_octets_total" in body["interfaces"][0]["counters"]


def test_cli_poll_v3_and_failure(snmpd: Snmpd) -> None:
    _auth, auth_key, _priv, priv_key = snmpd.users["egovmon-sha"]
    ok = CliRunner().invoke(app, ["snmp", "poll", f"127.0.0.1:{snmpd.port}", "--v3-user", "egovmon-sha",
                                  "--auth-proto", "SHA", "--auth-key", auth_key, "--priv-proto", "AES",
                                  "--priv-key", priv_key, "--modules", "interfaces", "--lang", "en"])
    assert ok.exit_code == 0, ok.output
    assert "interfaces" in ok.stdout and "polled in" in ok.stdout
    down = CliRunner().invoke(app, ["snmp", "poll", f"127.0.0.1:{snmpd.port}", "--community", "wrong", "--timeout",
                                    "0.2", "--retries", "0", "--json"])
    assert down.exit_code == 1
    assert json.loads(down.stdout)["status"]["error_kind"] == "SnmpTimeoutError"


def test_cli_traps_prints_one_json_line_per_trap() -> None:
    import re
    import signal
    import sys

    process = subprocess.Popen([sys.executable, "-m", "cli", "snmp", "traps", "--host", "127.0.0.1", "--port", "0",
                                "--community", "egovmon-trap", "--lang", "en"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[3])
    try:
        assert process.stderr is not None and process.stdout is not None
        banner = _line(process.stderr)
        port = int(re.search(r"127\.0\.0\.1:(\d+)", banner).group(1))  # type: ignore[union-attr]
        subprocess.run(["snmptrap", "-v2c", "-c", "egovmon-trap", f"127.0.0.1:{port}", "", "1.3.6.1.6.3.1.1.5.4",
                        "1.3.6.1.2.1.2.2.1.1.5", "i", "5"], check=True, timeout=10)
        event = json.loads(_line(process.stdout))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(10)
    assert (event["event"], event["severity"], event["if_index"], event["source"]) == ("link_up", "info", 5, "127.0.0.1")


def _line(stream, timeout: float = 15.0) -> str:  # type: ignore[no-untyped-def]
    """One line from a child's pipe, failing instead of hanging when none comes in time."""
    import select

    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no output from the child in time"
    return str(stream.readline())


def test_a_dead_trap_receiver_is_restarted_on_its_port_and_counted_in_metrics(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """pysnmp's dispatcher timer dies once (as a bug in it would): the receiver is replaced and keeps receiving."""
    from prometheus_client import CollectorRegistry, generate_latest
    from pysnmp.carrier.base import AbstractTransportDispatcher

    from agent.metrics import AgentMetrics
    from collectors.snmp.collector import TRAP_WORKER
    from core.supervise import Workers
    from tests.services import require_program

    require_program("snmptrap")  # skipped when missing, failed when CI=true
    settings = SnmpSettings.model_validate({"traps": {"enabled": True, "listen_host": "127.0.0.1", "listen_port": 0,
                                                      "communities": ["egovmon-trap"]}})
    workers = Workers()
    collector = SnmpCollector(settings, workers=workers)
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    metrics.watch_workers(registry, workers)
    metrics.watch_snmp(registry, collector)
    real_tick = AbstractTransportDispatcher.handle_timer_tick
    ticks = {"failed": 0}

    def failing_once(self, now):  # type: ignore[no-untyped-def]
        if not ticks["failed"]:
            ticks["failed"] = 1
            raise RuntimeError("injected: the dispatcher timer died")
        return real_tick(self, now)

    async def trap(port: int, if_index: int) -> None:
        await asyncio.to_thread(subprocess.run, ["snmptrap", "-v2c", "-c", "egovmon-trap", f"127.0.0.1:{port}", "",
                                                 "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.2", "i", str(if_index)],
                                check=True, timeout=10)

    async def until(condition) -> None:  # type: ignore[no-untyped-def]
        for _ in range(500):
            if condition():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("condition not reached in 10 s")

    async def run() -> tuple[int, int, Reading, bytes]:
        try:
            await collector.collect(LOCAL, timeout=5)
            assert collector.receiver is not None
            first = collector.receiver
            port = first.address[1]
            await until(lambda: first.alive)
            monkeypatch.setattr(AbstractTransportDispatcher, "handle_timer_tick", failing_once)
            await until(lambda: workers.restarts(TRAP_WORKER) == 1)
            await until(lambda: collector.receiver is not None and collector.receiver.alive)
            assert collector.receiver is not first and not first.alive
            await trap(port, 7)
            await until(lambda: collector.stats().traps_received == 1)
            reading = await collector.collect(LOCAL, timeout=5)
            return port, collector.receiver.address[1], reading, generate_latest(registry)
        finally:
            collector.close()

    port, port_after, reading, exposition = asyncio.run(run())
    assert port_after == port  # agents and devices are configured with this port: the replacement binds it again
    traps = [(o.attributes["event"], o.attributes["if_index"]) for o in reading.observations if o.kind == "snmp_trap"]
    assert traps == [("link_down", 7)]
    text = exposition.decode()
    assert f'egovmon_agent_worker_restarts_total{{worker="{TRAP_WORKER}"}} 1.0' in text
    assert "egovmon_snmp_traps_received_total 1.0" in text
    assert "egovmon_snmp_dropped_events_total 0.0" in text
    assert ticks["failed"] == 1
