"""Trap and inform reception: net-snmp's snmptrap/snmpinform send, our receiver turns them into events."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime

from collectors.snmp.traps import Event, TrapReceiver, TrapUser, event_from_varbinds
from tests.services import require_program

ENGINE_ID = "8000000001020304"
AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_link_down_varbinds_become_an_event() -> None:
    event = event_from_varbinds("10.0.0.9", [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), 12345),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 7), 7),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 7, 7), 1),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 8, 7), 2),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1, 7), b"GigabitEthernet0/0/7"),
    ], AT)
    assert (event.event, event.severity, event.if_index, event.interface, event.uptime_ticks) == (
        "link_down", "critical", 7, "GigabitEthernet0/0/7", 12345)
    sample = event.sample()
    assert sample.tags == {"device": "10.0.0.9", "event": "link_down", "severity": "critical"}
    assert sample.fields == {"received": 1, "trap_oid": "1.3.6.1.6.3.1.1.5.3", "if_index": 7}
    assert event.observation().attributes["interface"] == "GigabitEthernet0/0/7"


def test_unknown_enterprise_trap_names_its_vendor() -> None:
    event = event_from_varbinds("10.0.0.9", [((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), (1, 3, 6, 1, 4, 1, 25506, 2, 6, 2, 0, 1))], AT)
    assert (event.event, event.vendor, event.trap_oid, event.uptime_ticks) == (
        "vendor_trap", "h3c", "1.3.6.1.4.1.25506.2.6.2.0.1", -1)
    assert event_from_varbinds("x", [], AT).event == "trap"


def _send(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, timeout=15)


def test_traps_and_informs_from_net_snmp() -> None:
    require_program("snmptrap")  # skipped when missing, failed when CI=true

    async def run() -> tuple[list[Event], int]:
        events: list[Event] = []
        receiver = TrapReceiver("127.0.0.1", 0, communities=["egovmon-trap"], on_event=events.append,
                                users=[TrapUser("trapper", "SHA256", "authpass256", "AES256", "privpass256", ENGINE_ID)])
        await receiver.start()
        target = f"127.0.0.1:{receiver.address[1]}"
        v2 = ("snmptrap", "-v2c", "-c", "egovmon-trap", target, "")
        sends = [
            (*v2, "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.3", "i", "3", "1.3.6.1.2.1.2.2.1.2.3", "s", "eth3"),
            (*v2, "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.2.1.2.2.1.1.3", "i", "3"),
            (*v2, "1.3.6.1.6.3.1.1.5.1"),
            ("snmpinform", "-v2c", "-c", "egovmon-trap", "-t", "3", "-r", "1", target, "", "1.3.6.1.6.3.1.1.5.2"),
            ("snmptrap", "-v3", "-e", ENGINE_ID, "-u", "trapper", "-l", "authPriv", "-a", "SHA-256", "-A",
             "authpass256", "-x", "AES-256", "-X", "privpass256", target, "", "1.3.6.1.6.3.1.1.5.5"),
            ("snmptrap", "-v1", "-c", "egovmon-trap", target, "1.3.6.1.4.1.2011.5.25", "127.0.0.1", "6", "17", ""),
            ("snmptrap", "-v2c", "-c", "wrong-community", target, "", "1.3.6.1.6.3.1.1.5.3"),  # dropped
        ]
        try:
            for argv in sends:
                await asyncio.to_thread(_send, *argv)
                await _until(lambda: len(events) >= min(len(sends) - 1, sends.index(argv) + 1), 5)  # noqa: B023 - awaited within this iteration
            await asyncio.sleep(0.2)  # the wrong-community trap must not show up late either
            return events, receiver.received
        finally:
            receiver.stop()

    events, received = asyncio.run(run())
    assert [(e.event, e.severity) for e in events] == [
        ("link_down", "critical"), ("link_up", "info"), ("cold_start", "warning"), ("warm_start", "warning"),
        ("authentication_failure", "warning"), ("vendor_trap", "info")]
    assert received == 6
    assert (events[0].if_index, events[0].interface, events[0].source) == (3, "eth3", "127.0.0.1")
    assert events[5].vendor == "huawei"
    assert events[5].trap_oid == "1.3.6.1.4.1.2011.5.25.0.17"  # RFC 3584 §3.1: enterprise.0.specific


async def _until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("events did not arrive")
        await asyncio.sleep(0.02)
