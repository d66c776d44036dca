"""core.catalog against what the code really writes and reads.

Producers: the real collectors run here (HostCollector on this machine, the netstate
collector on its captured trees and on this machine, the backup collector on files,
the flow collector on loopback fed the fixture captures and the flow summariser over
every capture, SNMP snapshots of every recording, the probes collector against real
loopback web and DNS servers, website discovery on loopback) plus the pure code paths of
what cannot run here (ARP/DHCP findings need raw sockets on a LAN). Every sample and
observation they make must be described by the catalogue, and every catalogued
measurement and observation must be made by one of them, except the few named below.

Consumers: every dashboard query of both flavours, as built for Grafana, and every alert
rule (the default pack and rule files in the repository) may name only catalogued
measurements, fields and tags. Each check is shown to fail on a test-local wrong copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import re
import socket
import string
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from agent.metrics import AgentMetrics
from agent.queue import DiskQueue
from alerting.pack import default_rules
from alerting.rules import Rule, load_rules
from collectors.backup import BackupCollector
from collectors.flow.aggregate import AggregateSettings, summarise
from collectors.flow.collector import FlowCollector
from collectors.flow.decode import TemplateCache, decode, read_datagrams
from collectors.flow.listener import FlowListener
from collectors.flow.model import FLOW_DTYPE
from collectors.flow.settings import FlowSettings
from collectors.host import HostCollector
from collectors.netstate import NetstateCollector
from collectors.settings import BackupJob
from collectors.snmp import snapshot as snmp_snapshot
from collectors.snmp.discovery import propose
from collectors.snmp.modules import SYSTEM, TABLES
from collectors.snmp.poller import DeviceStatus
from collectors.snmp.reading import observations as snmp_observations
from collectors.snmp.reading import samples as snmp_samples
from collectors.snmp.traps import event_from_varbinds
from core.catalog import (
    AGENT_METRICS,
    MEASUREMENTS,
    OBSERVATIONS,
    FieldKind,
    FieldSpec,
    FieldType,
    MeasurementSpec,
    SubjectFormat,
    observation_problems,
    reference_problems,
    sample_problems,
    split_metric,
)
from core.collect import LOCAL
from core.models import Observation, Sample
from core.supervise import Workers
from dashboards.build import build_dashboard
from dashboards.model import DashboardSpec, Field, PanelSpec, Target
from dashboards.panels import DASHBOARDS
from probes import arp, dhcp
from probes.collector import ProbesCollector
from probes.result import ProbeResult, StateTracker, transition_observation
from probes.result import observations as probe_observations
from probes.result import samples as probe_samples
from probes.safety import AllowedRanges
from probes.settings import ProbesSettings
from probes.website import discover
from server.history.state import state_samples
from tests.collectors.snmp.snmprec import read, recordings, subtree
from tests.probes.conftest import (  # noqa: F401 - fixtures
    CERT_NAME,
    Dns,
    certs,
    dns_server,
    http_server,
    https_server,
)
from tests.probes.servers import WebServer
from tests.services import wait_until

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "tests" / "fixtures" / "flows"
NETSTATE = ROOT / "tests" / "collectors" / "fixtures" / "netstate"
AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# Catalogued but not made here, and why; each is read from the code that writes it.
NOT_MADE_HERE = {
    "host_temperature": "no temperature sensors in a virtual machine",
    "host_cpu_guest": "psutil reports guest time only on some kernels/VMs",
    "probe_icmp": "ICMP echo needs CAP_NET_RAW",
    "duty_status": "fed to the rule evaluator by the server's alert engine from the duties table, never a Sample",
}
OBSERVATIONS_NOT_MADE_HERE = {
    ("traceroute_path", "probe.traceroute"): "traceroute needs raw sockets",
}


# -- producers -----------------------------------------------------------------------------------------


def _host() -> list[Sample]:
    return list(asyncio.run(HostCollector().collect(LOCAL, timeout=30)).samples)


def _netstate() -> tuple[list[Sample], list[Observation]]:
    samples: list[Sample] = []
    observations: list[Observation] = []
    collectors = [NetstateCollector(root=NETSTATE / tree, clock=lambda: AT) for tree in ("lab", "host")]
    for collector in [*collectors, NetstateCollector()]:
        reading = asyncio.run(collector.collect(LOCAL, timeout=20))
        samples += reading.samples
        observations += reading.observations
    return samples, observations


def _backup(tmp: Path) -> tuple[list[Sample], list[Observation]]:
    (tmp / "db").mkdir()
    (tmp / "db" / "dump.sql.gz").write_bytes(b"x" * 10)
    jobs = [BackupJob(name="db", kind="path", path=tmp / "db", pattern="*.gz"),
            BackupJob(name="gone", kind="path", path=tmp / "nope")]
    reading = asyncio.run(BackupCollector(jobs).collect(LOCAL, timeout=10))
    return list(reading.samples), list(reading.observations)


def _flow_files() -> list[list[Path]]:
    """The captures grouped by exporter (one vendor's template and data files), templates first."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(FLOWS.glob("*.dat")):
        groups.setdefault(re.sub(r"_(data|tpl|opttpl|tplopt|tpldata)\w*$", "", path.stem), []).append(path)
    return [sorted(paths, key=lambda p: "tpl" not in p.stem) for paths in groups.values()]


def _flows() -> tuple[list[Sample], list[Observation]]:
    """The summariser over every capture (each group an exporter), and the real collector fed on loopback."""
    records: dict[str, np.ndarray] = {}
    for paths in _flow_files():
        cache, parts = TemplateCache(), []
        for path in paths:
            for exporter, datagram in read_datagrams(path):
                decoded = decode(datagram, exporter, cache.mapping(), contexts=cache.contexts())
                cache.apply(decoded)
                parts.append(decoded.flows)
        flows = np.concatenate(parts) if parts else np.empty(0, FLOW_DTYPE)
        records[paths[0].stem.split("_")[0] + "-" + str(len(records))] = flows
    settings = AggregateSettings(approved_prefixes=["10.0.0.0/16", "192.168.0.0/24"], gateway_min_peers=2)
    samples, observations = summarise(records, settings, at=AT)
    collector = FlowCollector(FlowSettings(listen_host="127.0.0.1", listen_port=0), clock=lambda: AT)
    collector.start()
    files = ["netflow9_test_cisco_asr9k_opttpl256.dat", "netflow9_test_cisco_asr9k_data256.dat",
             "netflow9_test_cisco_asr9k_tpl260.dat", "netflow9_test_cisco_asr9k_data260.dat"]  # fmt: skip
    try:
        port = collector.listener.address[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for name in files:
                for _, datagram in read_datagrams(FLOWS / name):
                    sender.sendto(datagram, ("127.0.0.1", port))
        wait_until(lambda: collector.listener.stats().total("records") == 21, 10, "21 flow records")
        reading = asyncio.run(collector.collect(LOCAL, timeout=10))
    finally:
        collector.close()
    return samples + list(reading.samples), observations + list(reading.observations)


def _snmp() -> tuple[list[Sample], list[Observation]]:
    samples: list[Sample] = []
    observations: list[Observation] = []
    polled = []
    for path in recordings():
        varbinds = read(path)
        walks = {"system": subtree(varbinds, SYSTEM)}
        walks.update({name: subtree(varbinds, table.entry) for name, table in TABLES.items()})
        snap = snmp_snapshot.build(walks)
        polled.append((path.stem, snap))
        samples += snmp_samples(snap, path.stem, AT)
        observations += snmp_observations(snap, path.stem, AT)
    observations += [c.observation(AT) for c in propose(polled, ["0.0.0.0/0", "::/0"])]
    samples += [DeviceStatus("core-1", True, "", "", 0.25, 1200, AT).sample(),
                DeviceStatus("core-2", False, "no answer", "timeout", 5.0, 0, AT).sample()]
    trap = event_from_varbinds("10.0.0.9", [
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), 12345),
        ((1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0), (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)),
        ((1, 3, 6, 1, 2, 1, 2, 2, 1, 1, 7), 7),
    ], AT)
    return [*samples, trap.sample()], [*observations, trap.observation()]


