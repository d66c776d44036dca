"""What bench/fleet.py prints: durations found in /metrics, and one run as text.

`parse_exposition` and `durations` are pure: two scrapes of the Prometheus text
exposition in, the window's count, mean and p99 bucket of every `egovmon_*_seconds`
histogram out. `text` turns the result of one run (the dict `--json` prints) into
the lines a person reads.
"""

from __future__ import annotations

import re
from typing import Any

# How /metrics may name the durations issue 17 asks for, searched in the series (name and labels), e.g.
# egovmon_task_duration_seconds{task="inventory_full_pass"}; among matches the one observed most often wins.
NAMED_DURATIONS = {
    "full_reconcile": re.compile(r"full_pass|reconcil"),
    "alert_cycle": re.compile(r"alert_cycle|alert.*(cycle|evaluat)|evaluat.*alert"),
    "state_export": re.compile(r"state_export|export"),
}
_SERIES = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?\s+(\S+)(?:\s+\S+)?$")


def parse_exposition(text: str) -> dict[str, float]:
    """Prometheus text exposition → {"name{labels}": value}; comments and unparsable lines are skipped."""
    out = {}
    for line in text.splitlines():
        match = _SERIES.match(line)
        if match and not line.startswith("#"):
            try:
                out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
            except ValueError:
                continue
    return out


