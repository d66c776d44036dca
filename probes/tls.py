"""TLS probe: days to certificate expiry, chain validity, hostname match, protocol version.

One handshake verifies the chain (system CAs or `ca_file`); when that fails, a
second one without verification fetches the certificate anyway, so expiry is
reported for a bad certificate too. `evaluate` is pure.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from probes.certs import CertFacts, cert_facts, hostname_matches
from probes.errors import OutOfRangeError
from probes.net import check_allowed, classify, resolve
from probes.result import ProbeResult, failed
from probes.safety import AllowedRanges

KIND = "tls"
DAY_SECONDS = 86_400
VERSIONS = {"SSLv3": 0.3, "TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}


@dataclass(frozen=True, slots=True)
class TlsExpect:
    """What a good endpoint looks like."""

    min_days_valid: float = 14
    min_version: str = "TLSv1.2"
    ca_file: str | None = None
    server_name: str | None = None  # SNI and the name to match; default: the host probed


@dataclass(frozen=True, slots=True)
class Handshake:
    """What one TLS connection showed."""

    version: str
    cert: CertFacts
    chain_error: str | None  # None: the chain verified


def evaluate(shake: Handshake, name: str, expect: TlsExpect, now: datetime) -> tuple[str, str, dict[str, float | int]]:
    """The verdict: (reason code, English detail, `probe` fields). Pure."""
    expiry = shake.cert.expiry_seconds(now)
    matches = hostname_matches(shake.cert, name)
    fields: dict[str, float | int] = {
        "tls_cert_expiry_seconds": round(expiry, 3),
        "tls_cert_not_after_timestamp_seconds": shake.cert.not_after_at.timestamp(),
        "tls_cert_chain_valid": int(shake.chain_error is None), "tls_cert_hostname_match": int(matches),
        "tls_version": VERSIONS.get(shake.version, 0.0),
    }
    days = expiry / DAY_SECONDS
    if expiry <= 0:
        return "cert_expired", f"certificate expired {-days:.1f} days ago ({shake.cert.not_after_at.isoformat()})", fields
    if shake.chain_error is not None:
        return "cert_invalid", f"certificate chain invalid: {shake.chain_error}", fields
    if not matches:
        return "cert_hostname_mismatch", f"certificate ({shake.cert.subject}) is not valid for {name}", fields
    if VERSIONS.get(shake.version, 0.0) < VERSIONS.get(expect.min_version, 1.2):
        return "tls_version_too_old", f"{shake.version} is older than {expect.min_version}", fields
    if days < expect.min_days_valid:
        return "cert_expiring", f"certificate expires in {days:.1f} days (< {expect.min_days_valid:g})", fields
    return "ok", f"{shake.version}, certificate valid for {days:.1f} more days", fields


def _context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file) if verify else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False  # matched by `evaluate`, so a mismatch is a verdict, not a failure
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    if not verify:
        context.verify_mode = ssl.CERT_NONE
    return context


async def _shake(address: str, port: int, sni: str, context: ssl.SSLContext) -> tuple[str, bytes]:
    _reader, writer = await asyncio.open_connection(address, port, ssl=context, server_hostname=sni)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.version() or "", ssl_object.getpeercert(binary_form=True)
    finally:
        writer.close()


async def probe_tls(host: str, port: int, expect: TlsExpect = TlsExpect(), *, timeout: float,
                    allowed: AllowedRanges | None = None,
                    clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> ProbeResult:
    """Handshake with host:port within `timeout` seconds and judge its certificate; never raises for the target."""
    target = f"{host}:{port}"
    name = expect.server_name or host
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            addresses = await resolve(host, port)
            check_allowed(addresses, allowed, "target")
            address = str(addresses[0])
            try:
                version, der = await _shake(address, port, name, _context(True, expect.ca_file))
                chain_error = None
            except ssl.SSLCertVerificationError as exc:
                chain_error = exc.verify_message or str(exc)
                version, der = await _shake(address, port, name, _context(False, None))
    except OutOfRangeError as exc:
        return failed(KIND, target, "out_of_range", str(exc))
    except (OSError, TimeoutError) as exc:
        reason, detail = classify(exc)
        return failed(KIND, target, reason, detail, time.perf_counter() - started)
    try:
        facts = cert_facts(der)
    except ValueError as exc:
        return failed(KIND, target, "protocol_error", f"unreadable certificate: {exc}", time.perf_counter() - started)
    reason, detail, fields = evaluate(Handshake(version, facts, chain_error), name, expect, clock())
    return ProbeResult(KIND, target, reason == "ok", reason, detail, time.perf_counter() - started, fields)