def _probes(web: WebServer, tls_web: WebServer, dns: Dns, ca: str) -> tuple[list[Sample], list[Observation]]:
    settings = ProbesSettings.model_validate({
        "allowed_ranges": ["127.0.0.0/8"],
        "rate_limit_per_second": 100,
        "checks": [
            {"name": "portal", "kind": "http", "target": f"{web.url}/hop/1"},
            {"name": "portal-https", "kind": "http", "target": f"{tls_web.url}/", "expect": {"verify_tls": False}},
            {"name": "portal-tls", "kind": "tls", "target": f"127.0.0.1:{tls_web.port}",
             "expect": {"ca_file": ca, "server_name": CERT_NAME}},
            {"name": "dns-gone", "kind": "dns", "target": "gone.egov.test", "expect": {"dns_server": dns.server}},
            {"name": "port", "kind": "tcp", "target": f"127.0.0.1:{web.port}"},
        ],
    })
    collector = ProbesCollector(settings, clock=lambda: AT)

    async def go() -> Any:
        reading = await collector.collect(LOCAL, timeout=30)
        await collector.aclose()
        found = await discover("127.0.0.1/32", allowed=AllowedRanges.parse(["127.0.0.0/8"]), ports=(web.port,), timeout=5)
        return reading, found

    reading, website = asyncio.run(go())
    # ARP and DHCP need a LAN and raw sockets (tests/probes/test_netns.py); their findings from the pure code.
    network = ipaddress.ip_network("10.77.5.0/24")
    arp_result = ProbeResult("arp", str(network), True, findings=arp.flag(
        [arp.ArpReply(ipaddress.IPv4Address("10.77.5.7"), "52:54:00:12:34:56")], {}, network, "eth1"))
    good = dhcp.DhcpOffer("10.77.5.1", "10.77.5.50", "10.77.5.0/24", ("10.77.5.1",), ("10.77.5.1",), 3600, "egov", "")
    dhcp_result = dhcp.judge([good], ["10.77.5.1"], "eth1")
    samples, observations = list(reading.samples), list(reading.observations)
    tracker = StateTracker()
    for result in (website, arp_result, dhcp_result):
        samples += probe_samples(result, result.kind, AT)
        observations += probe_observations(result, AT)
        transition = tracker.update(result.kind, result)
        assert transition is not None
        observations.append(transition_observation(transition, AT))
    return samples, observations


