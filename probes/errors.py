"""The errors of probes and discovery; all are `CollectError`s, so the scheduler treats them alike.

A probe turns a failure of its *target* (refused, timed out, bad certificate,
NXDOMAIN) into a `ProbeResult` that says down and why; these errors are for what
stops a probe from running at all: a target outside the allowed ranges, no
CAP_NET_RAW for a raw socket, scapy missing, a bad interface name.
"""

from __future__ import annotations

from core.collect import CollectError


class ProbeError(CollectError):
    """Root of probe failures that are not a verdict about the target."""


class OutOfRangeError(ProbeError):
    """A scheduled probe or a scan names a target outside the configured allowed ranges."""


class RawSocketPermissionError(ProbeError):
    """A raw-socket probe needs CAP_NET_RAW, which this process does not have."""


class InvalidTargetError(ProbeError):
    """The target text cannot be read (not a URL, not host:port, not a CIDR)."""


class InterfaceError(ProbeError):
    """The named network interface does not exist or cannot be used for sending."""
