"""DNS probe (RFC 1035): ask one server one question; the rcode, the answer, the response time.

dnspython does the wire format; `evaluate` (pure) judges the response against
the expected rcode and records. A truncated UDP answer is asked again over TCP.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from probes.errors import InvalidTargetError, OutOfRangeError
from probes.net import check_allowed, classify, resolve, split_host_port
from probes.result import ProbeResult, failed
from probes.safety import AllowedRanges

KIND = "dns"
RCODE_REASONS = {"NXDOMAIN": "nxdomain", "SERVFAIL": "servfail", "REFUSED": "refused"}


@dataclass(frozen=True, slots=True)
class DnsExpect:
    """What a good answer holds: the rcode, and records that must all be in the answer section."""

    record_type: str = "A"
    rcode: str = "NOERROR"
    records: tuple[str, ...] = ()
    require_answer: bool = True


def _norm(text: str) -> str:
    return text.strip().rstrip(".").lower()


def answer_records(response: dns.message.Message, record_type: str) -> list[str]:
    """The answer's records of the asked type as text (`10.0.0.1`, `mail.example.org`)."""
    wanted = dns.rdatatype.from_text(record_type)
    return [_norm(rdata.to_text()) for rrset in response.answer if rrset.rdtype == wanted for rdata in rrset]


def evaluate(rcode: str, records: list[str], expect: DnsExpect) -> tuple[str, str]:
    """The verdict on a response: (reason code, English detail). Pure."""
    if rcode != expect.rcode:
        return RCODE_REASONS.get(rcode, "rcode_mismatch"), f"rcode {rcode}, expected {expect.rcode}"
    missing = sorted({_norm(r) for r in expect.records} - set(records))
    if missing:
        return "records_mismatch", f"missing {', '.join(missing)} (answer: {', '.join(records) or 'empty'})"
    if expect.rcode == "NOERROR" and expect.require_answer and not records:
        return "no_answer", f"no {expect.record_type} records in the answer"
    return "ok", f"{rcode}: {', '.join(records) or 'no records'}"


async def probe_dns(name: str, server: str, expect: DnsExpect = DnsExpect(), *, timeout: float,
                    allowed: AllowedRanges | None = None) -> ProbeResult:
    """Ask `server` (host or host:port, port 53 by default) for name; never raises for the server's failures.

    Raises:
        InvalidTargetError: server is not host[:port], or name/record type cannot be asked.
    """
    target = f"{name}@{server}"
    host, port = split_host_port(server, 53)
    try:
        query = dns.message.make_query(name, expect.record_type)
    except dns.exception.DNSException as exc:
        raise InvalidTargetError(f"cannot ask for {name!r} {expect.record_type}: {exc}") from exc
    started = time.perf_counter()
    try:
        addresses = await resolve(host, port)
        check_allowed(addresses, allowed, "DNS server")
        asked_at = time.perf_counter()
        response = await dns.asyncquery.udp(query, str(addresses[0]), port=port, timeout=timeout)
        if response.flags & dns.flags.TC:
            remaining = max(timeout - (time.perf_counter() - started), 0.001)
            response = await dns.asyncquery.tcp(query, str(addresses[0]), port=port, timeout=remaining)
        response_seconds = time.perf_counter() - asked_at
    except OutOfRangeError as exc:
        return failed(KIND, target, "out_of_range", str(exc))
    except dns.exception.Timeout:
        return failed(KIND, target, "timeout", f"no answer within {timeout:g} s", time.perf_counter() - started)
    except dns.exception.DNSException as exc:
        return failed(KIND, target, "protocol_error", f"malformed response: {exc}", time.perf_counter() - started)
    except (OSError, TimeoutError, ValueError) as exc:
        reason, detail = classify(exc)
        return failed(KIND, target, reason, detail, time.perf_counter() - started)
    rcode = dns.rcode.to_text(response.rcode())
    records = answer_records(response, expect.record_type)
    reason, detail = evaluate(rcode, records, expect)
    fields = {"dns_rcode": int(response.rcode()), "dns_answer_rrs": len(response.answer),
              "dns_response_seconds": response_seconds}
    return ProbeResult(KIND, target, reason == "ok", reason, detail, time.perf_counter() - started, fields)
