"""Listening sockets: TCP in LISTEN and unconnected UDP, with the process that owns each (psutil)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Literal, Protocol

import psutil

from collectors.netstate.errors import NetstateError
from collectors.netstate.models import ListeningSocket


class SocketAddress(Protocol):
    """An (ip, port) of a connection as psutil reports it (its `addr` NamedTuple)."""

    @property
    def ip(self) -> str: ...
    @property
    def port(self) -> int: ...


class Connection(Protocol):
    """What `listening_sockets` reads of one psutil.net_connections() entry (psutil's `sconn` NamedTuple)."""

    @property
    def type(self) -> int: ...  # socket.SOCK_STREAM or SOCK_DGRAM
    @property
    def status(self) -> str: ...  # psutil.CONN_LISTEN, ...
    @property
    def laddr(self) -> SocketAddress | tuple[()]: ...
    @property
    def raddr(self) -> SocketAddress | tuple[()]: ...  # () when not connected
    @property
    def pid(self) -> int | None: ...


def _listening_protocol(conn: Connection) -> Literal["tcp", "udp"] | None:
    """"tcp" for a TCP socket in LISTEN, "udp" for a UDP socket without a peer; None for anything else."""
    if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
        return "tcp"
    if conn.type == socket.SOCK_DGRAM and not conn.raddr:
        return "udp"
    return None


def listening_sockets(connections: Iterable[Connection], names: Mapping[int, str]) -> tuple[ListeningSocket, ...]:
    """Listening sockets from psutil.net_connections(kind="inet"): TCP in LISTEN, UDP without a peer.

    One socket per protocol, address and port; when several processes share it
    (forked workers, SO_REUSEPORT) the lowest pid is reported. `names` maps pid -> process name.
    """
    chosen: dict[tuple[str, str, int], ListeningSocket] = {}
    for conn in connections:
        proto = _listening_protocol(conn)
        local = conn.laddr
        if proto is None or not local:  # psutil gives () for a socket without a local address
            continue
        address = ipaddress.ip_address(local.ip.split("%", 1)[0])
        found = ListeningSocket(proto, address, local.port, conn.pid, names.get(conn.pid, "") if conn.pid else "")
        key = (proto, str(address), local.port)
        old = chosen.get(key)
        if old is None or (found.pid is not None and (old.pid is None or found.pid < old.pid)):
            chosen[key] = found
    return tuple(sorted(chosen.values(), key=lambda s: (s.proto, s.address.version, s.address, s.port)))


def read_listening_sockets() -> tuple[ListeningSocket, ...]:
    """The listening sockets of the running kernel (this network namespace), with process names.

    Raises:
        NetstateError: psutil could not list the sockets.
    """
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.Error as exc:
        raise NetstateError(f"listing sockets failed: {exc}") from exc
    names: dict[int, str] = {}
    for pid in {c.pid for c in conns if c.pid}:
        try:
            names[pid] = psutil.Process(pid).name()
        except psutil.Error:
            names[pid] = ""
    return listening_sockets(conns, names)
