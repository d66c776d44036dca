"""SNMP transports behind one small interface (`walk.BulkEngine`): our asyncio UDP engine, and pysnmp 7.

Which engine carries what (chosen by bench/snmp.py, see its docstring and the numbers in the report):
- `UdpEngine`: SNMPv2c, and SNMPv3 USM (authPriv/authNoPriv with SHA, SHA-256, SHA-512, MD5 and
  AES-128/AES-256), over one asyncio UDP socket per address family shared by every device;
  requests are matched to answers by request-id (v2c) or msgID (v3) and source address. Our
  pure codecs (`ber`, `usm`) decode at a few µs per varbind, where pysnmp's pyasn1 takes ~80 µs.
- `PysnmpEngine`: what `usm` does not speak (noAuthNoPriv v3, DES, Cisco's AES-256 key
  extension), through pysnmp 7's command generators, without MIB lookups. pysnmp also receives traps.
- `RoutingEngine` sends each device to the right one.

Timeouts and retries are per request: a request is re-sent `retries` times, each
waiting `timeout_seconds`. A garbage datagram from the device is counted and, if the
request then times out, reported as a decode error rather than a silent timeout.

Bounds (issue 14): the SNMPv3 engine state (keys localized to an engine id, its boots and
clock) is kept for at most MAX_USM_ENGINES devices, least recently used forgotten first
(`evicted_engines`; a forgotten device is discovered again on its next request); garbage
is counted per source address for at most MAX_MALFORMED_SOURCES sources, any further
source under "other" (anyone can send datagrams to our socket).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, SupportsInt, cast

from collectors.snmp import usm
from collectors.snmp.ber import (
    ERROR_STATUS,
    GET,
    GET_BULK,
    RESPONSE,
    Oid,
    Value,
    VarBind,
    VarBindException,
    decode_message,
    encode_message,
    encode_pdu,
    header,
    integer_at,
)
from collectors.snmp.errors import SnmpAuthError, SnmpDecodeError, SnmpError, SnmpResponseError, SnmpTimeoutError

log = logging.getLogger(__name__)

MAX_USM_ENGINES = 4096
MAX_MALFORMED_SOURCES = 1024
OTHER_SOURCES = "other"

AuthProtocol = Literal["SHA", "SHA256", "SHA512", "MD5"]
PrivProtocol = Literal["AES", "AES256", "AES256C", "DES"]


@dataclass(frozen=True, slots=True)
class Device:
    """How to reach one SNMP agent. `version` is "2c" (community) or "3" (USM user, authPriv when keys given)."""

    name: str
    host: str
    port: int = 161
    version: Literal["2c", "3"] = "2c"
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: AuthProtocol = "SHA"
    auth_key: str = field(default="", repr=False)
    priv_protocol: PrivProtocol = "AES"
    priv_key: str = field(default="", repr=False)
    context: str = ""
    timeout_seconds: float = 2.0
    retries: int = 1


def parse_hostport(text: str, default_port: int = 161) -> tuple[str, int]:
    """'10.0.0.1', '10.0.0.1:1161', '[2001:db8::1]:161' or '2001:db8::1' → (host, port). Raises ValueError."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


class _Responses(asyncio.DatagramProtocol):
    def __init__(self, engine: UdpEngine) -> None:
        self.engine = engine

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.engine.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable and the like
        log.debug("SNMP socket error: %s", exc)


