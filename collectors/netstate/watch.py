"""The rtnetlink change watcher: one yield per burst of link, address, route or forwarding changes.

It serves `NetstateCollector.changes()` (core.collect.ChangeWatcher), so that the agent
collects again at once instead of waiting for the next interval.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import AsyncIterator
from typing import Final

from collectors.netstate.errors import WatchError

# rtnetlink multicast groups (linux/rtnetlink.h): legacy bitmask RTMGRP_* and 1 << (RTNLGRP - 1).
RTMGRP_LINK: Final = 0x1
RTMGRP_IPV4_IFADDR: Final = 0x10
RTMGRP_IPV4_ROUTE: Final = 0x40
RTMGRP_IPV6_IFADDR: Final = 0x100
RTMGRP_IPV6_ROUTE: Final = 0x400
RTMGRP_IPV4_NETCONF: Final = 1 << (24 - 1)  # forwarding switched on or off
RTMGRP_IPV6_NETCONF: Final = 1 << (25 - 1)
WATCHED_GROUPS: Final = (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE
                         | RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_NETCONF | RTMGRP_IPV6_NETCONF)


async def rtnetlink_changes(*, coalesce_seconds: float, max_delay_seconds: float) -> AsyncIterator[None]:
    """Yield once per burst of rtnetlink messages (links, addresses, routes, forwarding).

    A burst ends after `coalesce_seconds` without a message, or after
    `max_delay_seconds` of continuous messages. A receive buffer overflow
    (ENOBUFS: messages were lost) counts as a change. The socket watches the
    network namespace of this process.

    Raises:
        WatchError: the netlink socket could not be opened or bound.
    """
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                             socket.NETLINK_ROUTE)
    except (OSError, AttributeError) as exc:
        raise WatchError(f"cannot open an rtnetlink socket: {exc}") from exc
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, WATCHED_GROUPS))
        except OSError as exc:
            raise WatchError(f"cannot subscribe to rtnetlink groups: {exc}") from exc
        loop = asyncio.get_running_loop()
        while True:
            await _receive(loop, sock)
            burst_end = loop.time() + max_delay_seconds
            while (left := burst_end - loop.time()) > 0:
                try:
                    async with asyncio.timeout(min(coalesce_seconds, left)):
                        await _receive(loop, sock)
                except TimeoutError:
                    break
            yield None
    finally:
        sock.close()


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    try:
        await loop.sock_recv(sock, 1 << 16)
    except OSError as exc:
        if exc.errno != errno.ENOBUFS:
            raise
