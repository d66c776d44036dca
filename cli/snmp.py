"""`egovmon snmp`: poll one device and print its normalized snapshot, or listen for traps in the foreground."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from collectors.snmp.engine import Device
    from collectors.snmp.poller import PollResult

snmp_app = typer.Typer(help="SNMP: poll a device (v2c/v3), receive traps.", no_args_is_help=True)

MESSAGES = {
    "zh": {"down": "设备无响应: {error}", "summary": "{name}: {descr}\n接口 {interfaces} 个, 地址 {addresses} 个, "
           "路由 {routes} 条, ARP {arp} 条, LLDP 邻居 {lldp} 个, 轮询用时 {seconds:.3f} 秒",
           "listening": "正在 {host}:{port} 接收 SNMP trap (Ctrl-C 结束)", "bad_target": "目标地址无效: {target}",
           "need_v3_keys": "SNMPv3 需要 --v3-user",
           "totals": "已接收 {received} 个, 引擎出错 {errors} 个, 拒收 {refused} 个 ({reasons})"},
    "en": {"down": "device did not answer: {error}", "summary": "{name}: {descr}\n{interfaces} interfaces, "
           "{addresses} addresses, {routes} routes, {arp} ARP entries, {lldp} LLDP neighbours, polled in "
           "{seconds:.3f} s", "listening": "receiving SNMP traps on {host}:{port} (Ctrl-C to stop)",
           "bad_target": "invalid target: {target}", "need_v3_keys": "SNMPv3 needs --v3-user",
           "totals": "received {received}, engine errors {errors}, refused {refused} ({reasons})"},
}

Lang = Annotated[str, typer.Option("--lang", help="Output language: zh (default) or en")]


def _say(lang: str, key: str, **values: Any) -> str:
    return MESSAGES.get(lang, MESSAGES["zh"])[key].format(**values)


@snmp_app.command("poll")
def poll(
    target: Annotated[str, typer.Argument(help="HOST[:PORT] of the SNMP agent (port 161 by default)")],
    community: Annotated[str, typer.Option(help="v2c community")] = "public",
    v3_user: Annotated[str | None, typer.Option("--v3-user", help="SNMPv3 USM user (switches to v3)")] = None,
    auth_proto: Annotated[str, typer.Option("--auth-proto", help="SHA, SHA256, SHA512 or MD5")] = "SHA256",
    auth_key: Annotated[str | None, typer.Option("--auth-key", help="v3 authentication pass phrase")] = None,
    priv_proto: Annotated[str, typer.Option("--priv-proto", help="AES (128), AES256, AES256C (Cisco) or DES")] = "AES",
    priv_key: Annotated[str | None, typer.Option("--priv-key", help="v3 privacy pass phrase")] = None,
    modules: Annotated[str | None, typer.Option(help="Comma-separated modules (default: all that fit)")] = None,
    timeout: Annotated[float, typer.Option(help="Per-request timeout, seconds")] = 2.0,
    retries: Annotated[int, typer.Option(help="Re-sends of an unanswered request")] = 1,
    max_repetitions: Annotated[int, typer.Option(help="GETBULK max-repetitions")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the snapshot as JSON")] = False,
    lang: Lang = "zh",
) -> None:
    """Poll one device once and print its snapshot (system, interfaces with counters, addresses, routes, ARP, LLDP).

    Exit status 1 when the device did not answer; the JSON then has `status.error`.
    """
    from collectors.snmp.engine import Device

    host, port = _target(target, lang)
    chosen = _modules(modules)
    device = Device(
        name=host, host=host, port=port, version="3" if v3_user else "2c", community=community,
        user=v3_user or "", auth_protocol=auth_proto.upper().replace("-", ""),  # type: ignore[arg-type]
        auth_key=auth_key or "", priv_protocol=priv_proto.upper().replace("-", ""),  # type: ignore[arg-type]
        priv_key=priv_key or "", timeout_seconds=timeout, retries=retries,
    )

    logging.getLogger("collectors.snmp").addHandler(logging.NullHandler())  # the status says it, once
    result = asyncio.run(_poll_once(device, chosen, max_repetitions=max_repetitions))
    _print_result(result, f"{host}:{port}", host=host, as_json=as_json, lang=lang)
    if not result.status.up:
        if not as_json:
            typer.echo(_say(lang, "down", error=result.status.error), err=True)
        raise typer.Exit(1)


def _target(target: str, lang: str) -> tuple[str, int]:
    """HOST[:PORT] as (host, port); exits 2 when it is not an address."""
    from collectors.snmp.engine import parse_hostport

    try:
        return parse_hostport(target)
    except ValueError as exc:
        typer.echo(_say(lang, "bad_target", target=target), err=True)
        raise typer.Exit(2) from exc


def _modules(modules: str | None) -> tuple[str, ...]:
    """The comma-separated module names, or the default set; exits 2 naming any unknown module."""
    from collectors.snmp.modules import DEFAULT_MODULES, MODULES

    chosen = tuple(m.strip() for m in modules.split(",")) if modules else DEFAULT_MODULES
    unknown = [m for m in chosen if m not in MODULES]
    if unknown:
        typer.echo(f"unknown modules {unknown}; known: {sorted(MODULES)}", err=True)
        raise typer.Exit(2)
    return chosen


async def _poll_once(device: Device, modules: tuple[str, ...], *, max_repetitions: int) -> PollResult:
    """One poll of `device` on an engine of its own, closed afterwards."""
    from collectors.snmp.engine import RoutingEngine
    from collectors.snmp.poller import Poller

    engine = RoutingEngine()
    try:
        return await Poller(engine, max_repetitions=max_repetitions).poll(device, modules)
    finally:
        engine.close()


def _print_result(result: PollResult, device: str, *, host: str, as_json: bool, lang: str) -> None:
    """The snapshot and status as JSON, or a one-paragraph summary when the device answered."""
    status = result.status
    if as_json:
        status_json = {"up": status.up, "error": status.error, "error_kind": status.error_kind,
                       "poll_duration_seconds": round(status.duration_seconds, 6), "varbinds": status.varbinds,
                       "polled_at": status.polled_at.isoformat()}  # fmt: skip
        typer.echo(json.dumps({"device": device, "status": status_json, **(result.snapshot or {})},
                              ensure_ascii=False, indent=2))
    elif result.snapshot is not None:
        snap = result.snapshot
        typer.echo(_say(lang, "summary", name=snap["system"]["name"] or host, descr=snap["system"]["descr"][:200],
                        interfaces=len(snap["interfaces"]), addresses=len(snap["addresses"]),
                        routes=len(snap["routes"]), arp=len(snap["arp"]), lldp=len(snap["lldp"]),
                        seconds=status.duration_seconds))


@snmp_app.command("traps")
def traps(
    port: Annotated[int, typer.Option(help="UDP port to listen on")] = 162,
    host: Annotated[str, typer.Option(help="Listen address")] = "0.0.0.0",
    community: Annotated[list[str], typer.Option(help="Accepted v1/v2c community (repeatable)")] = [],  # noqa: B006
    lang: Lang = "zh",
) -> None:
    """Receive traps and informs in the foreground and print each event as one JSON line."""
    from collectors.snmp.traps import Event, TrapReceiver

    def show(event: Event) -> None:
        typer.echo(json.dumps({"source": event.source, "event": event.event, "severity": event.severity,
                               "trap_oid": event.trap_oid, "if_index": event.if_index, "interface": event.interface,
                               "vendor": event.vendor, "received_at": event.received_at.isoformat(),
                               "varbinds": dict(event.varbinds)}, ensure_ascii=False))
        sys.stdout.flush()

    async def run() -> None:
        receiver = TrapReceiver(host, port, communities=community, on_event=show)
        await receiver.start()
        bound_host, bound_port = receiver.address
        typer.echo(_say(lang, "listening", host=bound_host, port=bound_port), err=True)
        try:
            await asyncio.Event().wait()
        finally:
            receiver.stop()
            reasons = ", ".join(f"{reason}={count}" for reason, count in receiver.refused.items())
            typer.echo(_say(lang, "totals", received=receiver.received, errors=receiver.errors,
                            refused=sum(receiver.refused.values()), reasons=reasons), err=True)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
