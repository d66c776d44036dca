"""What the scapy-based discovery shells share: importing scapy late, interface checks, permissions.

scapy is imported only when a scan runs (it takes about a second and reads the
routes of the network namespace it is imported in), never at import of probes.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

from probes.errors import InterfaceError, ProbeError, RawSocketPermissionError

T = TypeVar("T")


def scapy_all() -> ModuleType:
    """The scapy.all module. Raises ProbeError when scapy is not installed."""
    try:
        import scapy.all as scapy  # noqa: PLC0415 - scapy takes a second to import; only L2 probes need it
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ProbeError("discovery needs scapy (pip install 'scapy>=2.5,<3')") from exc
    return scapy


def interface_mac(iface: str) -> str:
    """The MAC address of iface. Raises InterfaceError when there is no such interface."""
    scapy = scapy_all()
    try:
        mac = scapy.get_if_hwaddr(iface)
    except (OSError, ValueError) as exc:
        raise InterfaceError(f"no usable network interface {iface!r}: {exc}") from exc
    if not mac or mac == "00:00:00:00:00:00" and iface != "lo":
        raise InterfaceError(f"network interface {iface!r} has no MAC address")
    return str(mac)


def with_raw_sockets(what: str, action: Callable[[], T]) -> T:
    """Run action; a permission error becomes RawSocketPermissionError naming CAP_NET_RAW."""
    try:
        return action()
    except PermissionError as exc:
        raise RawSocketPermissionError(f"{what} needs CAP_NET_RAW for raw sockets, which this process does not have") from exc
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise RawSocketPermissionError(f"{what} needs CAP_NET_RAW for raw sockets, which this process does not have") from exc
        if exc.errno in (errno.ENODEV, errno.ENXIO):
            raise InterfaceError(f"{what}: network interface unusable: {exc.strerror}") from exc
        raise