def durations(before: dict[str, float], after: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Every `egovmon_*_seconds` histogram or summary over the window: {series: {count, mean, max_bucket}}.

    `count` and `mean_seconds` are the differences of `_count` and `_sum` between
    the two scrapes; `p99_le_seconds` is the upper bound of the bucket holding the
    99th percentile of the window's observations (None for summaries).
    """
    out: dict[str, dict[str, float | None]] = {}
    for key, total in after.items():
        name, _, labels = key.partition("{")
        if not (name.startswith("egovmon_") and name.endswith("_seconds_count")):
            continue
        base = name.removesuffix("_count")
        labels = "{" + labels if labels else ""
        count = total - before.get(key, 0.0)
        spent = after.get(base + "_sum" + labels, 0.0) - before.get(base + "_sum" + labels, 0.0)
        buckets = []
        for bucket_key, value in after.items():
            if bucket_key.startswith(base + "_bucket{"):
                bound = re.search(r'le="([^"]+)"', bucket_key)
                rest = re.sub(r',?le="[^"]+"', "", bucket_key[len(base) + 7:])
                if bound and rest.strip("{},") == labels.strip("{}"):
                    buckets.append((float(bound.group(1)), value - before.get(bucket_key, 0.0)))
        p99 = next((bound for bound, n in sorted(buckets) if count and n >= 0.99 * count), None)
        out[base + labels] = {"count": count, "mean_seconds": spent / count if count else None, "p99_le_seconds": p99}
    return out


def named_durations(found: dict[str, dict[str, float | None]]) -> dict[str, dict[str, Any] | None]:
    """The full reconciliation pass, the alert cycle and the state export among `found` (None when absent)."""
    named: dict[str, dict[str, Any] | None] = {}
    for label, pattern in NAMED_DURATIONS.items():
        hits = [(key, value) for key, value in found.items() if pattern.search(key)]
        hits.sort(key=lambda kv: -(kv[1]["count"] or 0))
        named[label] = {"series": hits[0][0], **hits[0][1]} if hits else None
    return named


def _f(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f} MiB"


def text(r: dict[str, Any]) -> str:
    b, a, c = r["batch"], r["anchor"], r["client"]
    lines = [
        f"fleet: {r['agents']:,} agents in {r['agencies']} agencies on {r['store'] if r['store'] != 'url' else r['url']} "
        f"({r['workers']} worker(s)), "
        f"{r['seconds']:.0f} s measured after {r['warmup_seconds']:g} s warm-up; one batch per agent every "
        f"{r['interval_seconds']:g} s (x{r['rate_multiplier']:g}); enrolment took {r['enrol_seconds']:.1f} s",
        f"  batch: {b['samples']} samples, {b['fields']} fields, {b['gzip_bytes']} B gzip (HostCollector on this machine); "
        f"{b['netstate_agents']} agents also send {b['netstate_observations']} netstate observations",
        f"  offered        {r['offered_per_s']:8.1f} batches/s ({r['offered']:,})",
        f"  acknowledged   {r['acknowledged_per_s']:8.1f} batches/s ({r['acknowledged']:,}, {_f(r['acknowledged_percent'], '.1f', ' %')})"
        f"   shed (503) {r['shed']:,}   timeouts {r['timeouts']:,}   errors {r['errors']:,} {r['error_kinds'] or ''}",
        f"  ack latency    p50 {_f(r['ack_p50_seconds'], '.3f', ' s')}   p99 {_f(r['ack_p99_seconds'], '.3f', ' s')}"
        f" (of which waiting for a client connection: p99 {_f(r['client_wait_p99_seconds'], '.3f', ' s')})"
        f"   acks per {r['interval_seconds']:g} s: min {min(r['acknowledged_per_interval'][:-1] or [0]):,}"
        f" max {max(r['acknowledged_per_interval'] or [0]):,}",
    ]
    for name in ("server", "postgres", "victoriametrics"):
        p = r[name]
        if p is None:
            lines.append(f"  {name:<14} n/a")
            continue
        extra = f"; RSS {_mib(p['rss_bytes'])} ({p['processes']} processes)" if name == "server" else ""
        if name == "server" and r["server_log_errors"] is not None:
            extra += f"; {r['server_log_errors']:,} ERROR/traceback lines in its log"
        lines.append(f"  {name:<14} CPU {p['cpu_percent']:5.1f} % = {_f(p['cpu_ms_per_batch'], '.2f', ' ms')} per acknowledged batch{extra}")
    lines.append(
        f"  anchor         VictoriaMetrics alone, gzip line protocol, one request per batch: {a['acknowledged']:,} of "
        f"{a['offered']:,} acknowledged, p99 {_f(a['p99_seconds'], '.3f', ' s')}, CPU {_f(a.get('cpu_percent'), '.1f', ' %')} = "
        f"{_f(a.get('cpu_ms_per_request'), '.3f', ' ms')} per request"
    )
    lines.append(
        f"  ratio          egovmon server CPU per batch / VictoriaMetrics CPU per request = {_f(r['ratio_server_to_anchor'], '.1f', 'x')}"
        f" (server + PostgreSQL + its VictoriaMetrics: {_f(r['ratio_all_to_anchor'], '.1f', 'x')}; issue 17 target <= 3x)"
    )
    growth = r["database_growth_bytes"]
    parts = ", ".join(f"{k} {v / 2**20:+,.1f} MiB" for k, v in r["database_growth_by_part"].items())
    per_agent_hour = r["database_growth_bytes_per_agent_hour"]
    lines.append(
        f"  database       {_f(growth / 2**20 if growth is not None else None, '+,.1f', ' MiB')} in {r['measured_seconds']:.0f} s ({parts}) = "
        f"{_f(growth * 3600 / r['measured_seconds'] / 2**30 if growth is not None else None, ',.2f', ' GiB')} per hour, "
        f"{_f(per_agent_hour / 2**20 if per_agent_hour is not None else None, ',.2f', ' MiB')} per agent-hour"
    )
    named = []
    for label, d in r["durations"].items():
        if d is None:
            named.append(f"{label.replace('_', ' ')} n/a")
        else:
            named.append(f"{label.replace('_', ' ')} {_f(d['mean_seconds'], '.3f', ' s')} mean over {d['count']:.0f} "
                         f"(p99 <= {_f(d['p99_le_seconds'], 'g', ' s')})")
    lines.append("  durations      " + "; ".join(named) + "   (from /metrics)")
    wait, p99 = r["client_wait_p99_seconds"], r["ack_p99_seconds"]
    if wait is not None and p99 and wait > 0.1 and wait > 0.25 * p99:
        lines.append(
            f"  note           requests waited for one of the client's {c['connections']} connections (p99 {wait:.2f} s): the server "
            f"saw at most {c['connections']} at once, where real agents would each hold one; try --connections {2 * c['connections']}"
        )
    rogue = r["rogue_subnet"]
    if rogue:
        lines.append(
            f"  rogue subnet   {rogue['subnet']} became a finding {_f(rogue['finding_seconds'], '.2f', ' s')} after its batch was sent "
            f"(batch acknowledged in {_f(rogue['ack_seconds'], '.3f', ' s')}){'; ' + rogue['error'] if rogue['error'] else ''}"
        )
    lines.append(
        f"  client         CPU {c['cpu_percent']:.1f} % (system {c['system_cpu_percent']:.1f} %, which on loopback holds kernel TCP "
        f"work for the server too) = {_f(c['cpu_ms_per_request'], '.3f', ' ms')} per request "
        f"({c['requests']:,} requests ended: egovmon + anchor), {c['loop']}, at most {c['connections']} connections at once "
        f"({c['connections_opened']:,} opened in all), start lag p99 {_f(c['start_lag_p99_seconds'], '.3f', ' s')}"
    )
    return "\n".join(lines)


