"""`egovmon probe`: one check or one scan now, from the command line.

A one-shot check of a single named target (http, tls, dns, tcp, icmp) is the
operator's explicit choice and needs no allowed range. Scans (arp, website,
traceroute) go only inside the ranges given with --allow or the agent
configuration's `probes.allowed_ranges`. Exit status: 0 up, 1 down, 2 the probe
could not run. With --json, one JSON document on stdout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

probe_app = typer.Typer(help="Active checks and discovery scans, once, now.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]
LangOption = Annotated[str, typer.Option("--lang", help="Language of the texts: zh or en")]
TimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the target")]
AllowOption = Annotated[list[str] | None, typer.Option("--allow", help="Allowed range (CIDR) for the scan; repeatable")]
ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="Agent configuration with probes.allowed_ranges",
                                                   exists=True, dir_okay=False)]


def _allowed(allow: list[str] | None, config: Path | None) -> Any:
    from probes.safety import AllowedRanges

    ranges = list(allow or [])
    if config is not None:
        from agent.settings import load_agent_settings

        ranges += load_agent_settings(config).probes.allowed_ranges
    return AllowedRanges.parse(ranges)


def _show(result: Any, as_json: bool, lang: str) -> None:
    """Print one probe result (JSON, or text in `lang`) and exit 0 when it succeeded, 1 when not."""
    if as_json:
        typer.echo(json.dumps(result.to_json(lang), ensure_ascii=False))
    else:
        _print_text(result, lang)
    raise typer.Exit(0 if result.success else 1)


def _print_text(result: Any, lang: str) -> None:
    """State, reason and duration, then each field and phase time, then each finding with its attributes."""
    from probes.result import reason_text

    zh = lang == "zh"
    state = ("正常" if zh else "UP") if result.success else ("异常" if zh else "DOWN")
    typer.echo(f"{state}  {result.kind} {result.target}: {reason_text(result.reason, lang)} ({result.detail})")
    typer.echo(f"  {'耗时' if zh else 'duration'}: {result.duration_seconds * 1000:.1f} ms")
    for key, value in {**result.fields, **{f"phase_{k}_seconds": v for k, v in result.phases.items()}}.items():
        typer.echo(f"  {key}: {value}")
    for finding in result.findings:
        attributes = ", ".join(f"{k}={v}" for k, v in finding.attributes.items())
        typer.echo(f"  {finding.kind} {finding.subject}: {attributes}")


def _run(make: Callable[[], Coroutine[Any, Any, object]], as_json: bool, lang: str) -> None:
    """Run one probe; a ProbeError (out of range, no CAP_NET_RAW, bad interface) exits 2 with its message."""
    from probes.errors import ProbeError

    try:
        result = asyncio.run(make())
    except ProbeError as exc:
        if as_json:
            typer.echo(json.dumps({"error": type(exc).__name__, "message": str(exc)}, ensure_ascii=False))
        else:
            typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _show(result, as_json, lang)


@probe_app.command("http")
def http(
    url: str,
    status: Annotated[list[int] | None, typer.Option("--status", help="Accepted status code; repeatable (default 2xx)")] = None,
    body_regex: Annotated[str | None, typer.Option("--body-regex", help="The body must match")] = None,
    follow: Annotated[bool, typer.Option("--follow/--no-follow", help="Follow redirects")] = True,
    insecure: Annotated[bool, typer.Option("--insecure", help="Do not verify the certificate")] = False,
    ca_file: Annotated[str | None, typer.Option("--ca-file", help="CA bundle to verify against")] = None,
    timeout: TimeoutOption = 10.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """Check a URL: status, timings by phase, expected content, redirects."""
    from probes.http import HttpExpect, HttpProber

    async def make() -> Any:
        async with HttpProber() as prober:
            expect = HttpExpect(tuple(status or ()), body_regex, None, follow, 10, not insecure, ca_file)
            return await prober.probe(url, expect, timeout=timeout)

    _run(make, as_json, lang)


@probe_app.command("tls")
def tls(
    target: Annotated[str, typer.Argument(help="HOST:PORT")],
    min_days: Annotated[float, typer.Option("--min-days", help="Fewer days to expiry is a failure")] = 14,
    ca_file: Annotated[str | None, typer.Option("--ca-file", help="CA bundle to verify against")] = None,
    server_name: Annotated[str | None, typer.Option("--server-name", help="SNI and the name to match")] = None,
    timeout: TimeoutOption = 10.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """Check a TLS endpoint: days to expiry, chain validity, hostname match, protocol version."""
    from probes.net import split_host_port
    from probes.tls import TlsExpect, probe_tls

    def make() -> Coroutine[Any, Any, object]:
        host, port = split_host_port(target, 443)
        return probe_tls(host, port, TlsExpect(min_days, "TLSv1.2", ca_file, server_name), timeout=timeout)

    _run(make, as_json, lang)


@probe_app.command("dns")
def dns(
    name: str,
    server: Annotated[str, typer.Option("--server", help="DNS server, host or host:port")],
    record_type: Annotated[str, typer.Option("--type", help="Record type")] = "A",
    expect: Annotated[list[str] | None, typer.Option("--expect", help="A record that must be in the answer; repeatable")] = None,
    rcode: Annotated[str, typer.Option("--rcode", help="Expected response code")] = "NOERROR",
    timeout: TimeoutOption = 5.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """Ask a DNS server: the answer, the expected records, the response time."""
    from probes.dns import DnsExpect, probe_dns

    _run(lambda: probe_dns(name, server, DnsExpect(record_type.upper(), rcode.upper(), tuple(expect or ())),
                           timeout=timeout), as_json, lang)


@probe_app.command("tcp")
def tcp(target: Annotated[str, typer.Argument(help="HOST:PORT")], timeout: TimeoutOption = 5.0,
        as_json: JsonOption = False, lang: LangOption = "zh") -> None:
    """Check that HOST:PORT accepts a TCP connection."""
    from probes.net import split_host_port
    from probes.tcp import probe_tcp

    def make() -> Coroutine[Any, Any, object]:
        host, port = split_host_port(target)
        return probe_tcp(host, port, timeout=timeout)

    _run(make, as_json, lang)


@probe_app.command("icmp")
def icmp(host: str, timeout: TimeoutOption = 2.0, as_json: JsonOption = False, lang: LangOption = "zh") -> None:
    """Send one ICMP echo request (needs CAP_NET_RAW or the unprivileged ping socket)."""
    from probes.icmp import probe_icmp

    _run(lambda: probe_icmp(host, timeout=timeout), as_json, lang)


@probe_app.command("arp")
def arp(
    cidr: str,
    iface: Annotated[str, typer.Option("--iface", help="Network interface to sweep on")],
    allow: AllowOption = None, config: ConfigOption = None,
    rate: Annotated[float, typer.Option("--rate", help="ARP requests per second")] = 200.0,
    timeout: TimeoutOption = 2.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """ARP sweep of a CIDR on an interface (inside the allowed ranges): addresses and MACs that answer."""
    from probes.arp import sweep

    _run(lambda: sweep(cidr, iface, allowed=_allowed(allow, config), timeout=timeout, rate=rate), as_json, lang)


@probe_app.command("dhcp")
def dhcp(
    iface: Annotated[str, typer.Option("--iface", help="Network interface to send the DISCOVER on")],
    authorized: Annotated[list[str] | None, typer.Option("--authorized", help="Authorized server id; repeatable")] = None,
    timeout: TimeoutOption = 6.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """Rogue DHCP detection: broadcast a DISCOVER, report every server that offers and its network."""
    from probes.dhcp import detect

    _run(lambda: detect(iface, authorized=authorized or (), timeout=timeout), as_json, lang)


@probe_app.command("traceroute")
def traceroute_command(
    target: str,
    protocol: Annotated[str, typer.Option("--protocol", help="icmp, udp or tcp")] = "icmp",
    port: Annotated[int | None, typer.Option("--port", help="Destination port (udp, tcp)")] = None,
    max_hops: Annotated[int, typer.Option("--max-hops")] = 16,
    allow: AllowOption = None, config: ConfigOption = None,
    timeout: TimeoutOption = 2.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """Trace the path to an address (inside the allowed ranges)."""
    from probes.traceroute import trace

    if protocol not in ("icmp", "udp", "tcp"):
        raise typer.BadParameter("icmp, udp or tcp", param_hint="--protocol")
    _run(lambda: trace(target, allowed=_allowed(allow, config), protocol=protocol,  # type: ignore[arg-type]
                       port=port, max_hops=max_hops, timeout=timeout), as_json, lang)


@probe_app.command("website")
def website_command(
    cidr: str,
    ports: Annotated[list[int] | None, typer.Option("--port", help="Port to try; repeatable (default 80 443 8080 8443)")] = None,
    allow: AllowOption = None, config: ConfigOption = None,
    timeout: TimeoutOption = 2.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """Find HTTP(S) services in a range (inside the allowed ranges): title, Server header, certificate subject."""
    from probes.website import DEFAULT_PORTS, discover

    _run(lambda: discover(cidr, allowed=_allowed(allow, config), ports=tuple(ports or DEFAULT_PORTS),
                          timeout=timeout), as_json, lang)


@probe_app.command("check")
def check_command(
    kind: Annotated[str, typer.Argument(help="A probe kind (egovmon probe kinds lists them)")],
    target: Annotated[str, typer.Argument(help="What the kind checks: URL, HOST:PORT, host, name or CIDR")] = "",
    expect: Annotated[list[str] | None, typer.Option(
        "--expect", help="KEY=VALUE of the kind's `expect` settings (a YAML value); repeatable")] = None,
    allow: AllowOption = None, config: ConfigOption = None,
    timeout: TimeoutOption = 10.0, as_json: JsonOption = False, lang: LangOption = "zh",
) -> None:
    """Run one check of any kind, with the same settings as a scheduled check (`probes.checks` in the agent file).

    Kinds that scan ranges run only inside --allow / the configuration's allowed
    ranges; a check of one named target needs none.
    """
    import yaml
    from pydantic import ValidationError

    from probes.http import HttpProber
    from probes.kind import RunContext
    from probes.kinds import catalogue
    from probes.safety import AllowedRanges

    known = catalogue()
    if kind not in known:
        raise typer.BadParameter(f"one of {', '.join(known)}", param_hint="KIND")
    settings: dict[str, Any] = {}
    for item in expect or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--expect")
        settings[key] = yaml.safe_load(value)
    try:
        check = known[kind].parse({"name": "cli", "target": target, "timeout_seconds": timeout, "expect": settings})
    except ValidationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expect") from exc
    # one named target: no range needed (an empty AllowedRanges would refuse every address); scans: the ranges given
    allowed = _allowed(allow, config) if known[kind].scan or allow or config else AllowedRanges.parse(["0.0.0.0/0", "::/0"])

    async def make() -> Any:
        async with HttpProber() as prober:
            return await known[kind].run(check, RunContext(allowed, 200.0, prober))

    _run(make, as_json, lang)


@probe_app.command("kinds")
def kinds_command(lang: LangOption = "zh") -> None:
    """List the probe kinds this agent knows."""
    from probes.kinds import catalogue

    for kind in catalogue().values():
        zh, en = kind.summary
        typer.echo(f"{kind.name:12} {zh if lang == 'zh' else en}{'  (scan)' if kind.scan else ''}")
