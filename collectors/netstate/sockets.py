"""Listening sockets: TCP in LISTEN and unconnected UDP, with the process that owns each (psutil)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import psutil

from collectors.netstate.errors import NetstateError
from collectors.netstate.models import ListeningSocket


def _listening_protocol(conn: Any) -> Literal["tcp", "udp"] | None:
    """"tcp" for a TCP socket in LISTEN, "udp" for a UDP socket without a peer; None for anything else."""
    if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
        return "tcp"
    if conn.type == socket.SOCK_DGRAM and not conn.raddr:
        return "udp"
    return None


def listening_sockets(connections: Iterable[Any], names: Mapping[int, str]) -> tuple[ListeningSocket, ...]:
    """Listening sockets from psutil.net_connections(kind="inet"): TCP in LISTEN, UDP without a peer.

    One socket per protocol, address and port; when several processes share it
    (forked workers, SO_REUSEPORT) the lowest pid is reported. `names` maps pid -> process name.
    """
    chosen: dict[tuple[str, str, int], ListeningSocket] = {}
    for conn in connections:
        proto = _listening_protocol(conn)
        if proto is None:
            continue
        address = ipaddress.ip_address(conn.laddr.ip.split("%", 1)[0])
        found = ListeningSocket(proto, address, conn.laddr.port, conn.pid, names.get(conn.pid, "") if conn.pid else "")
        key = (proto, str(address), conn.laddr.port)
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
