"""SNMP trap and inform reception (v1, v2c, v3 USM) → events for alerting.

The pure part, `event_from_varbinds`, maps a notification (RFC 3416 §4.2.6: sysUpTime.0,
snmpTrapOID.0, then the objects) to an `Event` by a declarative table of trap OIDs;
any other enterprise trap becomes a `vendor_trap` event naming its vendor. The shell,
`TrapReceiver`, is pysnmp 7's notification receiver (which also answers informs and
translates v1 traps, RFC 3584) on a UDP socket bound by us (port 0 allowed).

A receiver can die without raising anywhere we see: its socket closed by a fatal read
error, or pysnmp's dispatcher timer (a task that expires pysnmp's caches, among them
the USM engine timeline, RFC 3414 §2.3) ended by an exception. `alive` tells, and
`run_until_dead()` lets a supervisor (core.supervise) replace a dead receiver.

Every datagram is screened first (`collectors.snmp.screen`: size, element count, nesting), and whatever pysnmp raises
on one datagram is caught there and counted, so hostile input costs bounded time and never reaches
the event loop's exception handler.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from collectors.snmp.ber import Oid, VarBind, oid_text
from collectors.snmp.reading import SOURCE, tag_text
from collectors.snmp.screen import REASONS, screen
from collectors.snmp.tables import integer, text
from core.models import Observation, Sample

log = logging.getLogger(__name__)

LIVENESS_CHECK_SECONDS = 0.5


class TrapReceiverDiedError(Exception):
    """The receiver's socket was closed or pysnmp's dispatcher timer stopped: it no longer receives."""

SYS_UPTIME: Final = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID: Final = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
IF_INDEX: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 1)
IF_DESCR: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 2)
IF_ADMIN: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 7)
IF_OPER: Final = (1, 3, 6, 1, 2, 1, 2, 2, 1, 8)
IF_NAME: Final = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1)

# Standard notifications (SNMPv2-MIB, IF-MIB) → (event, severity).
TRAPS: Final[dict[Oid, tuple[str, str]]] = {
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 1): ("cold_start", "warning"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 2): ("warm_start", "warning"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 3): ("link_down", "critical"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 4): ("link_up", "info"),
    (1, 3, 6, 1, 6, 3, 1, 1, 5, 5): ("authentication_failure", "warning"),
}
# Enterprise numbers (SMI Network Management Private Enterprise Codes) → vendor, for vendor traps.
VENDORS: Final[dict[int, str]] = {2011: "huawei", 25506: "h3c", 9: "cisco", 2636: "juniper", 12356: "fortinet",
                                  25461: "paloalto", 28557: "hillstone", 8072: "net-snmp", 11: "hp"}
ENTERPRISES: Final = (1, 3, 6, 1, 4, 1)


@dataclass(frozen=True, slots=True)
class Event:
    """One received notification: who sent it, what it says, and the interface it is about (if any)."""

    source: str
    event: str
    severity: str
    trap_oid: str
    received_at: datetime
    uptime_ticks: int = -1
    if_index: int = -1
    interface: str = ""
    vendor: str = ""
    varbinds: tuple[tuple[str, str], ...] = field(default=())

    def sample(self) -> Sample:
        """`snmp_trap` point: tags device/event/severity, fields received=1, trap_oid, if_index."""
        return Sample(measurement="snmp_trap", timestamp=self.received_at,
                      tags={"device": tag_text(self.source), "event": self.event, "severity": self.severity},
                      fields={"received": 1, "trap_oid": self.trap_oid, "if_index": self.if_index})

    def observation(self) -> Observation:
        return Observation(kind="snmp_trap", subject=tag_text(self.source), source=SOURCE, observed_at=self.received_at,
                           attributes={"event": self.event, "severity": self.severity, "trap_oid": self.trap_oid,
                                       "if_index": self.if_index, "interface": self.interface[:1024],
                                       "vendor": self.vendor, "uptime_ticks": self.uptime_ticks,
                                       "varbinds": [f"{o}={v}"[:1024] for o, v in self.varbinds][:64]})


def _interface_of(varbinds: Sequence[VarBind]) -> tuple[int, str]:
    """(ifIndex, name) of the interface a notification is about (linkUp/linkDown and the like): ifIndex from an
    ifIndex varbind, else the index of an ifAdminStatus/ifOperStatus one; the first ifDescr/ifName; (-1, "")."""
    if_index, interface = -1, ""
    for oid, value in varbinds:
        column = oid[:-1]
        if column == IF_INDEX:
            if_index = integer(value)
        elif column in (IF_DESCR, IF_NAME) and not interface:
            interface = text(value)
        elif column in (IF_ADMIN, IF_OPER) and if_index < 0:
            if_index = oid[-1]
    return if_index, interface


def event_from_varbinds(source: str, varbinds: Sequence[VarBind], received_at: datetime) -> Event:
    """The event a v2-style notification's varbinds describe (unknown trap OIDs become `vendor_trap`/`trap`)."""
    values = dict(varbinds)
    trap = values.get(SNMP_TRAP_OID)
    trap_oid: Oid = trap if isinstance(trap, tuple) else ()
    event, severity = TRAPS.get(trap_oid, ("", "info"))
    vendor = ""
    if trap_oid[:6] == ENTERPRISES and len(trap_oid) > 6:
        vendor = VENDORS.get(trap_oid[6], f"enterprise-{trap_oid[6]}")
    if not event:
        event = "vendor_trap" if vendor else "trap"
    if_index, interface = _interface_of(varbinds)
    rest = tuple((oid_text(o), text(v)) for o, v in varbinds if o not in (SYS_UPTIME, SNMP_TRAP_OID))
    return Event(source=source, event=event, severity=severity, trap_oid=oid_text(trap_oid) if trap_oid else "",
                 received_at=received_at, uptime_ticks=integer(values.get(SYS_UPTIME)), if_index=if_index,
                 interface=interface, vendor=vendor, varbinds=rest)