class UdpEngine:
    """SNMPv2c requests over one shared UDP socket per address family; create and use inside one event loop."""

    def __init__(self, *, max_engines: int = MAX_USM_ENGINES, max_malformed_sources: int = MAX_MALFORMED_SOURCES) -> None:
        self._max_engines = max_engines
        self._max_malformed_sources = max_malformed_sources
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._pending: dict[int, tuple[tuple[str, int], asyncio.Future[Any], Callable[[bytes], Any]]] = {}
        self._ids = itertools.count(1)
        self.malformed: dict[str, int] = {}
        self._last_malformed: dict[str, str] = {}
        self._opening: asyncio.Lock | None = None
        # device → keys, boots, time, monotonic at; least recently used first
        self._usm: OrderedDict[Device, tuple[usm.UsmKeys, int, int, float]] = OrderedDict()
        self.evicted_engines = 0

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:  # many first requests at once must share one socket
            return await self._open(family)

    async def _open(self, family: int) -> asyncio.DatagramTransport:
        transport = self._transports.get(family)
        if transport is None:
            loop = asyncio.get_running_loop()
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Responses(self), sock=sock)
            self._transports[family] = transport
        return transport

    def datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        """Match one received datagram to its pending request (by request-id or msgID, and source);
        count garbage per source."""
        source = str(addr[0]).removeprefix("::ffff:")
        try:
            if _version(data) == 3:  # SNMPv3: decoded (authenticated, decrypted) once matched to its request
                request_id, message = usm.peek_msg_id(data), None
            else:
                message = decode_message(data)
                request_id = message.request_id
        except SnmpDecodeError as exc:
            self._count_malformed(source, exc)
            return
        pending = self._pending.get(request_id)
        if pending is None:
            return
        (host, port), future, decode = pending
        if (source, int(addr[1])) != (host, port) or future.done():
            return
        if message is not None:
            if message.pdu_type == RESPONSE:
                future.set_result(message)
            return
        try:
            future.set_result(decode(data))
        except SnmpDecodeError as exc:
            self._count_malformed(source, exc)
        except SnmpError as exc:
            future.set_exception(exc)

    def _count_malformed(self, source: str, exc: Exception) -> None:
        if source not in self.malformed and len(self.malformed) >= self._max_malformed_sources:
            source = OTHER_SOURCES
        self.malformed[source] = self.malformed.get(source, 0) + 1
        self._last_malformed[source] = str(exc)[:200]

    def _remember_engine(self, device: Device, state: tuple[usm.UsmKeys, int, int, float]) -> None:
        self._usm[device] = state
        self._usm.move_to_end(device)
        while len(self._usm) > self._max_engines:
            self._usm.popitem(last=False)
            self.evicted_engines += 1

    async def _exchange(self, device: Device, build: Callable[[int], bytes], decode: Callable[[bytes], Any]) -> Any:
        """Send build(id) with retries until the answer with that id arrives; return decode(answer).

        Raises:
            SnmpTimeoutError: no answer after every try. SnmpDecodeError: only garbage came back.
            SnmpError: what `decode` raised for the answer (SNMPv3 authentication).
        """
        address = await _resolve(device)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        transport = await self._transport(family)
        host = str(address)
        request_id = next(self._ids) & 0x7FFFFFFF
        datagram = build(request_id)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = ((host, device.port), future, decode)
        bad_before = self.malformed.get(host, 0)
        try:
            for _attempt in range(device.retries + 1):
                transport.sendto(datagram, (host, device.port))
                try:
                    return await asyncio.wait_for(asyncio.shield(future), device.timeout_seconds)
                except TimeoutError:
                    continue
        finally:
            self._pending.pop(request_id, None)
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # mark a late error as retrieved
        bad = self.malformed.get(host, 0) - bad_before
        if bad:
            raise SnmpDecodeError(f"{device.name} answered {bad} malformed datagram(s): {self._last_malformed.get(host)}")
        raise SnmpTimeoutError(
            f"no answer from {device.name} ({host}:{device.port}) after {device.retries + 1} tries "
            f"of {device.timeout_seconds:g} s (down, filtered, {_credential(device)})"
        )

    async def _request(self, device: Device, pdu_type: int, oids: Sequence[Oid], max_repetitions: int = 0,
                       ) -> tuple[VarBind, ...]:
        def pdu(request_id: int) -> bytes:
            return encode_pdu(pdu_type, request_id, [(oid, None) for oid in oids], error_index=max_repetitions)

        if device.version == "3":
            answer = await self._v3(device, pdu)
        else:
            community = device.community.encode()
            answer = await self._exchange(
                device, lambda rid: encode_message(pdu_type, community, rid, [(oid, None) for oid in oids],
                                                   error_index=max_repetitions), lambda data: data)
        if answer.error_status:
            status = answer.error_status
            name = ERROR_STATUS[status] if status < len(ERROR_STATUS) else str(status)
            raise SnmpResponseError(f"agent answered error-status {name} (index {answer.error_index})", status)
        return answer.varbinds

    async def _v3(self, device: Device, pdu: Callable[[int], bytes]) -> usm.V3Response:
        """One USM request: engine discovery first (once per device), one resync on notInTimeWindow."""
        context = device.context.encode()
        for attempt in range(2):
            state = self._usm.get(device)
            if state is None:
                state = await self._discover(device)
            self._remember_engine(device, state)  # also marks it recently used
            keys, boots, time0, at = state
            now = time0 + int(time.monotonic() - at)
            answer: usm.V3Response = await self._exchange(
                device, lambda rid: usm.encode_request(keys, rid, boots, now, pdu(rid), context=context),  # noqa: B023 - run within this iteration
                lambda data: usm.decode_response(data, keys))  # noqa: B023
            problem = answer.report()
            if problem is None:
                return answer
            if attempt == 0 and problem in ("not in time window", "unknown engine id"):
                self._usm.pop(device, None)
                if problem == "not in time window":
                    self._remember_engine(device, (keys, answer.boots, answer.time, time.monotonic()))
                continue
            raise SnmpAuthError(f"{device.name} refused the credentials: {problem}")
        raise SnmpAuthError(f"{device.name}: could not synchronise with the agent's clock")

    async def _discover(self, device: Device) -> tuple[usm.UsmKeys, int, int, float]:
        """RFC 3414 §4 engine discovery: the agent's engine id, boots and time; keys localized to it."""
        report: usm.V3Response = await self._exchange(
            device, usm.discovery_request, lambda data: usm.decode_response(data, None))
        if not report.engine_id:
            raise SnmpAuthError(f"{device.name} did not reveal its engine id")
        keys = usm.UsmKeys.derive(device.user, report.engine_id, device.auth_protocol, device.auth_key,
                                  device.priv_protocol, device.priv_key)
        return keys, report.boots, report.time, time.monotonic()

    async def bulk(self, device: Device, oids: Sequence[Oid], max_repetitions: int) -> tuple[VarBind, ...]:
        return await self._request(device, GET_BULK, oids, max_repetitions)

    async def get(self, device: Device, oids: Sequence[Oid]) -> tuple[VarBind, ...]:
        return await self._request(device, GET, oids)

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()