def _server_state() -> list[Sample]:
    return state_samples(
        findings=[{"agency": "a1", "rule_id": "R1", "article": "30", "severity": "warning", "status": "open"}],
        alerts=[{"agency": "a1", "severity": "critical", "status": "firing", "lacking_data": False}],
        scorecard=[{"agency": "a1", "monitoring_coverage_ratio": 0.5, "backup_rpo_ratio": None, "duties_on_time_ratio": 1,
                    "duties": 2, "duties_overdue": 1, "open_findings": 1, "hosts_expected": 2, "hosts_reporting": 1}],
        alert_events=[{"at": AT, "agency": "a1", "severity": "critical", "status": "firing", "alertname": "X",
                       "text": "t", "fingerprint": "f"}],
        finding_events=[{"at": AT, "agency": "a1", "severity": "warning", "status": "open", "article": "30",
                         "text": "t", "finding_id": 1}],
        at=AT,
    )


@pytest.fixture(scope="module")
def produced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Sample], list[Observation]]]:
    """Everything the real producers but the probes made, by producer."""
    return {
        "host": (_host(), []),
        "netstate": _netstate(),
        "backup": _backup(tmp_path_factory.mktemp("backup")),
        "flow": _flows(),
        "snmp": _snmp(),
        "server": (_server_state(), []),
    }


