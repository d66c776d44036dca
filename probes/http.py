"""HTTP(S) probe: status, timings by phase, expected content, redirects followed or not.

Phases as in prometheus-blackbox-exporter: `resolve`, `connect`, `tls`,
`processing` (request sent until response headers), `transfer` (the body),
summed over the redirects followed. Every check opens a fresh connection (no
keep-alive), so it measures what a new visitor gets. The verdict (`evaluate`)
is pure; `HttpProber` is the shell around httpx.
"""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import httpx

from probes.errors import OutOfRangeError
from probes.net import check_allowed, classify, resolve
from probes.page import decode_body, page_title
from probes.result import ProbeResult, failed
from probes.safety import AllowedRanges

KIND = "http"
MAX_BODY_BYTES = 1 << 20
TLS_VERSIONS = {"TLSv1": 1.0, "TLSv1.1": 1.1, "TLSv1.2": 1.2, "TLSv1.3": 1.3}


@dataclass(frozen=True, slots=True)
class HttpExpect:
    """What a good answer looks like. No status codes given: any 2xx."""

    status_codes: tuple[int, ...] = ()
    body_regex: str | None = None
    body_not_regex: str | None = None
    follow_redirects: bool = True
    max_redirects: int = 10
    verify_tls: bool = True
    ca_file: str | None = None
    method: str = "GET"


@dataclass(slots=True)
class HttpAnswer:
    """What the last response of one check was (the shell fills it, `evaluate` judges it)."""

    status: int
    url: str
    body: bytes
    content_type: str | None
    server: str
    redirects: int
    tls_version: str | None = None
    peer_cert_der: bytes | None = None
    phases: dict[str, float] = field(default_factory=dict)


def evaluate(answer: HttpAnswer, expect: HttpExpect) -> tuple[str, str]:
    """The verdict on an answer: (reason code, English detail); reason "ok" when good. Pure."""
    if 300 <= answer.status < 400 and expect.follow_redirects and answer.redirects >= expect.max_redirects:
        return "too_many_redirects", f"more than {expect.max_redirects} redirects, last at {answer.url}"
    good = answer.status in expect.status_codes if expect.status_codes else 200 <= answer.status < 300
    if not good:
        wanted = ",".join(map(str, expect.status_codes)) or "2xx"
        return "status_mismatch", f"status {answer.status} from {answer.url}, expected {wanted}"
    if expect.body_regex or expect.body_not_regex:
        mismatch = _content_mismatch(decode_body(answer.body, answer.content_type), expect)
        if mismatch:
            return "content_mismatch", mismatch
    return "ok", f"status {answer.status} from {answer.url}"


def _content_mismatch(text: str, expect: HttpExpect) -> str:
    """Why the body fails the expected (or forbidden) pattern; "" when it passes."""
    if expect.body_regex and not re.search(expect.body_regex, text):
        return f"body does not match {expect.body_regex!r}"
    if expect.body_not_regex and re.search(expect.body_not_regex, text):
        return f"body matches the forbidden {expect.body_not_regex!r}"
    return ""


def answer_fields(answer: HttpAnswer) -> dict[str, int | float]:
    """The `probe` fields of an answer, named as blackbox_exporter names them."""
    fields: dict[str, int | float] = {
        "http_status_code": answer.status, "http_redirects": answer.redirects,
        "http_content_length": len(answer.body), "http_ssl": int(answer.tls_version is not None),
    }
    if answer.tls_version in TLS_VERSIONS:
        fields["tls_version"] = TLS_VERSIONS[answer.tls_version]
    return fields


def _peer_tls(response: httpx.Response) -> tuple[str | None, bytes | None]:
    """The TLS version and the peer's certificate (DER) of the connection that answered; (None, None) for plain
    HTTP."""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    if ssl_object is None:
        return None, None
    return ssl_object.version(), ssl_object.getpeercert(binary_form=True)


async def _read_body(response: httpx.Response) -> bytearray:
    """The raw body, reading stops once MAX_BODY_BYTES are in (the caller cuts the excess)."""
    body = bytearray()
    async for chunk in response.aiter_raw():
        body += chunk
        if len(body) >= MAX_BODY_BYTES:
            break
    return body


