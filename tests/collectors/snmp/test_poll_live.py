"""The poller against a real net-snmp snmpd on loopback (v2c, v3 authPriv SHA/AES-128 and SHA-256/AES-256),
with net-snmp's own tools as the reference, and against misbehaving agents."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from typing import Any

import pytest

from collectors.snmp.ber import GET_BULK, RESPONSE, VarBindException, decode_message, encode_get_bulk, encode_message
from collectors.snmp.engine import Device, PysnmpEngine, RoutingEngine, UdpEngine
from collectors.snmp.poller import Poller, PollResult
from collectors.snmp.walk import walk
from tests.services import Snmpd


def _walk_reference(snmpd: Snmpd, oid: str) -> dict[int, str]:
    """index → value of one IF-MIB column, by net-snmp's snmpbulkwalk (-Oqn: numeric OID, bare value)."""
    done = subprocess.run(["snmpbulkwalk", "-v2c", "-c", snmpd.community, "-Oqn", "-Oe", "-Ot",
                           f"127.0.0.1:{snmpd.port}", oid], capture_output=True, text=True, check=True)
    out = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        out[int(name.rsplit(".", 1)[1])] = value.strip().strip('"')
    return out


def _poll(devices: list[Device], modules: tuple[str, ...] = ("interfaces", "addresses", "routes", "arp"),
          **kwargs: Any) -> list[PollResult]:
    async def run() -> list[PollResult]:
        engine = RoutingEngine()
        try:
            return await Poller(engine, **kwargs).poll_many([(d, modules) for d in devices], deadline_seconds=20)
        finally:
            engine.close()

    return asyncio.run(run())


def v2c(snmpd: Snmpd, **kwargs: Any) -> Device:
    return Device("snmpd", "127.0.0.1", snmpd.port, community=snmpd.community, **kwargs)


def v3(snmpd: Snmpd, user: str, **kwargs: Any) -> Device:
    auth, auth_key, priv, priv_key = snmpd.users[user]
    values: dict[str, Any] = {"auth_protocol": auth.replace("-", ""), "auth_key": auth_key,
                              "priv_protocol": priv.replace("-", ""), "priv_key": priv_key, **kwargs}
    return Device(user, "127.0.0.1", snmpd.port, version="3", user=user, **values)


def test_v2c_interfaces_match_snmpbulkwalk_and_counters_are_raw(snmpd: Snmpd) -> None:
    before = _walk_reference(snmpd, "1.3.6.1.2.1.31.1.1.1.6")
    [result] = _poll([v2c(snmpd)])
    after = _walk_reference(snmpd, "1.3.6.1.2.1.31.1.1.1.6")
    assert result.status.up and result.status.error == ""
    snap = result.snapshot
    assert snap is not None
    assert {i["index"]: i["name"] for i in snap["interfaces"]} == _walk_reference(snmpd, "1.3.6.1.2.1.31.1.1.1.1")
    for iface in snap["interfaces"]:
        assert int(before[iface["index"]]) <= iface["counters"]["hc_in_octets_total"] <= int(after[iface["index"]])
    assert {"127.0.0.1"} <= {a["address"] for a in snap["addresses"]}
    assert result.status.varbinds == sum(len(v) for v in result.walks.values())


@pytest.mark.parametrize("user", ["egovmon-sha", "egovmon-sha256"])
def test_v3_auth_priv_gives_the_same_snapshot_as_v2c(snmpd: Snmpd, user: str) -> None:
    plain, secure = _poll([v2c(snmpd), v3(snmpd, user)], modules=("interfaces", "addresses", "routes"))
    assert secure.status.up, secure.status.error
    assert plain.snapshot is not None and secure.snapshot is not None
    assert [i["name"] for i in secure.snapshot["interfaces"]] == [i["name"] for i in plain.snapshot["interfaces"]]
    assert secure.snapshot["addresses"] == plain.snapshot["addresses"]
    assert secure.snapshot["routes"] == plain.snapshot["routes"]
    sys_name = subprocess.run(["snmpget", "-v2c", "-c", snmpd.community, "-Oqv", f"127.0.0.1:{snmpd.port}",
                               "1.3.6.1.2.1.1.5.0"], capture_output=True, text=True, check=True).stdout.strip()
    assert secure.snapshot["system"]["name"] == sys_name.strip('"')