@pytest.fixture(scope="module")
def probed(request: pytest.FixtureRequest) -> tuple[list[Sample], list[Observation]]:
    """What the probes made against tests/probes/conftest.py's servers (dnsmasq: skipped without it, failed with CI=true)."""
    web, tls_web, dns = (request.getfixturevalue(name) for name in ("http_server", "https_server", "dns_server"))
    return _probes(web, tls_web, dns, str(request.getfixturevalue("certs")["short"][0]))


# -- producers against the catalogue -------------------------------------------------------------------


def _problems(samples: list[Sample], observations: list[Observation]) -> list[str]:
    return sorted({p for s in samples for p in sample_problems(s)} | {p for o in observations for p in observation_problems(o)})


@pytest.mark.parametrize("producer", ["host", "netstate", "backup", "flow", "snmp", "server"])
def test_every_sample_and_observation_is_catalogued(produced: dict[str, Any], producer: str) -> None:
    samples, observations = produced[producer]
    assert samples, f"{producer} made no samples"
    assert _problems(samples, observations) == []


def test_every_probe_sample_and_observation_is_catalogued(probed: tuple[list[Sample], list[Observation]]) -> None:
    samples, observations = probed
    assert {s.tags["kind"] for s in samples if s.measurement == "probe"} == {"http", "tls", "dns", "tcp", "website", "arp", "dhcp"}
    assert _problems(samples, observations) == []


def test_every_catalogued_entry_is_made_by_a_producer(produced: dict[str, Any], probed: Any) -> None:
    everything = [*produced.values(), probed]
    measurements = {s.measurement for samples, _ in everything for s in samples}
    kinds = {(o.kind, o.source) for _, observations in everything for o in observations}
    assert sorted(set(MEASUREMENTS) - measurements - set(NOT_MADE_HERE)) == []
    assert sorted(set(OBSERVATIONS) - kinds - set(OBSERVATIONS_NOT_MADE_HERE)) == []


def test_the_host_collector_on_this_machine_writes_the_core_series(produced: dict[str, Any]) -> None:
    host = {s.measurement for s in produced["host"][0]}
    assert {"host_cpu", "host_load", "host_memory", "host_swap", "host_filesystem", "host_network", "host_system"} <= host


def test_a_sample_unlike_its_entry_is_reported() -> None:
    good = Sample(measurement="host_load", fields={"load1": 0.5, "load5": 0.4, "load15": 0.3}, timestamp=AT)
    assert sample_problems(good) == []
    assert sample_problems(good.model_copy(update={"measurement": "host_lod"})) == ["measurement host_lod is not catalogued"]
    assert sample_problems(good.model_copy(update={"fields": {"load1": 1, "load2": 0.5}})) == [
        "host_load.load1: int value, catalogued as float", "host_load: field load2 is not catalogued"]
    disk = Sample(measurement="host_disk", tags={"dev": "sda"}, fields={"read_bytes_total": 1}, timestamp=AT)
    assert sample_problems(disk) == ["host_disk: tag dev is not catalogued", "host_disk: tag device is missing"]


def test_an_observation_unlike_its_entry_is_reported() -> None:
    obs = Observation(kind="flow_subnet", subject="10.0.0.0/24", source="flow", observed_at=AT,
                      attributes={"exporter": "e", "in_plan": True})
    assert observation_problems(obs) == []
    assert observation_problems(obs.model_copy(update={"source": "snmp"})) == ["observation flow_subnet from snmp is not catalogued"]
    assert observation_problems(obs.model_copy(update={"subject": "core-1", "attributes": {"exporter": "e", "in_plan": 1, "x": 2}})) == [
        "flow_subnet from flow: subject 'core-1' is not a prefix",
        "flow_subnet from flow: attribute in_plan is int, catalogued as bool",
        "flow_subnet from flow: attribute x is not catalogued",
    ]
    assert observation_problems(obs.model_copy(update={"attributes": {"in_plan": False}})) == [
        "flow_subnet from flow: attribute exporter is missing"]


