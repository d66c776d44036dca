"""NetstateCollector: assembles one reading of the host's network from the modules by concern.

The files are read under an injectable `root`; commands and psutil ask the running
kernel, so they are used only when `live` (by default: root is "/"). Everything
describes the network namespace of the process; `changes()` watches the same one.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import psutil

from collectors.netstate.errors import NetstateError, UnsupportedTargetError
from collectors.netstate.links import (
    addresses_from_ifaddrs,
    link_from_sysfs,
    parse_ip_addresses,
    parse_ip_links,
    read_sysfs_links,
)
from collectors.netstate.models import Forwarding, NetState, SysfsLink
from collectors.netstate.nat import detect_nat
from collectors.netstate.reading import observations, samples
from collectors.netstate.routes import parse_forwarding, parse_ip_routes, parse_proc_ipv6_route, parse_proc_route
from collectors.netstate.shell import first_failure_group, read_text, run_required
from collectors.netstate.sockets import read_listening_sockets
from collectors.netstate.tunnels import wireguard_peers
from collectors.netstate.watch import rtnetlink_changes
from core.collect import CollectTimeoutError, Reading, Target

log = logging.getLogger("collectors.netstate")  # the package's name: log lines read as before the split


@dataclass(frozen=True, slots=True)
class _Files:
    links: tuple[SysfsLink, ...]
    route: str
    ipv6_route: str
    forwarding: Forwarding


def _read_files(root: Path) -> _Files:
    proc = root / "proc"
    try:
        ipv6_route = read_text(proc / "net/ipv6_route")
    except FileNotFoundError:
        ipv6_route = ""  # IPv6 disabled on the kernel command line
    try:
        ipv6_forward = read_text(proc / "sys/net/ipv6/conf/all/forwarding")
    except FileNotFoundError:
        ipv6_forward = "0"
    return _Files(
        links=read_sysfs_links(root / "sys/class/net"), route=read_text(proc / "net/route"), ipv6_route=ipv6_route,
        forwarding=parse_forwarding(read_text(proc / "sys/net/ipv4/ip_forward"), ipv6_forward),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class NetstateCollector:
    """Observes the network of the host (its network namespace) the agent runs on.

    `root` is where /proc and /sys are read (a fixture tree in tests); `live`
    also asks the running kernel through iproute2, nft/iptables, wg and psutil
    (default: only when root is "/", since those ignore root). Not for remote
    devices: those are the SNMP collector's.
    """

    name: ClassVar[str] = "netstate"

    def __init__(
        self,
        *,
        root: str | Path = "/",
        clock: Callable[[], datetime] = _utc_now,
        live: bool | None = None,
        coalesce_seconds: float = 0.1,
        max_delay_seconds: float = 1.0,
    ) -> None:
        self.root = Path(root)
        self.live = self.root == Path("/") if live is None else live
        self.coalesce_seconds = coalesce_seconds
        self.max_delay_seconds = max_delay_seconds
        self._clock = clock
        self._warned: set[str] = set()

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        """Observe the local network once, within `timeout` seconds.

        Raises:
            UnsupportedTargetError: the target names a remote address.
            CollectTimeoutError: the collection took longer than `timeout`.
            CommandFailedError, ParseError, NetstateError: iproute2, psutil or /proc failed.
        """
        if target.address is not None:
            raise UnsupportedTargetError(f"netstate observes the local host only, not {target.address}")
        observed_at = self._clock()
        try:
            async with asyncio.timeout(timeout) as deadline:
                state = await self._state()
        except TimeoutError as exc:
            if deadline.expired():
                raise CollectTimeoutError(f"netstate did not finish within {timeout:g} s") from exc
            raise NetstateError(f"reading the network state failed: {exc}") from exc
        except OSError as exc:
            raise NetstateError(f"reading the network state failed: {exc}") from exc
        return Reading(samples=samples(state, observed_at), observations=observations(state, observed_at))

    def _tool(self, name: str) -> str | None:
        return shutil.which(name) if self.live else None

    async def _state(self) -> NetState:
        ip = self._tool("ip")
        commands = [(ip, "-d", "-j", "addr", "show"), (ip, "-4", "-d", "-j", "route", "show", "table", "all"),
                    (ip, "-6", "-d", "-j", "route", "show", "table", "all")] if ip else []
        async with first_failure_group() as group:
            reading_files = group.create_task(asyncio.to_thread(_read_files, self.root))
            nat = group.create_task(detect_nat(self.root, tool=self._tool, warn_once=self._warn_once))
            peers = group.create_task(wireguard_peers(tool=self._tool, warn_once=self._warn_once))
            commands_run = [group.create_task(run_required(argv)) for argv in commands]
        # After the commands: a child of ours between fork and exec holds this process's sockets too, and psutil
        # may name it (no process name) as their owner (CI at b880966 saw the listener's socket under such a pid).
        sockets = await asyncio.to_thread(read_listening_sockets) if self.live else ()
        files = reading_files.result()
        outputs = [task.result() for task in commands_run]
        if outputs:
            addr_text, route4, route6 = outputs
            with_device = frozenset(link.name for link in files.links if link.has_device)
            interfaces = parse_ip_links(addr_text, with_device=with_device)
            addresses = parse_ip_addresses(addr_text)
            routes = parse_ip_routes(route4, "ipv4") + parse_ip_routes(route6, "ipv6")
        else:
            interfaces = tuple(link_from_sysfs(link) for link in files.links)
            addresses = addresses_from_ifaddrs(await asyncio.to_thread(psutil.net_if_addrs)) if self.live else ()
            routes = parse_proc_route(files.route) + parse_proc_ipv6_route(files.ipv6_route)
        return NetState(interfaces, addresses, routes, files.forwarding, nat.result(), sockets, peers.result())

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("netstate: %s (left out until it works)", message)

    def changes(self) -> AsyncIterator[None]:
        """Yield once per burst of rtnetlink messages (links, addresses, routes, forwarding).

        A burst ends after `coalesce_seconds` without a message, or after
        `max_delay_seconds` of continuous messages. A receive buffer overflow
        (ENOBUFS: messages were lost) counts as a change. The socket watches the
        network namespace of this process.

        Raises:
            WatchError: the netlink socket could not be opened or bound.
        """
        return rtnetlink_changes(coalesce_seconds=self.coalesce_seconds, max_delay_seconds=self.max_delay_seconds)
