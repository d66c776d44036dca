"""The SNMP error family: every failure of a poll or a walk is one of these (all are CollectErrors)."""

from __future__ import annotations

from core.collect import CollectError, CollectTimeoutError, TargetUnreachableError


class SnmpError(CollectError):
    """Root of SNMP failures; the message names the device and what failed."""


class SnmpTimeoutError(SnmpError, TargetUnreachableError, CollectTimeoutError):
    """No answer after every retry: device down, wrong community (v2c agents stay silent), or filtered."""


class SnmpAuthError(SnmpError):
    """SNMPv3 credentials refused: unknown user, wrong digest (auth key) or decryption error (priv key)."""


class SnmpDecodeError(SnmpError):
    """A datagram is not a well-formed SNMP message (truncated, garbage, unsupported tag)."""


class SnmpResponseError(SnmpError):
    """The agent answered with an error-status (tooBig, genErr, noAccess...); `status` is its number."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class NonIncreasingOidError(SnmpError):
    """The agent returned an OID not greater than the one asked for: a walk would loop (RFC 3416 §4.2.3)."""


class WalkTooLongError(SnmpError):
    """A walk returned more varbinds than the configured bound: a runaway agent."""
