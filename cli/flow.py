"""`egovmon flow`: decode a NetFlow/IPFIX capture, or listen for exports in the foreground.

numpy and the decoders are imported inside the commands, so `egovmon` itself
imports without numpy (an agent host without flow collection needs neither).
"""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypedDict

import typer

from core.jsontypes import JsonObject

if TYPE_CHECKING:
    import numpy as np

    from collectors.flow.listener import ListenerStats

flow_app = typer.Typer(help="NetFlow v5/v9 and IPFIX: decode captures, listen for exports.", no_args_is_help=True)

TOTAL_FIELDS = ("datagrams", "flows", "packets", "bytes", "options", "malformed", "skipped_sets")


def _address(raw: bytes) -> str:
    """A FLOW_DTYPE 16-byte address as text (IPv4-mapped shown as IPv4); numpy strips trailing NULs."""
    address = ipaddress.IPv6Address(raw.ljust(16, b"\0"))
    return str(address.ipv4_mapped or address)


def _iso(unix_ms: int) -> str | None:
    """Unix milliseconds as ISO 8601 UTC; None when not exported (0)."""
    if unix_ms == 0:
        return None
    return datetime.fromtimestamp(unix_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


class DecodedFile(TypedDict):
    """What `decode_file` found: one JSON object per flow record, and the counts (TOTAL_FIELDS)."""

    records: list[JsonObject]
    totals: dict[str, int]


def _record(exporter: str, row: np.void) -> JsonObject:
    """One FLOW_DTYPE record as JSON-ready values: addresses as text, times as ISO strings."""
    out: JsonObject = {"exporter": exporter}
    for name in row.dtype.names or ():
        value = row[name]
        if name in ("src_addr", "dst_addr", "next_hop"):
            out[name] = _address(bytes(value))
        elif name in ("start_ms", "end_ms"):
            out[name.replace("_ms", "_at")] = _iso(int(value))
        else:
            out[name] = int(value)
    return out


def decode_file(path: Path) -> DecodedFile:
    """Decode every datagram of a pcap or raw file: {"records": [...], "totals": {...}}.

    Templates are kept per exporter, learned in file order. Malformed
    datagrams are counted in totals["malformed"] and skipped.
    """
    from collectors.flow.decode import TemplateCache, decode, read_datagrams
    from collectors.flow.model import DecodeError

    caches: dict[str, TemplateCache] = {}
    records: list[JsonObject] = []
    totals = dict.fromkeys(TOTAL_FIELDS, 0)
    for exporter, datagram in read_datagrams(path):
        totals["datagrams"] += 1
        cache = caches.setdefault(exporter, TemplateCache())
        try:
            decoded = decode(datagram, exporter, cache.mapping(), contexts=cache.contexts())
        except DecodeError:
            totals["malformed"] += 1
            continue
        except Exception:  # noqa: BLE001 - a decoder bug on hostile input: counted like malformed input, the rest decoded
            totals["malformed"] += 1
            continue
        cache.apply(decoded)
        flows = decoded.flows
        totals["flows"] += len(flows)
        totals["packets"] += int(flows["packets"].sum()) if len(flows) else 0
        totals["bytes"] += int(flows["bytes"].sum()) if len(flows) else 0
        totals["options"] += len(decoded.options)
        totals["skipped_sets"] += decoded.skipped_sets
        records.extend(_record(exporter, row) for row in flows)
    return {"records": records, "totals": totals}


def _record_line(record: JsonObject) -> str:
    return (
        f"{record['start_at'] or '-'} {record['end_at'] or '-'} proto {record['protocol']:>3} "
        f"{record['src_addr']}:{record['src_port']} -> {record['dst_addr']}:{record['dst_port']} "
        f"packets {record['packets']} bytes {record['bytes']}"
    )


@flow_app.command("decode")
def decode_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="pcap, or raw NetFlow/IPFIX payloads")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document")] = False,
) -> None:
    """Decode a capture and print its flow records and totals (flows, packets, bytes, malformed, skipped sets)."""
    result = decode_file(path)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for record in result["records"]:
        typer.echo(_record_line(record))
    typer.echo(" ".join(f"{name}={value}" for name, value in result["totals"].items()))


def _stats_lines(stats: ListenerStats) -> list[str]:
    lines = [
        f"{s.exporter}: datagrams={s.datagrams} flows={s.records} packets={s.packets} bytes={s.bytes} "
        f"malformed={s.malformed} skipped_sets={s.skipped_sets} queue_drops={s.queue_drops} "
        f"lost_records~{s.lost_records}"
        for s in sorted(stats.exporters.values(), key=lambda s: s.exporter)
    ]
    errors = " ".join(f"{reason}={count}" for reason, count in (stats.decode_errors or {}).items())
    lines.append(f"kernel_drops={stats.kernel_drops} evicted_templates={stats.evicted_templates} "
                 f"evicted_exporters={stats.evicted_exporters} worker_restarts={stats.worker_restarts} "
                 f"decode_errors: {errors or 'none'}")
    return lines


@flow_app.command("listen")
def listen_command(
    port: Annotated[int, typer.Option("--port", help="UDP port (0: any free port)")],
    host: Annotated[str, typer.Option("--host", help="Address to bind")] = "127.0.0.1",
    seconds: Annotated[float | None, typer.Option("--seconds", help="Stop after this many seconds")] = None,
    every: Annotated[float, typer.Option("--every", help="Seconds between totals")] = 5.0,
) -> None:
    """Listen for NetFlow/IPFIX in the foreground and print per-exporter totals every few seconds."""
    from collectors.flow.listener import FlowListener

    listener = FlowListener(host, port, on_flows=lambda decoded: None)
    try:
        listener.start()
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(2) from exc
    bound_host, bound_port = listener.address
    typer.echo(f"listening on {bound_host}:{bound_port} (UDP), receive buffer {listener.rcvbuf_bytes} bytes")
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            wait = every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))
            time.sleep(wait)
            for line in _stats_lines(listener.stats()):
                typer.echo(line)
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