# Unit suffixes of the house's metric names (STYLE.md: base units, unit suffix, `_total` on counters).
SUFFIX_UNITS = {"_bytes": {"bytes"}, "_seconds": {"seconds", "timestamp_seconds"}, "_percent": {"percent"},
                "_ratio": {"ratio"}, "_celsius": {"celsius"}, "_bps": {"bits_per_second"}}


def naming_problems(spec: MeasurementSpec) -> list[str]:
    """A counter is named `..._total` and a `..._total` is a counter; a unit suffix names the catalogued unit."""
    wrong = [f"{f.name} is a {f.kind}" for f in spec.fields if (f.kind == FieldKind.COUNTER) != f.name.endswith("_total")]
    for f in spec.fields:
        base = f.name.removesuffix("_total")
        wrong += [f"{f.name} in {f.unit}" for suffix, units in SUFFIX_UNITS.items()
                  if base.endswith(suffix) and f.unit not in units]
    return wrong


@pytest.mark.parametrize("spec", MEASUREMENTS.values(), ids=list(MEASUREMENTS))
def test_counters_end_in_total_and_units_match_their_suffix(spec: MeasurementSpec) -> None:
    assert naming_problems(spec) == []


def test_a_misnamed_field_fails_the_naming_check() -> None:
    spec = MeasurementSpec("x", "test", (FieldSpec("reads", FieldType.INT, "count", FieldKind.COUNTER),
                                         FieldSpec("size_bytes_total", FieldType.INT, "bytes", FieldKind.GAUGE),
                                         FieldSpec("age_seconds", FieldType.FLOAT, "bytes")))
    assert naming_problems(spec) == ["reads is a counter", "size_bytes_total is a gauge", "age_seconds in bytes"]


@pytest.mark.parametrize(("fmt", "good", "bad"), [
    (SubjectFormat.ADDRESS, "2001:db8::1", "10.0.0.0/24"),
    (SubjectFormat.PREFIX, "10.0.0.0/24", "core-1"),
    (SubjectFormat.INTERFACE_ADDRESS, "10.0.0.1/24", "10.0.0.1"),
    (SubjectFormat.SOCKET, "tcp:[::1]:22", "tcp:::1:22"),
    (SubjectFormat.URL, "https://127.0.0.1:8443/", "ftp://x"),
    (SubjectFormat.TEXT, "eth0", ""),
])
def test_subject_formats(fmt: SubjectFormat, good: str, bad: str) -> None:
    assert (fmt.matches(good), fmt.matches(bad)) == (True, False)


# -- the agent's own /metrics -------------------------------------------------------------------------


def test_the_agents_own_metrics_are_catalogued(tmp_path: Path) -> None:
    """The registry the agent builds (agent/runtime.py: AgentMetrics and its queue, worker and flow listener
    collectors) exposes exactly the catalogued families, with the catalogued types and label names."""
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry)
    metrics.watch_queue(registry, DiskQueue(tmp_path / "queue", 1 << 20))
    workers = Workers()
    workers.up("shipper")
    metrics.watch_workers(registry, workers)
    for metric in vars(metrics).values():  # one child of each labelled metric, by the catalogued label names
        spec = AGENT_METRICS.get(metric.describe()[0].name)
        if spec is not None and spec.labels:
            metric.labels(**dict.fromkeys(spec.labels, "x"))  # ValueError when the code declares other names
    with FlowListener("127.0.0.1", 0, on_flows=lambda decoded: None) as listener:
        metrics.watch_flow_listener(registry, listener)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"\x00\x09 not an export", listener.address)
        wait_until(lambda: listener.stats().decode_errors, 10, "a decode error")
        families = {f.name: f for f in registry.collect()}
    assert {name: f.type for name, f in families.items()} == {name: m.type.value for name, m in AGENT_METRICS.items()}
    labels = {name: {frozenset(s.labels) - {"le"} for s in f.samples} for name, f in families.items()}
    assert labels == {name: {frozenset(m.labels)} for name, m in AGENT_METRICS.items()}


# -- consumers: dashboards -----------------------------------------------------------------------------