@dataclass(frozen=True, slots=True)
class TrapUser:
    """A v3 user whose notifications are accepted; `engine_id` is the sender's (hex), needed for v3 traps."""

    user: str
    auth_protocol: str = "SHA256"
    auth_key: str = field(default="", repr=False)
    priv_protocol: str = "AES"
    priv_key: str = field(default="", repr=False)
    engine_id: str = ""


class TrapReceiver:
    """Receives traps and informs on host:port and calls `on_event` for each (in the event loop's thread).

    Construction does no I/O; `start()` binds (inside a running loop), `stop()` closes.
    """

    def __init__(self, host: str, port: int, *, communities: Sequence[str] = (), users: Sequence[TrapUser] = (),
                 on_event: Callable[[Event], None],
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._host, self._port = host, port
        self._communities = tuple(communities)
        self._users = tuple(users)
        self._on_event = on_event
        self._clock = clock
        self._engine: Any = None
        self._transport: Any = None  # pysnmp's UdpTransport (an asyncio DatagramProtocol)
        self._sock: socket.socket | None = None
        self.received = 0  # notifications turned into events
        self.errors = 0  # datagrams the SNMP engine (or reading its varbinds) failed on
        self.refused = dict.fromkeys(REASONS, 0)  # datagrams screened out before the engine, by reason
        self._noted: set[str] = set()

    @property
    def address(self) -> tuple[str, int]:
        if self._sock is None:
            raise RuntimeError("TrapReceiver not started")
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Bind the UDP socket and register the receiver. Raises OSError when the address cannot be bound."""
        from pysnmp.carrier.asyncio.dgram import udp, udp6  # noqa: PLC0415 - pysnmp loads only when a trap receiver starts
        from pysnmp.entity import config, engine  # noqa: PLC0415 - pysnmp loads only when a trap receiver starts
        from pysnmp.entity.rfc3413 import ntfrcv  # noqa: PLC0415 - pysnmp loads only when a trap receiver starts

        sock = self._bind()
        snmp_engine = engine.SnmpEngine()
        module = udp6 if sock.family == socket.AF_INET6 else udp
        transport = _screening(module.UdpTransport, self._gate)().open_server_mode(sock=sock)
        config.add_transport(snmp_engine, module.DOMAIN_NAME, transport)
        for number, community in enumerate(self._communities):
            config.add_v1_system(snmp_engine, f"area-{number}", community)
        for user in self._users:
            _add_v3_user(snmp_engine, user)
        ntfrcv.NotificationReceiver(snmp_engine, self._received)
        self._engine = snmp_engine
        self._transport = transport
        if not await _attached(transport):
            self.stop()
            raise OSError("the trap socket was not attached to the event loop within 2 s")
        log.info("SNMP trap receiver on %s:%d", *self.address)

    def _bind(self) -> socket.socket:
        """Bind a non-blocking UDP socket to the receiver's address (IPv6 when the host has a colon).

        Raises:
            OSError: the address cannot be bound (the socket is closed).
        """
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        return sock

    @property
    def alive(self) -> bool:
        """True while started, its socket open and pysnmp's dispatcher timer running."""
        if self._engine is None or self._transport is None:
            return False
        endpoint = self._transport.transport  # asyncio's DatagramTransport, set once the endpoint is attached
        if endpoint is None or endpoint.is_closing():
            return False
        timer = self._engine.transport_dispatcher.loopingcall
        return timer is not None and not timer.done()

    async def run_until_dead(self) -> None:
        """Return never while the receiver works; raise when it stopped receiving (for a supervisor).

        Raises:
            TrapReceiverDiedError: the socket closed or the dispatcher timer ended (its error in the message).
        """
        while self.alive:
            await asyncio.sleep(LIVENESS_CHECK_SECONDS)
        if self._engine is None:
            raise TrapReceiverDiedError("the receiver was stopped")
        timer = self._engine.transport_dispatcher.loopingcall
        cause = timer.exception() if timer is not None and timer.done() and not timer.cancelled() else None
        raise TrapReceiverDiedError(f"pysnmp's dispatcher timer failed: {cause!r}" if cause else "its socket closed")

    def _gate(self, deliver: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap the engine's per-datagram callback: screen the datagram, then contain what the engine raises."""

        def receive(transport: Any, address: Any, datagram: bytes) -> Any:
            reason = screen(datagram)
            if reason is not None:
                self.refused[reason] += 1
                self._note(f"refused a datagram from {address[0]}: {reason}", reason)
                return None
            try:
                return deliver(transport, address, datagram)
            except Exception as exc:  # noqa: BLE001 - pysnmp/pyasn1 raise more than their own errors on hostile input
                self.errors += 1
                self._note(f"the SNMP engine failed on a datagram from {address[0]}: {exc!r}", type(exc).__name__)
                return None

        return receive

    def _note(self, message: str, kind: str) -> None:
        """Log the first of each kind of refusal or failure as a warning, the rest at debug (no log floods)."""
        level = logging.DEBUG if kind in self._noted else logging.WARNING
        self._noted.add(kind)
        log.log(level, "%s", message)

    def _received(self, snmp_engine: Any, state_reference: Any, context_engine_id: Any, context_name: Any,
                  varbinds: Any, cb_ctx: Any) -> None:
        from collectors.snmp.engine import plain_value  # noqa: PLC0415 - engine imports pysnmp helpers; loaded once traps arrive

        try:
            _domain, address = snmp_engine.message_dispatcher.get_transport_info(state_reference)
            plain = [(tuple(name), plain_value(value)) for name, value in varbinds]
            event = event_from_varbinds(str(address[0]).removeprefix("::ffff:"), plain, self._clock())
        except Exception:
            self.errors += 1
            log.exception("could not read a notification")
            return
        self.received += 1
        try:
            self._on_event(event)
        except Exception:  # the consumer's bug must not end the receiver either
            self.errors += 1
            log.exception("the trap consumer failed on an event")

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
            self._transport = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _add_v3_user(snmp_engine: Any, user: TrapUser) -> None:
    """Register one SNMPv3 user with pysnmp's engine (protocols by the names TrapUser uses; no key: none)."""
    from pysnmp.entity import config  # noqa: PLC0415 - pysnmp loads only when a trap receiver starts
    from pysnmp.proto.api import v2c  # noqa: PLC0415 - pysnmp loads only when a trap receiver starts

    auth = {"SHA": config.USM_AUTH_HMAC96_SHA, "SHA256": config.USM_AUTH_HMAC192_SHA256,
            "SHA512": config.USM_AUTH_HMAC384_SHA512, "MD5": config.USM_AUTH_HMAC96_MD5}
    priv = {"AES": config.USM_PRIV_CFB128_AES, "AES256": config.USM_PRIV_CFB256_AES_BLUMENTHAL,
            "AES256C": config.USM_PRIV_CFB256_AES, "DES": config.USM_PRIV_CBC56_DES}
    config.add_v3_user(
        snmp_engine, user.user,
        auth[user.auth_protocol] if user.auth_key else config.USM_AUTH_NONE, user.auth_key or None,
        priv[user.priv_protocol] if user.priv_key else config.USM_PRIV_NONE, user.priv_key or None,
        securityEngineId=v2c.OctetString(hexValue=user.engine_id) if user.engine_id else None,
    )


async def _attached(transport: Any) -> bool:
    """Whether pysnmp's endpoint coroutine attached the socket to the event loop (a few loop turns) within 2 s."""
    for turn in range(200):
        if transport.transport is not None:
            return True
        await asyncio.sleep(0.01 if turn else 0)
    return False


def _screening(base: type, gate: Callable[[Callable[..., Any]], Callable[..., Any]]) -> type:
    """A subclass of pysnmp's UDP transport whose datagram callback goes through `gate` (pysnmp registers the
    dispatcher's callback with `register_callback`, and calls it once per datagram from the event loop)."""

    class ScreenedUdpTransport(base):  # type: ignore[misc]  # base is pysnmp's transport class, known only at run time
        def register_callback(self, cbFun: Callable[..., Any]) -> None:  # noqa: N803 - pysnmp's keyword name
            super().register_callback(gate(cbFun))

    return ScreenedUdpTransport
