"""Longest-prefix match over IPv4 and IPv6 prefixes (pure).

A dict per (family, prefix length) from the masked network integer to the
entry; a lookup masks the address for each prefix length present, longest
first: at most as many dict lookups as there are distinct lengths (a few for a
real address plan), whatever the number of prefixes. Built once per registry.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_BITS = {4: 32, 6: 128}


class PrefixTable(Generic[T]):
    """Prefix → value, with `covering(network)`: the value of the longest prefix containing it."""

    def __init__(self, items: Iterable[tuple[str | Network, T]] = ()) -> None:
        self._by_length: dict[int, dict[int, dict[int, tuple[Network, T]]]] = {4: {}, 6: {}}
        self._lengths: dict[int, list[int]] = {4: [], 6: []}
        self._count = 0
        for prefix, value in items:
            self.add(prefix, value)

    def add(self, prefix: str | Network, value: T) -> None:
        """Add (or replace) a prefix. Raises ValueError for text that is not a prefix."""
        network = ipaddress.ip_network(prefix, strict=False) if isinstance(prefix, str) else prefix
        family = network.version
        table = self._by_length[family].setdefault(network.prefixlen, {})
        if int(network.network_address) not in table:
            self._count += 1
        table[int(network.network_address)] = (network, value)
        self._lengths[family] = sorted(self._by_length[family], reverse=True)

    def __len__(self) -> int:
        return self._count

    def match(self, network: Network | Address) -> tuple[Network, T] | None:
        """The longest prefix that contains `network` (or the address), with its value; None if none does."""
        family = network.version
        bits = _BITS[family]
        if isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network):
            value, length = int(network.network_address), network.prefixlen
        else:
            value, length = int(network), bits
        tables = self._by_length[family]
        for prefix_length in self._lengths[family]:
            if prefix_length > length:
                continue
            mask = ((1 << prefix_length) - 1) << (bits - prefix_length) if prefix_length else 0
            found = tables[prefix_length].get(value & mask)
            if found is not None:
                return found
        return None

    def covering(self, network: Network | Address) -> T | None:
        found = self.match(network)
        return None if found is None else found[1]
