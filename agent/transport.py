"""How the agent reaches the server: TLS with an optional CA bundle and certificate pin; cleartext only when asked.

- `shipper.ca_file`: a PEM bundle of the CAs that may sign the server's certificate (a city's
  private CA); without it, the public CAs of certifi.
- `shipper.pin_sha256`: the SHA-256 of the server certificate (DER), checked right after the
  TLS handshake and before a byte of the request is sent, so a wrong certificate never sees the
  enrolment token or the credential. The chain is still verified: a pin narrows trust, it does
  not replace it.
- `http://` to anything but loopback is refused unless `--insecure` (or `shipper.insecure_http`)
  says so explicitly, and then a warning says what travels in the clear.

Python's `ssl` has no verification callback; the pin is checked by the SSLContext's
`sslsocket_class` / `sslobject_class` (documented hooks: the sync client's sockets and the
async client's memory-BIO objects), whose `do_handshake` compares the peer certificate.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import certifi

log = logging.getLogger(__name__)

CLEARTEXT_WARNING = (
    "the server URL {url} is plain http to a host that is not this machine: the enrolment token, this agent's "
    "credential and every metric and observation it sends travel unencrypted and can be read or altered on the way"
)


class TransportError(Exception):
    """The server URL or TLS settings cannot be used; the message says why and what to do."""


class InsecureServerError(TransportError):
    """A cleartext http:// server that is not on loopback, without an explicit --insecure."""


class CertificatePinError(ssl.SSLCertVerificationError):
    """The server's certificate does not have the configured SHA-256 fingerprint."""


def normalize_pin(value: str) -> str:
    """A SHA-256 fingerprint as 64 lowercase hex digits; colons and spaces (as openssl prints it) are dropped.

    Raises:
        ValueError: not 32 bytes of hex.
    """
    digits = value.replace(":", "").replace(" ", "").strip().lower()
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise ValueError("pin_sha256 must be the SHA-256 of the server certificate: 64 hex digits (colons allowed)")
    return digits


def check_server_url(url: str, *, insecure: bool) -> None:
    """Refuse a server URL that would send secrets in the clear, unless `insecure`; warn when it is allowed so.

    https:// is always fine; http:// only to a loopback address (or `localhost`), or with `insecure`.

    Raises:
        InsecureServerError: http:// to another host without `insecure`.
        TransportError: not an http(s) URL.
    """
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme != "http" or not parts.hostname:
        raise TransportError(f"server URL {url!r} is not an http:// or https:// URL")
    if _is_loopback(parts.hostname):
        return
    message = CLEARTEXT_WARNING.format(url=url)
    if not insecure:
        raise InsecureServerError(f"refusing: {message}. Use https://, or pass --insecure (shipper.insecure_http: true) "
                                  "if you accept that")
    log.warning("%s (allowed by --insecure)", message)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(*, ca_file: Path | None, pin_sha256: str | None) -> ssl.SSLContext:
    """The SSLContext the agent connects with: `ca_file` (or certifi's CAs), and the pin when one is given.

    Raises:
        TransportError: the CA file cannot be read.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else certifi.where())
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot load the CA bundle {ca_file}: {exc}") from exc
    if pin_sha256:
        pin = normalize_pin(pin_sha256)
        context.sslsocket_class = type("PinnedSSLSocket", (_Pinned, ssl.SSLSocket), {"pin_sha256": pin})
        context.sslobject_class = type("PinnedSSLObject", (_Pinned, ssl.SSLObject), {"pin_sha256": pin})
    return context


class _Pinned:
    """Mixed into SSLSocket / SSLObject: after a successful handshake, the peer certificate must match the pin."""

    pin_sha256: str

    def do_handshake(self, *args: object) -> None:
        super().do_handshake(*args)  # type: ignore[misc]
        der = self.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        seen = hashlib.sha256(der or b"").hexdigest()
        if seen != self.pin_sha256:
            raise CertificatePinError(
                f"the server certificate's SHA-256 is {seen}, not the pinned {self.pin_sha256}; not sending anything"
            )
