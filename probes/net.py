"""Name resolution and the translation of socket errors into reason codes (the shared I/O edge)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl

from probes.errors import InvalidTargetError
from probes.safety import Address, AllowedRanges

_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN, errno.EADDRNOTAVAIL}


def split_host_port(text: str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or (with a default) a bare host -> (host, port). Raises InvalidTargetError."""
    text = text.strip()
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InvalidTargetError(f"{text!r}: unclosed [")
        host, rest = text[1:end], text[end + 1:]
        port_text = rest[1:] if rest.startswith(":") else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if port_text is None:
        if default_port is None:
            raise InvalidTargetError(f"{text!r} is not host:port")
        return host, default_port
    try:
        port = int(port_text)
    except ValueError as exc:
        raise InvalidTargetError(f"{text!r}: port {port_text!r} is not a number") from exc
    if not host or not 0 < port < 65536:
        raise InvalidTargetError(f"{text!r} is not host:port with a port in 1..65535")
    return host, port


async def resolve(host: str, port: int = 0, family: int = socket.AF_UNSPEC) -> list[Address]:
    """The addresses of host (an IP literal is returned as is). Raises socket.gaierror."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    seen: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address not in seen:
            seen.append(address)
    return seen


def check_allowed(addresses: list[Address], allowed: AllowedRanges | None, what: str) -> None:
    """Raises OutOfRangeError when ranges are given and one address is outside them."""
    if allowed is not None:
        for address in addresses:
            allowed.check_address(address, what)


def classify(exc: BaseException) -> tuple[str, str]:
    """A failure while talking to a target -> (reason code, English detail). Walks the cause chain."""
    known = _known_failure(_cause_chain(exc))
    if known is not None:
        return known
    name = type(exc).__name__
    if "Timeout" in name:
        return "timeout", f"timed out ({name})"
    if "Protocol" in name:
        return "protocol_error", f"{name}: {exc}"
    return "network_error", f"{name}: {exc}"


def _cause_chain(exc: BaseException) -> list[BaseException]:
    """exc and its causes (or contexts), outermost first, each once."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _known_failure(seen: list[BaseException]) -> tuple[str, str] | None:
    """The reason of the first failure in the chain that is a known network one; a certificate failure anywhere
    in the chain wins; None when there is none."""
    for item in seen:
        if isinstance(item, ssl.SSLCertVerificationError):
            return "cert_invalid", f"certificate verification failed: {item.verify_message}"
    for item in seen:
        found = _network_failure(item)
        if found is not None:
            return found
    return None


def _network_failure(item: BaseException) -> tuple[str, str] | None:
    """(reason code, English detail) when item is a known network failure, else None."""
    if isinstance(item, ssl.SSLError):
        return "tls_handshake_failed", f"TLS handshake failed: {item.reason or item}"
    if isinstance(item, socket.gaierror):
        return "resolve_failed", f"cannot resolve: {item.strerror}"
    if isinstance(item, ConnectionRefusedError):
        return "connection_refused", "connection refused (RST)"
    if isinstance(item, ConnectionResetError):
        return "connection_refused", "connection reset by peer (RST)"
    if isinstance(item, TimeoutError):
        return "timeout", "timed out"
    if isinstance(item, OSError) and item.errno in _UNREACHABLE:
        return "unreachable", f"unreachable: {item.strerror}"
    return None