class _Phases:
    """The httpcore trace callback: adds each phase's duration into `phases`."""

    _STARTS: ClassVar[dict[str, str]] = {"connect_tcp.started": "connect", "start_tls.started": "tls",
               "send_request_headers.started": "processing", "receive_response_headers.complete": "transfer"}
    _ENDS: ClassVar[dict[str, str]] = {"connect_tcp.complete": "connect", "start_tls.complete": "tls",
             "receive_response_headers.complete": "processing", "receive_response_body.complete": "transfer"}

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases = phases
        self._open: dict[str, float] = {}

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        event = name.split(".", 1)[1]
        now = time.perf_counter()
        ended = self._ENDS.get(event)
        if ended and ended in self._open:
            self.phases[ended] = self.phases.get(ended, 0.0) + now - self._open.pop(ended)
        started = self._STARTS.get(event)
        if started:
            self._open[started] = now


class HttpProber:
    """Runs HTTP checks; keeps one httpx client per TLS setting (building SSL contexts is costly).

    Use as `async with HttpProber() as prober:` or call `aclose()`.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[bool, str | None], httpx.AsyncClient] = {}

    def _client(self, verify: bool, ca_file: str | None) -> httpx.AsyncClient:
        key = (verify, ca_file)
        if key not in self._clients:
            context: ssl.SSLContext | bool
            if not verify:
                context = False
            else:
                context = ssl.create_default_context(cafile=ca_file) if ca_file else True
            self._clients[key] = httpx.AsyncClient(
                verify=context, follow_redirects=False, http2=False, trust_env=False,
                limits=httpx.Limits(max_keepalive_connections=0, max_connections=None),
                headers={"User-Agent": "egovmon-probe/0.1"},
            )
        return self._clients[key]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def fetch(self, url: str, expect: HttpExpect, *, timeout: float,
                    allowed: AllowedRanges | None = None) -> HttpAnswer:
        """Request url (and its redirects, when followed) within `timeout` seconds in all.

        Raises:
            OutOfRangeError: with `allowed`, a host (also of a redirect) resolved outside the ranges.
            httpx.HTTPError, OSError, TimeoutError: the target failed; `probes.net.classify` names why.
        """
        client = self._client(expect.verify_tls, expect.ca_file)
        phases: dict[str, float] = {}
        deadline = time.perf_counter() + timeout
        redirects = 0
        while True:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise httpx.UnsupportedProtocol(f"not an http(s) URL: {url}")
            resolve_started = time.perf_counter()
            addresses = await resolve(parts.hostname, parts.port or 0)
            phases["resolve"] = phases.get("resolve", 0.0) + time.perf_counter() - resolve_started
            check_allowed(addresses, allowed, "target")
            remaining = max(deadline - time.perf_counter(), 0.001)
            extensions = {"trace": _Phases(phases), "timeout": httpx.Timeout(remaining).as_dict()}
            request = client.build_request(expect.method, url, extensions=extensions)
            response = await client.send(request, stream=True)
            try:
                tls_version, cert = _peer_tls(response)
                body = await _read_body(response)
            finally:
                await response.aclose()
            location = response.headers.get("location")
            if not (response.is_redirect and location and expect.follow_redirects
                    and redirects < expect.max_redirects):
                return HttpAnswer(response.status_code, url, bytes(body[:MAX_BODY_BYTES]),
                                  response.headers.get("content-type"), response.headers.get("server", ""),
                                  redirects, tls_version, cert, phases)
            url = str(response.url.join(location))
            redirects += 1

    async def probe(self, url: str, expect: HttpExpect = HttpExpect(), *, timeout: float,
                    allowed: AllowedRanges | None = None) -> ProbeResult:
        """Check url once; every failure of the target becomes a down result, never an exception."""
        started = time.perf_counter()
        try:
            answer = await self.fetch(url, expect, timeout=timeout, allowed=allowed)
        except OutOfRangeError as exc:
            return failed(KIND, url, "out_of_range", str(exc))
        except (httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError, ValueError) as exc:
            reason, detail = classify(exc)
            return failed(KIND, url, reason, detail, time.perf_counter() - started)
        reason, detail = evaluate(answer, expect)
        return ProbeResult(KIND, url, reason == "ok", reason, detail, time.perf_counter() - started,
                           answer_fields(answer), dict(answer.phases))


def title_of(answer: HttpAnswer) -> str:
    """The <title> of the answer's page."""
    return page_title(decode_body(answer.body, answer.content_type))
