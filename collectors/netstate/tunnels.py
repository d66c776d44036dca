"""Tunnels: which interface kinds are tunnels, and WireGuard peers' endpoints.

The endpoints of gre, ipip, sit and vxlan tunnels come with the links (`linkinfo.info_data`,
see `links`); WireGuard peers' come from `wg show all endpoints` (never `wg show ... dump`,
which prints the private key).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from collectors.netstate.models import WireguardPeer
from collectors.netstate.shell import run

TUNNEL_KINDS: Final = frozenset({"gre", "ipip", "sit", "vxlan", "wireguard"})


def parse_wg_endpoints(text: str) -> tuple[WireguardPeer, ...]:
    """Peers' endpoints from `wg show all endpoints` (interface, public key, endpoint or "(none)")."""
    peers = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) == 3 and cols[2] and cols[2] != "(none)":
            peers.append(WireguardPeer(cols[0], cols[2]))
    return tuple(peers)


async def wireguard_peers(*, tool: Callable[[str], str | None],
                          warn_once: Callable[[str, str], None]) -> tuple[WireguardPeer, ...]:
    """WireGuard peers' endpoints when `tool("wg")` finds wg; none (after one warning) when wg fails.

    `tool` gives a command's path, or None when it is absent or must not be used (not live).
    """
    wg = tool("wg")
    if wg is None:
        return ()
    done = await run((wg, "show", "all", "endpoints"))
    if done.returncode != 0:
        warn_once("wg", f"wg exited {done.returncode}: {done.stderr.strip()[:200]}")
        return ()
    return parse_wg_endpoints(done.stdout)
