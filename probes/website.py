"""Website discovery: HTTP(S) services in a range, with their title, Server header and certificate subject.

For Articles 10-12 (no stand-alone websites outside the registered list): each
address of the range (inside the allowed ranges) is tried on each port with a
TCP connect at a bounded rate; an open port is asked `GET /` over HTTPS first on
the usual TLS ports and plain HTTP first on the others, then the other scheme.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from core.models import AttributeValue
from probes.certs import cert_facts
from probes.errors import InvalidTargetError
from probes.http import HttpAnswer, HttpExpect, HttpProber, title_of
from probes.result import Finding, ProbeResult
from probes.safety import AllowedRanges, TokenBucket, parse_network

KIND = "website"
MAX_ADDRESSES = 4096
DEFAULT_PORTS = (80, 443, 8080, 8443)
TLS_PORTS = frozenset({443, 8443, 9443})
_LOOK = HttpExpect(follow_redirects=False, verify_tls=False)


def website_finding(url: str, answer: HttpAnswer) -> Finding:
    """The `website` finding of one answer (pure)."""
    attributes: dict[str, AttributeValue] = {
        "status": answer.status, "title": title_of(answer), "server": answer.server[:256],
        "tls": answer.tls_version is not None, "cert_subject": "", "cert_issuer": "", "cert_not_after": "",
    }
    if answer.peer_cert_der:
        try:
            facts = cert_facts(answer.peer_cert_der)
            attributes.update(cert_subject=facts.subject[:512], cert_issuer=facts.issuer[:512],
                              cert_not_after=facts.not_after_at.isoformat())
        except ValueError:
            pass
    return Finding(KIND, url, attributes)


async def _open(host: str, port: int, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            _r, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def discover(cidr: str, *, allowed: AllowedRanges, ports: tuple[int, ...] = DEFAULT_PORTS,
                   timeout: float = 2.0, rate: float = 100.0, concurrency: int = 32,
                   clock: Callable[[], float] = time.monotonic) -> ProbeResult:
    """Find the web services of cidr on ports; `rate` connection attempts per second at most.

    Raises:
        InvalidTargetError: not a CIDR, or more than MAX_ADDRESSES addresses.
        OutOfRangeError: cidr is not inside the allowed ranges.
    """
    network = parse_network(cidr)
    allowed.check_network(network, "website discovery")
    if network.num_addresses > MAX_ADDRESSES:
        raise InvalidTargetError(f"{network} has {network.num_addresses} addresses; at most {MAX_ADDRESSES}")
    hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
    bucket = TokenBucket(rate, max(1.0, min(rate, concurrency)), clock)
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async with HttpProber() as prober:
        async def visit(host: str, port: int) -> Finding | None:
            async with gate:
                await asyncio.sleep(bucket.delay())
                if not await _open(host, port, timeout):
                    return None
                shown = f"[{host}]" if ":" in host else host
                schemes = ("https", "http") if port in TLS_PORTS else ("http", "https")
                for scheme in schemes:
                    url = f"{scheme}://{shown}:{port}/"
                    try:
                        answer = await prober.fetch(url, _LOOK, timeout=timeout, allowed=allowed)
                    except (httpx.HTTPError, OSError, TimeoutError, ValueError):  # not this scheme: try the other
                        continue
                    return website_finding(url, answer)
                return None

        found = await asyncio.gather(*(visit(str(h), p) for h in hosts for p in ports))
    findings = tuple(f for f in found if f is not None)
    return ProbeResult(KIND, str(network), True, "ok", f"{len(findings)} web services in {network}",
                       time.perf_counter() - started, {"website_services": len(findings)}, findings=findings)