async def _resolve(device: Device) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The device's address: an IP literal as is, a name through the loop's resolver (not blocking the loop).

    Raises:
        SnmpTimeoutError: the name does not resolve (the device is unreachable as configured).
    """
    try:
        return ipaddress.ip_address(device.host)
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(device.host, device.port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise SnmpTimeoutError(f"{device.name}: cannot resolve {device.host}: {exc}") from exc
    return ipaddress.ip_address(infos[0][4][0])


_AUTH_ERRORS = frozenset({
    "UnknownUserName", "WrongDigest", "DecryptionError", "AuthenticationFailure", "AuthenticationError",
    "UnsupportedSecurityLevel", "UnknownSecurityName", "NotInTimeWindow", "UnknownCommunityName",
})


class PysnmpEngine:
    """SNMPv3 (and v2c) through pysnmp 7's asyncio hlapi; one pysnmp SnmpEngine per instance."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._targets: dict[Device, tuple[Any, Any]] = {}

    async def _prepare(self, device: Device) -> tuple[Any, Any]:
        from pysnmp.hlapi.v3arch import asyncio as hlapi  # noqa: PLC0415 - pysnmp loads only when an SNMP device is polled

        if self._engine is None:
            self._engine = hlapi.SnmpEngine()
        prepared = self._targets.get(device)
        if prepared is None:
            target = await hlapi.UdpTransportTarget.create(
                (device.host, device.port), timeout=device.timeout_seconds, retries=device.retries
            )
            prepared = self._targets[device] = (_auth_data(device), target)
        return prepared

    async def _call(self, device: Device, bulk_repetitions: int | None, oids: Sequence[Oid]) -> tuple[VarBind, ...]:
        """One GET (bulk_repetitions None) or GETBULK through pysnmp's command generators.

        The hlapi functions resolve every OID through the MIB view, which builds a pysmi MIB
        compiler on first use when pysmi is installed (~0.8 s) and costs per varbind; with
        numeric OIDs and no MIB files that buys nothing, so the generators are fed
        (ObjectName, Null) pairs directly, as `bulk_cmd` does after resolution.
        """
        from pysnmp.entity.rfc3413 import cmdgen  # noqa: PLC0415 - pysnmp loads only when an SNMP device is polled
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD  # noqa: PLC0415 - pysnmp loads only when an SNMP device is polled
        from pysnmp.proto.rfc1902 import Null, ObjectName  # noqa: PLC0415 - pysnmp loads only when an SNMP device is polled

        auth, target = await self._prepare(device)
        target_name, _params = LCD.configure(self._engine, auth, target, device.context)
        future: asyncio.Future[tuple[Any, Any, Any, Any]] = asyncio.get_running_loop().create_future()

        def done(_engine: Any, _handle: Any, error: Any, status: Any, index: Any, varbinds: Any, _ctx: Any) -> None:
            if not future.done():
                future.set_result((error, status, index, varbinds))

        request = [(ObjectName(oid), Null("")) for oid in oids]
        if bulk_repetitions is None:
            cmdgen.GetCommandGenerator().send_varbinds(self._engine, target_name, None, device.context, request, done)
        else:
            cmdgen.BulkCommandGenerator().send_varbinds(
                self._engine, target_name, None, device.context, 0, bulk_repetitions, request, done)
        error, status, index, varbinds = await future
        if error:
            kind = type(error).__name__
            if kind == "RequestTimedOut":
                raise SnmpTimeoutError(f"no answer from {device.name} ({device.host}:{device.port}) "
                                       f"after {device.retries + 1} tries of {device.timeout_seconds:g} s")
            if kind in _AUTH_ERRORS:
                raise SnmpAuthError(f"{device.name} refused the credentials: {error}")
            raise SnmpError(f"{device.name}: {error}")
        if int(status):
            name = ERROR_STATUS[int(status)] if int(status) < len(ERROR_STATUS) else str(status)
            raise SnmpResponseError(f"agent answered error-status {name} (index {int(index)})", int(status))
        return tuple((tuple(name), plain_value(value)) for name, value in varbinds)

    async def bulk(self, device: Device, oids: Sequence[Oid], max_repetitions: int) -> tuple[VarBind, ...]:
        return await self._call(device, max_repetitions, oids)

    async def get(self, device: Device, oids: Sequence[Oid]) -> tuple[VarBind, ...]:
        return await self._call(device, None, oids)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
        self._targets.clear()