def test_wrong_credentials_are_reported_per_device_and_do_not_stop_others(snmpd: Snmpd) -> None:
    auth, _key, priv, priv_key = snmpd.users["egovmon-sha"]
    wrong_auth = Device("bad-auth", "127.0.0.1", snmpd.port, version="3", user="egovmon-sha", auth_protocol="SHA",
                        auth_key="not-the-key", priv_protocol="AES", priv_key=priv_key, timeout_seconds=1, retries=0)
    unknown_user = Device("bad-user", "127.0.0.1", snmpd.port, version="3", user="nobody", auth_protocol="SHA",
                          auth_key="whatever1", priv_protocol="AES", priv_key="whatever2", timeout_seconds=1, retries=0)
    wrong_community = Device("bad-community", "127.0.0.1", snmpd.port, community="guess", timeout_seconds=0.3,
                             retries=1)
    good, bad_auth, bad_user, bad_community = _poll([v2c(snmpd), wrong_auth, unknown_user, wrong_community],
                                                    modules=("interfaces",))
    assert good.status.up and good.snapshot is not None
    assert (bad_auth.status.up, bad_auth.status.error_kind) == (False, "SnmpAuthError")
    assert "digest" in bad_auth.status.error.lower()
    assert (bad_user.status.up, bad_user.status.error_kind) == (False, "SnmpAuthError")
    assert (bad_community.status.up, bad_community.status.error_kind) == (False, "SnmpTimeoutError")
    assert "after 2 tries of 0.3 s" in bad_community.status.error
    assert 0.55 < bad_community.status.duration_seconds < 3
    sample = bad_community.status.sample()
    assert (sample.measurement, sample.fields["up"], sample.fields["error_kind"]) == ("snmp_device", 0, "SnmpTimeoutError")


