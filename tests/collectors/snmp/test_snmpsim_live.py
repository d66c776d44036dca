"""The poller against snmpsim serving the real device recordings (Huawei, H3C, Cisco, Juniper, Linux,
FortiGate, Palo Alto, Hillstone): what comes over the wire equals what the recording says."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collectors.snmp.engine import Device, UdpEngine
from collectors.snmp.modules import DEFAULT_MODULES, SYSTEM, TABLES
from collectors.snmp.poller import Poller, PollResult
from collectors.snmp.snapshot import build
from tests.collectors.snmp.snmprec import read, subtree
from tests.services import Snmpsim


def _expected(path: Path) -> dict:
    varbinds = read(path)
    walks = {"system": subtree(varbinds, SYSTEM)}
    walks.update({name: subtree(varbinds, table.entry) for name, table in TABLES.items()})
    return build(walks)


def test_every_recording_polled_over_snmp_equals_the_recording(snmpsim: Snmpsim, served: dict[str, Path]) -> None:
    async def run() -> list[PollResult]:
        engine = UdpEngine()
        try:
            poller = Poller(engine, max_concurrency=4)
            devices = [(Device(name, "127.0.0.1", snmpsim.port, community=name, timeout_seconds=5), DEFAULT_MODULES)
                       for name in served]
            return await poller.poll_many(devices, deadline_seconds=60)
        finally:
            engine.close()

    results = asyncio.run(run())
    assert len(results) == len(served) >= 4
    for result, (name, path) in zip(results, served.items(), strict=True):
        assert result.status.up, f"{name}: {result.status.error}"
        got, expected = result.snapshot, _expected(path)
        assert got is not None
        if name == "snmpsimdata_h3c-e528-2_subset":  # sysUpTime is an snmpsim variation (a running clock)
            assert got["system"]["uptime_ticks"] >= expected["system"]["uptime_ticks"]
            got["system"]["uptime_ticks"] = expected["system"]["uptime_ticks"]
        for section in expected:
            assert got[section] == expected[section], f"{name}: {section} differs"