def _auth_data(device: Device) -> Any:
    """pysnmp CommunityData or UsmUserData for a device (net-snmp's AES256 is the Blumenthal key extension)."""
    from pysnmp.hlapi.v3arch import asyncio as hlapi  # noqa: PLC0415 - pysnmp loads only when an SNMP device is polled

    if device.version == "2c":
        return hlapi.CommunityData(device.community, mpModel=1)
    auth = {"SHA": hlapi.usmHMACSHAAuthProtocol, "SHA256": hlapi.usmHMAC192SHA256AuthProtocol,
            "SHA512": hlapi.usmHMAC384SHA512AuthProtocol, "MD5": hlapi.usmHMACMD5AuthProtocol}
    priv = {"AES": hlapi.usmAesCfb128Protocol, "AES256": hlapi.usmAesBlumenthalCfb256Protocol,
            "AES256C": hlapi.usmAesCfb256Protocol, "DES": hlapi.usmDESPrivProtocol}
    return hlapi.UsmUserData(
        device.user,
        authKey=device.auth_key or None,
        privKey=device.priv_key or None,
        authProtocol=auth[device.auth_protocol] if device.auth_key else hlapi.usmNoAuthProtocol,
        privProtocol=priv[device.priv_protocol] if device.priv_key else hlapi.usmNoPrivProtocol,
    )


class _Octets(Protocol):
    """A pyasn1 OctetString-like value (OctetString, IpAddress, Opaque, Bits)."""

    def asOctets(self) -> bytes: ...  # noqa: N802 - pyasn1's name


def plain_value(value: object) -> Value:
    """A pyasn1/pysnmp value as the plain Python values of `collectors.snmp.ber`.

    pyasn1 ships no types, so its class name says what the value is; the casts state what that name implies.
    """
    name = type(value).__name__
    if name == "EndOfMibView":
        return VarBindException.END_OF_MIB_VIEW
    if name == "NoSuchObject":
        return VarBindException.NO_SUCH_OBJECT
    if name == "NoSuchInstance":
        return VarBindException.NO_SUCH_INSTANCE
    if name == "IpAddress":
        return ipaddress.IPv4Address(bytes(cast(_Octets, value).asOctets()))
    if name in ("OctetString", "Opaque", "DisplayString", "Bits"):
        return bytes(cast(_Octets, value).asOctets())
    if name in ("ObjectIdentifier", "ObjectName"):
        return tuple(cast(Iterable[int], value))
    if name == "Null":
        return None
    return int(cast(SupportsInt, value))


def _version(data: bytes) -> int:
    """The msgVersion field of a message. Raises SnmpDecodeError."""
    tag, pos, end = header(data, 0, len(data))
    if tag != 0x30:
        raise SnmpDecodeError(f"not an SNMP message (starts with tag 0x{tag:02x})")
    return integer_at(data, pos, end)[0]


def _credential(device: Device) -> str:
    return "or wrong community" if device.version == "2c" else "or a wrong priv key"


class RoutingEngine:
    """Devices to our engine (v2c, and v3 with the protocols `usm` speaks), the rest to pysnmp."""

    def __init__(self, v2c: UdpEngine | None = None, v3: PysnmpEngine | None = None) -> None:
        self.v2c = v2c or UdpEngine()
        self.v3 = v3 or PysnmpEngine()

    def _for(self, device: Device) -> UdpEngine | PysnmpEngine:
        if device.version == "2c" or (device.auth_key and usm.supports(
                device.auth_protocol, device.priv_protocol, bool(device.priv_key))):
            return self.v2c
        return self.v3

    async def bulk(self, device: Device, oids: Sequence[Oid], max_repetitions: int) -> tuple[VarBind, ...]:
        return await self._for(device).bulk(device, oids, max_repetitions)

    async def get(self, device: Device, oids: Sequence[Oid]) -> tuple[VarBind, ...]:
        return await self._for(device).get(device, oids)

    def close(self) -> None:
        self.v2c.close()
        self.v3.close()