_QUOTED = re.compile(r'"([A-Za-z_][A-Za-z0-9_]*)"')
_FROM = re.compile(r'FROM "([A-Za-z_][A-Za-z0-9_]*)"')
_ALIAS = re.compile(r'AS "([A-Za-z_][A-Za-z0-9_]*)"')
_METRIC = re.compile(r"\b([a-z_][a-z0-9_]*)\{|label_values\(([a-z_][a-z0-9_]*)")
_LABELS = re.compile(r'\bby \(([^)]*)\)|([a-z_][a-z0-9_]*)(?:=~|!~|!=|=)"|label_values\([^,]*,\s*([a-z_][a-z0-9_]*)\)')
_FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "increase", "last_over_time", "max_over_time",
              "avg_over_time", "sum_over_time", "min_over_time", "label_values", "by"}


def influxql_problems(query: str) -> list[str]:
    """Names in an InfluxQL query that are not catalogued: measurements after FROM, every other quoted identifier a
    field or tag of those measurements (aliases of subqueries aside)."""
    measurements = _FROM.findall(query)
    if not measurements:
        return ["names no measurement (FROM \"...\" expected)"]
    problems = [p for m in measurements for p in reference_problems(m)]
    specs = [MEASUREMENTS[m] for m in measurements if m in MEASUREMENTS]
    names = {f.name for s in specs for f in s.fields} | {t for s in specs for t in s.all_tags}
    aliases = set(_ALIAS.findall(query))
    for name in _QUOTED.findall(query):
        if name not in names and name not in aliases and name not in measurements:
            problems.append(f"{name} is no field or tag of {', '.join(measurements)}")
    return problems


def promql_problems(expr: str) -> list[str]:
    """Names in a PromQL expression that are not catalogued: each metric `measurement_field`, each label a tag."""
    metrics = {a or b for a, b in _METRIC.findall(expr)} - _FUNCTIONS
    if not metrics:
        return ["names no metric (metric{...} expected)"]
    problems = [f"metric {m} is no catalogued measurement_field" for m in sorted(metrics) if split_metric(m) is None]
    specs = [found[0] for m in metrics if (found := split_metric(m)) is not None]
    tags = {t for s in specs for t in s.all_tags}
    for by, matcher, value_label in _LABELS.findall(expr):
        for label in [x.strip() for x in by.split(",") if x.strip()] + [matcher, value_label]:
            if label and label not in tags:
                problems.append(f"label {label} is no tag of {', '.join(sorted(metrics))}")
    return problems


def dashboard_queries(spec: DashboardSpec, flavour: str) -> list[str]:
    """Every query text of a dashboard as Grafana gets it: panel targets, template variables, annotations."""
    built = build_dashboard(spec, "zh", flavour)
    queries = [t.get("query") or t.get("expr") or "" for p in built["panels"] for t in p.get("targets", [])]
    queries += [v["query"] if isinstance(v["query"], str) else v["query"].get("query", "") for v in built["templating"]["list"]]
    queries += [a.get("query") or a.get("expr") or "" for a in built["annotations"]["list"] if a.get("datasource")]
    return [q for q in queries if q]


def _check(spec: DashboardSpec, flavour: str) -> list[str]:
    check = influxql_problems if flavour == "influxql" else promql_problems
    queries = dashboard_queries(spec, flavour)
    assert queries, f"{spec.uid} has no {flavour} queries"
    return [f"{spec.uid}: {q!r}: {p}" for q in queries for p in check(q)]