def test_net_snmp_bulk_request_decodes_and_reencodes_byte_for_byte() -> None:
    """What snmpbulkget sends is what our encoder produces for the same request."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        tool = subprocess.Popen(["snmpbulkget", "-v2c", "-c", "egovmon", "-Cn0", "-Cr50", "-t", "1", "-r", "0",
                                 f"127.0.0.1:{port}", "1.3.6.1.2.1.2.2"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            datagram, _ = sock.recvfrom(65535)
        finally:
            tool.wait(10)
    message = decode_message(datagram)
    assert (message.pdu_type, message.community, message.error_index) == (GET_BULK, b"egovmon", 50)
    assert encode_get_bulk(b"egovmon", message.request_id, [(1, 3, 6, 1, 2, 1, 2, 2)], max_repetitions=50) == datagram


class BadAgent(asyncio.DatagramProtocol):
    """A misbehaving SNMP agent. A stand-in, because no real agent here can be made to misbehave on purpose:
    `mode` loop answers the OID asked for (never increasing), garbage sends random bytes, truncated cuts a
    good answer short, silent never answers."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.repetitions: list[int] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        request = decode_message(data)
        asked = request.varbinds[0][0]
        answer = encode_message(RESPONSE, request.community, request.request_id, [(asked + (1,), b"x"), (asked + (1,), b"again")])
        if self.mode == "loop":
            self.transport.sendto(answer, addr)
        elif self.mode == "garbage":
            self.transport.sendto(b"\x30\x82\xff\x00garbage" * 3, addr)
        elif self.mode == "truncated":
            self.transport.sendto(answer[: len(answer) // 2], addr)
        elif self.mode == "toobig":  # tooBig above 4 repetitions; then one row and the end of the MIB view
            self.repetitions.append(request.error_index)
            if request.error_index > 4:
                self.transport.sendto(encode_message(RESPONSE, request.community, request.request_id,
                                                     request.varbinds, error_status=1), addr)
            elif len(asked) == 4:
                self.transport.sendto(encode_message(RESPONSE, request.community, request.request_id,
                                                     [(asked + (1,), 42)]), addr)
            else:
                self.transport.sendto(encode_message(RESPONSE, request.community, request.request_id,
                                                     [(asked, VarBindException.END_OF_MIB_VIEW)]), addr)


@pytest.mark.parametrize(("mode", "kind", "words"), [
    ("loop", "NonIncreasingOidError", "not increasing"),
    ("garbage", "SnmpDecodeError", "malformed"),
    ("truncated", "SnmpDecodeError", "malformed"),
    ("silent", "SnmpTimeoutError", "no answer"),
])
def test_misbehaving_agents_are_reported_and_never_hang_the_poller(snmpd: Snmpd, mode: str, kind: str, words: str) -> None:
    async def run() -> list[PollResult]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: BadAgent(mode), local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        engine = UdpEngine()
        try:
            poller = Poller(engine, max_concurrency=2)
            return await poller.poll_many([
                (Device("bad", "127.0.0.1", port, community="x", timeout_seconds=0.3, retries=1), ("interfaces",)),
                (v2c(snmpd), ("interfaces",)),
            ], deadline_seconds=10)
        finally:
            engine.close()
            transport.close()

    bad, good = asyncio.run(run())
    assert (bad.status.up, bad.status.error_kind) == (False, kind)
    assert words in bad.status.error
    assert bad.snapshot is None
    assert good.status.up and good.snapshot is not None and good.snapshot["interfaces"]


def test_deadline_bounds_a_poll(snmpd: Snmpd) -> None:
    async def run() -> PollResult:
        engine = UdpEngine()
        try:
            device = Device("slow", "127.0.0.1", 9, community="x", timeout_seconds=5, retries=3)  # discard port
            return await Poller(engine).poll(device, ("interfaces",), deadline_seconds=0.5)
        finally:
            engine.close()

    result = asyncio.run(run())
    assert (result.status.up, result.status.error_kind) == (False, "SnmpTimeoutError")
    assert result.status.error == "poll of slow did not finish within 0.5 s"
    assert result.status.duration_seconds < 2


def test_too_big_halves_max_repetitions_until_the_agent_answers() -> None:
    async def run() -> tuple[list, list[int]]:
        loop = asyncio.get_running_loop()
        agent = BadAgent("toobig")
        transport, _ = await loop.create_datagram_endpoint(lambda: agent, local_addr=("127.0.0.1", 0))
        engine = UdpEngine()
        try:
            device = Device("small", "127.0.0.1", transport.get_extra_info("sockname")[1], community="x",
                            timeout_seconds=1, retries=0)
            return await walk(engine, device, (1, 3, 6, 1), max_repetitions=20), agent.repetitions
        finally:
            engine.close()
            transport.close()

    found, asked = asyncio.run(run())
    assert found == [((1, 3, 6, 1, 1), 42)]
    assert asked == [20, 10, 5, 2, 2]


@pytest.mark.parametrize("user", ["egovmon-sha", "egovmon-sha256"])
def test_pysnmp_engine_and_our_usm_engine_agree(snmpd: Snmpd, user: str) -> None:
    """The same v3 walk through pysnmp 7 (the reference, and the fallback engine) and through our USM codec."""
    async def run() -> tuple[list, list]:
        ours, theirs = UdpEngine(), PysnmpEngine()
        try:
            device = v3(snmpd, user)
            return (await walk(ours, device, (1, 3, 6, 1, 2, 1, 2)), await walk(theirs, device, (1, 3, 6, 1, 2, 1, 2)))
        finally:
            ours.close()
            theirs.close()

    ours, theirs = asyncio.run(run())
    assert [oid for oid, _ in ours] == [oid for oid, _ in theirs]
    assert len(ours) > 20
    static = [(oid, value) for oid, value in ours if len(oid) == 11 and oid[9] in (2, 3, 4, 6)]  # descr, type, mtu, mac
    assert static == [(oid, value) for oid, value in theirs if len(oid) == 11 and oid[9] in (2, 3, 4, 6)]
    assert len(static) >= 8


def test_wrong_priv_key_times_out_with_a_hint(snmpd: Snmpd) -> None:
    _auth, auth_key, _priv, _key = snmpd.users["egovmon-sha"]
    device = Device("bad-priv", "127.0.0.1", snmpd.port, version="3", user="egovmon-sha", auth_protocol="SHA",
                    auth_key=auth_key, priv_protocol="AES", priv_key="not-the-priv-key", timeout_seconds=0.3, retries=0)
    [result] = _poll([device], modules=("interfaces",))
    assert (result.status.up, result.status.error_kind) == (False, "SnmpTimeoutError")
    assert result.status.error.endswith("(down, filtered, or a wrong priv key)")


def test_v3_engine_state_is_bounded_least_recently_used_first_and_rediscovered(snmpd: Snmpd) -> None:
    """Three v3 devices through an engine that keeps two engines' keys: each eviction is counted, and an evicted
    device is discovered again on its next request (its poll still succeeds)."""
    import dataclasses

    devices = [dataclasses.replace(v3(snmpd, "egovmon-sha256"), name=f"core-{n}") for n in range(3)]

    async def run() -> list[int]:
        engine = UdpEngine(max_engines=2)
        try:
            sizes = []
            for device in [*devices, devices[0]]:  # the fourth request needs core-0 again, evicted by core-2
                varbinds = await engine.get(device, [(1, 3, 6, 1, 2, 1, 1, 3, 0)])
                assert isinstance(varbinds[0][1], int)  # sysUpTime answered
                sizes.append(engine.evicted_engines)
            return sizes
        finally:
            engine.close()

    assert asyncio.run(run()) == [0, 0, 1, 2]


def test_garbage_from_many_sources_is_counted_in_a_bounded_table() -> None:
    engine = UdpEngine(max_malformed_sources=3)
    for n in range(10):
        engine.datagram(b"\x30\x03\x02\x01", (f"127.0.0.{n + 1}", 161))  # truncated: not a message
    engine.datagram(b"\x04\x00", ("127.0.0.1", 161))
    assert engine.malformed == {"127.0.0.1": 2, "127.0.0.2": 1, "127.0.0.3": 1, "other": 7}
