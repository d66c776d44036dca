"""X.509 facts a probe reports (pure, with `cryptography`): expiry, subject, hostname match (RFC 6125).

Hostname matching follows RFC 6125 §6.4: subjectAltName dNSName entries, a
wildcard only as the whole leftmost label, IP addresses only against iPAddress
entries; the subject CN is consulted only when the certificate has no SAN.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class CertFacts:
    """What a probe reports about a leaf certificate."""

    subject: str
    issuer: str
    not_before_at: datetime
    not_after_at: datetime
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    self_signed: bool

    def expiry_seconds(self, now: datetime) -> float:
        """Seconds until notAfter (negative once expired)."""
        return (self.not_after_at - now).total_seconds()


def cert_facts(der: bytes) -> CertFacts:
    """Read a DER certificate. Raises ValueError when it is not one."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns_names, ips = (), ()
    return CertFacts(
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        not_before_at=cert.not_valid_before_utc, not_after_at=cert.not_valid_after_utc,
        dns_names=dns_names, ip_addresses=ips, self_signed=cert.subject == cert.issuer,
    )


def _common_names(subject: str) -> list[str]:
    name = x509.Name.from_rfc4514_string(subject)
    return [str(attr.value) for attr in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]  # ".example.org"
    head, dot, rest = host.partition(".")
    return bool(head and dot) and "." + rest == suffix and suffix.count(".") >= 2


def hostname_matches(facts: CertFacts, host: str) -> bool:
    """True when the certificate is valid for host (a DNS name or an IP address)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        return any(ipaddress.ip_address(ip) == address for ip in facts.ip_addresses)
    names = facts.dns_names if (facts.dns_names or facts.ip_addresses) else tuple(_common_names(facts.subject))
    return any(_dns_match(name, host) for name in names)