@pytest.mark.parametrize("flavour", ["influxql", "promql"])
@pytest.mark.parametrize("spec", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
def test_dashboard_queries_name_only_catalogued_series(spec: DashboardSpec, flavour: str) -> None:
    assert _check(spec, flavour) == []


@pytest.mark.parametrize("flavour", ["influxql", "promql"])
@pytest.mark.parametrize(("field", "legend", "wrong"), [
    (Field("host_memory", "availble_bytes"), ("host",), "availble_bytes"),
    (Field("host_memry", "available_bytes"), ("host",), "host_memry"),
    (Field("host_memory", "available_bytes"), ("mountpoint",), "mountpoint"),
])
def test_a_dashboard_naming_a_wrong_series_fails_the_check(flavour: str, field: Field, legend: tuple[str, ...], wrong: str) -> None:
    """A test-local copy of the hosts dashboard with one panel naming a wrong field, measurement or tag."""
    hosts = next(d for d in DASHBOARDS if d.uid == "egovmon-hosts")
    broken = dataclasses.replace(hosts, panels=(*hosts.panels, PanelSpec("坏", "Broken", (Target(field),), legend)))
    problems = _check(broken, flavour)
    assert problems and all(wrong in p for p in problems), problems


# -- consumers: alert rules ----------------------------------------------------------------------------


# What alerting/evaluate.py puts beside a series' tags when it renders a rule's annotations.
RENDER_VALUES = {"threshold": {"value", "threshold"}, "rate": {"value", "threshold"}, "absence": {"silent_seconds", "last_seen"}}


def rule_problems(rule: Rule) -> list[str]:
    """What a rule names that is not catalogued: its measurement, field, divide_by, the tags of an absence rule's
    group_by and of its annotations' {placeholders} (an absence rule renders only its group_by tags)."""
    if rule.measurement is None:
        return []
    fields = [f for f in (rule.field, rule.divide_by) if f is not None]
    tags = list(rule.group_by) if rule.kind == "absence" else []
    problems = reference_problems(rule.measurement, fields, tags)
    spec = MEASUREMENTS.get(rule.measurement)
    available = (set(rule.group_by) if rule.kind == "absence" else set(spec.all_tags) if spec else set()) | RENDER_VALUES[rule.kind]
    for name, text in sorted(rule.annotations.items()):
        placeholders = {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(text) if field}
        problems += [f"annotation {name}: {{{p}}} is no tag of {rule.measurement}" for p in sorted(placeholders - available)]
    return [f"{rule.alert}: {p}" for p in problems]


def _rule_files() -> list[Path]:
    """Rule files kept in the repository (YAML with alert rules), the default pack included."""
    skip = {".git", ".venv", "node_modules"}
    found = []
    for directory, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            path = Path(directory, name)
            if path.suffix in (".yaml", ".yml") and re.search(r"^\s*-\s*alert:", path.read_text(errors="replace"), re.MULTILINE):
                found.append(path)
    return sorted(found)


def test_the_repository_rule_files_include_the_default_pack() -> None:
    assert ROOT / "alerting" / "default_rules.yaml" in _rule_files()


def _rules_of(paths: Iterable[Path]) -> list[Rule]:
    return [rule for path in paths for rule in load_rules(path.read_text(encoding="utf-8")).rules()]


def test_default_rules_and_rule_files_name_only_catalogued_series() -> None:
    rules = default_rules() + _rules_of(_rule_files())
    assert sum(1 for r in rules if r.measurement) >= 5
    assert [p for rule in rules for p in rule_problems(rule)] == []


def test_a_rule_naming_a_wrong_field_fails_the_check() -> None:
    memory = next(r for r in default_rules() if r.alert == "HostMemoryLow")
    assert rule_problems(memory) == []
    assert rule_problems(memory.model_copy(update={"divide_by": "total"})) == [
        "HostMemoryLow: host_memory: field total is not catalogued"]
    assert rule_problems(memory.model_copy(update={"annotations": {"summary_en": "{hots} has {value:.0%}"}})) == [
        "HostMemoryLow: annotation summary_en: {hots} is no tag of host_memory"]
    silent = next(r for r in default_rules() if r.kind == "absence")
    assert (silent.alert, silent.measurement, silent.group_by) == ("AgentSilent", "host_system", ["host", "agency"])
    assert rule_problems(silent.model_copy(update={"group_by": ["hostname"]})) == [
        "AgentSilent: host_system: tag hostname is not catalogued",
        # an absence alert renders only its group_by tags: {host} would stay unrendered
        "AgentSilent: annotation summary_en: {host} is no tag of host_system",
        "AgentSilent: annotation summary_zh: {host} is no tag of host_system"]
