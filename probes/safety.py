"""Where probes may go and how fast: allowed ranges and a token-bucket rate limit (pure).

Scheduled probes and every scan (ARP sweep, website discovery, traceroute) run
only against addresses inside the configured allowed ranges; a one-shot check of
one named target from the CLI does not consult them (the operator chose it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from probes.errors import InvalidTargetError, OutOfRangeError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """A CIDR (host bits allowed: 10.0.0.5/24 is 10.0.0.0/24). Raises InvalidTargetError."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise InvalidTargetError(f"{text!r} is not a CIDR prefix") from exc


@dataclass(frozen=True, slots=True)
class AllowedRanges:
    """The prefixes probes and scans may touch. Empty: nothing is allowed."""

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, texts: Iterable[str]) -> AllowedRanges:
        """Raises InvalidTargetError for a text that is not a prefix."""
        return cls(tuple(parse_network(text) for text in texts))

    def contains(self, address: Address) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def check_address(self, address: Address, what: str = "target") -> None:
        """Raises OutOfRangeError unless address is inside one allowed range."""
        if not self.contains(address):
            raise OutOfRangeError(f"{what} {address} is outside the allowed ranges "
                                  f"({', '.join(map(str, self.networks)) or 'none configured'})")

    def check_network(self, network: Network, what: str = "scan") -> None:
        """Raises OutOfRangeError unless the whole network lies inside one allowed range."""
        if not any(network.version == net.version and network.subnet_of(net) for net in self.networks):  # type: ignore[arg-type]
            raise OutOfRangeError(f"{what} of {network} is outside the allowed ranges "
                                  f"({', '.join(map(str, self.networks)) or 'none configured'})")


class TokenBucket:
    """At most `rate` operations per second on average, bursts up to `burst`; the clock is injected.

    `delay()` takes a token and says how long to wait before using it (0 when one
    was available), so callers sleep exactly that long; it never blocks itself.
    """

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def delay(self) -> float:
        """Take one token; the seconds until it may be used."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
