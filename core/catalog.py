"""The catalogue of everything egovmon writes: measurements with their fields and tags, and observation kinds.

One entry per measurement a collector, probe or the server's state export emits
(collectors/host.py, collectors/netstate/reading.py, collectors/backup.py,
collectors/flow/aggregate.py and collector.py, collectors/snmp/reading.py, poller.py and
traps.py, probes/result.py with the probes' own fields, server/history/state.py), and one
per observation kind and source. The catalogue is data and is checked, not trusted:
tests/core/test_catalog.py runs the real collectors and checks every sample and
observation against it, and checks every dashboard query and every alert rule names only
catalogued measurements, fields and tags. A new field is one line here, or that test fails.

Field types are the Python types the sample carries, because InfluxDB fixes a field's type
at its first write and refuses a later point of another type. `kind` says how a query
reads a field: a `counter` only grows until it wraps or resets (queries take a rate), a
`gauge` is a value at the time of the sample. Per-interval amounts (the flow summaries'
bytes in one collection interval) are gauges: each point stands alone.

The agent's own health (collector runs, shipping, queue, workers, the flow listener's
bounds) is exposed on its /metrics with prometheus-client and never shipped as samples:
it is catalogued apart, in `AGENT_METRICS`, by Prometheus metric name and type.

Pure: no I/O, imports only the standard library and `core.models`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from core.models import Observation, Sample

# Tags the server adds at ingest from the agent's credential and the inventory; agents never send them.
SERVER_TAGS: Final = ("agency", "site", "host")


class FieldType(StrEnum):
    """The Python (and line-protocol) type of a field's values."""

    INT = "int"
    FLOAT = "float"
    STRING = "string"


class FieldKind(StrEnum):
    """How queries read a field: `counter` grows until it wraps or resets (take a rate), `gauge` stands alone."""

    COUNTER = "counter"
    GAUGE = "gauge"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field: its name, type, unit (`bytes`, `seconds`, `boolean` for 0/1, ... or "" for text) and kind."""

    name: str
    type: FieldType
    unit: str
    kind: FieldKind = FieldKind.GAUGE


@dataclass(frozen=True, slots=True)
class MeasurementSpec:
    """One measurement: who writes it, its fields, the tags always present and those present only sometimes.

    `server_tags`: whether the server adds `agency`, `site` and `host` at ingest (true for
    everything an agent sends; the server's own state export sets `agency` itself).
    A field may be absent from a sample (psutil's tuples differ by platform, a probe kind
    writes only its own fields); a field present must be catalogued with its type.
    """

    name: str
    source: str
    fields: tuple[FieldSpec, ...]
    tags: tuple[str, ...] = ()
    optional_tags: tuple[str, ...] = ()
    server_tags: bool = True

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def all_tags(self) -> frozenset[str]:
        """Every tag a stored series of this measurement can carry (the server's included)."""
        return frozenset(self.tags + self.optional_tags + (SERVER_TAGS if self.server_tags else ()))


def _fields(kind: FieldKind, type_: FieldType, unit: str, *names: str) -> tuple[FieldSpec, ...]:
    return tuple(FieldSpec(name, type_, unit, kind) for name in names)


C, G = FieldKind.COUNTER, FieldKind.GAUGE
INT, FLOAT, STRING = FieldType.INT, FieldType.FLOAT, FieldType.STRING

# collectors/flow/aggregate.py `_sample`: amounts of one collection interval, sampling rate applied.
_FLOW_AMOUNTS = (FieldSpec("bytes", INT, "bytes"), FieldSpec("packets", INT, "packets"), FieldSpec("flows", INT, "flows"))
# collectors/flow/collector.py HEALTH_FIELDS, each with `_total`.
_FLOW_RECEIVER = ("datagrams", "records", "option_records", "malformed", "skipped_sets", "queue_drops", "lost_records")
# collectors/snmp/snapshot.py COUNTERS: ifTable (32-bit) and ifXTable (64-bit, `hc_`) counters.
_IF_COUNTERS = (
    "in_octets_total", "in_ucast_packets_total", "in_nucast_packets_total", "in_discards_total", "in_errors_total",
    "in_unknown_protos_total", "out_octets_total", "out_ucast_packets_total", "out_nucast_packets_total",
    "out_discards_total", "out_errors_total", "in_multicast_packets_total", "in_broadcast_packets_total",
    "out_multicast_packets_total", "out_broadcast_packets_total", "hc_in_octets_total", "hc_in_ucast_packets_total",
    "hc_in_multicast_packets_total", "hc_in_broadcast_packets_total", "hc_out_octets_total",
    "hc_out_ucast_packets_total", "hc_out_multicast_packets_total", "hc_out_broadcast_packets_total",
)
_PROBE_TAGS = ("check", "kind", "target")

MEASUREMENTS: Final[Mapping[str, MeasurementSpec]] = {m.name: m for m in (
    # -- collectors/host.py ---------------------------------------------------------------------------
    MeasurementSpec("host_cpu", "host", (FieldSpec("seconds_total", FLOAT, "seconds", C),), ("cpu", "mode")),
    MeasurementSpec("host_cpu_guest", "host", (FieldSpec("seconds_total", FLOAT, "seconds", C),), ("cpu", "mode")),
    MeasurementSpec("host_load", "host", _fields(G, FLOAT, "", "load1", "load5", "load15")),
    MeasurementSpec("host_memory", "host", _fields(G, INT, "bytes",
        "total_bytes", "available_bytes", "used_bytes", "free_bytes", "active_bytes", "inactive_bytes",
        "buffers_bytes", "cached_bytes", "shared_bytes", "slab_bytes", "wired_bytes")),
    MeasurementSpec("host_swap", "host", _fields(G, INT, "bytes", "total_bytes", "used_bytes", "free_bytes")
        + _fields(C, INT, "bytes", "swapped_in_bytes_total", "swapped_out_bytes_total")),
    MeasurementSpec("host_filesystem", "host",
        _fields(G, INT, "bytes", "size_bytes", "free_bytes", "avail_bytes", "used_bytes")
        + _fields(G, INT, "files", "files", "files_free") + _fields(G, INT, "boolean", "readonly", "device_error"),
        ("mountpoint", "device", "fstype")),
    MeasurementSpec("host_disk", "host",
        _fields(C, INT, "bytes", "read_bytes_total", "written_bytes_total")
        + _fields(C, INT, "operations", "reads_completed_total", "writes_completed_total", "reads_merged_total",
                  "writes_merged_total")
        + _fields(C, FLOAT, "seconds", "read_time_seconds_total", "write_time_seconds_total", "io_time_seconds_total"),
        ("device",)),
    MeasurementSpec("host_network", "host",
        _fields(C, INT, "bytes", "receive_bytes_total", "transmit_bytes_total")
        + _fields(C, INT, "packets", "receive_packets_total", "transmit_packets_total", "receive_errors_total",
                  "transmit_errors_total", "receive_drop_total", "transmit_drop_total"),
        ("interface",)),
    MeasurementSpec("host_system", "host", (
        FieldSpec("processes", INT, "processes"), FieldSpec("boot_time_seconds", FLOAT, "timestamp_seconds"),
        FieldSpec("uptime_seconds", FLOAT, "seconds"))),
    MeasurementSpec("host_temperature", "host", _fields(G, FLOAT, "celsius", "celsius", "high_celsius", "critical_celsius"),
        ("sensor", "label")),
    # -- collectors/netstate/reading.py ---------------------------------------------------------------
    MeasurementSpec("host_netstate", "netstate", _fields(G, INT, "count", "interfaces", "routes", "listening_sockets")
        + (FieldSpec("ip_forwarding_enabled", INT, "boolean"),)),
    # -- collectors/backup.py -------------------------------------------------------------------------
    MeasurementSpec("backup", "backup", (
        FieldSpec("last_success_timestamp_seconds", FLOAT, "timestamp_seconds"), FieldSpec("age_seconds", FLOAT, "seconds"),
        FieldSpec("size_bytes", INT, "bytes"), FieldSpec("rpo_seconds", FLOAT, "seconds"),
        FieldSpec("rpo_ok", INT, "boolean"), FieldSpec("check_ok", INT, "boolean")),
        ("job", "role", "kind")),
    # -- collectors/flow ------------------------------------------------------------------------------
    MeasurementSpec("flow", "flow", _FLOW_AMOUNTS, ("exporter",)),
    MeasurementSpec("flow_interface", "flow", _FLOW_AMOUNTS, ("exporter", "interface", "direction"), ("interface_name",)),
    MeasurementSpec("flow_unplanned", "flow", _FLOW_AMOUNTS, ("exporter", "direction")),
    MeasurementSpec("flow_top", "flow", _FLOW_AMOUNTS, ("exporter", "src_prefix", "dst_prefix", "protocol", "dst_port", "rank")),
    MeasurementSpec("flow_receiver", "flow", _fields(C, INT, "count", *(f"{name}_total" for name in _FLOW_RECEIVER)),
        ("exporter",)),
    MeasurementSpec("flow_receiver_socket", "flow", (
        FieldSpec("kernel_drops_total", INT, "datagrams", C), FieldSpec("receive_buffer_bytes", INT, "bytes"))),
    # -- collectors/snmp ------------------------------------------------------------------------------
    MeasurementSpec("snmp_system", "snmp", (FieldSpec("uptime_seconds", FLOAT, "seconds"),), ("device",)),
    MeasurementSpec("snmp_interface", "snmp", _fields(C, INT, "", *_IF_COUNTERS) + (
        FieldSpec("oper_up", INT, "boolean"), FieldSpec("admin_up", INT, "boolean"), FieldSpec("speed_bps", INT, "bits_per_second")),
        ("device", "if_index", "if_name")),
    MeasurementSpec("snmp_storage", "snmp", _fields(G, INT, "bytes", "size_bytes", "used_bytes"), ("device", "storage")),
    MeasurementSpec("snmp_processor", "snmp", (FieldSpec("load_percent", INT, "percent"),), ("device", "processor")),
    MeasurementSpec("snmp_health", "snmp", _fields(G, INT, "percent", "cpu_percent", "memory_percent")
        + _fields(G, INT, "bytes", "memory_used_bytes", "memory_free_bytes"), ("device", "vendor", "entity", "name")),
    MeasurementSpec("snmp_device", "snmp", (
        FieldSpec("up", INT, "boolean"), FieldSpec("poll_duration_seconds", FLOAT, "seconds"),
        FieldSpec("varbinds", INT, "count"), FieldSpec("last_error", STRING, ""), FieldSpec("error_kind", STRING, "")),
        ("device",)),
    MeasurementSpec("snmp_trap", "snmp", (
        FieldSpec("received", INT, "count"), FieldSpec("trap_oid", STRING, ""), FieldSpec("if_index", INT, "")),
        ("device", "event", "severity")),
    # -- probes/result.py and the probes' own fields --------------------------------------------------
    MeasurementSpec("probe", "probe", (
        FieldSpec("success", INT, "boolean"), FieldSpec("duration_seconds", FLOAT, "seconds"),
        # probes/http.py answer_fields
        FieldSpec("http_status_code", INT, ""), FieldSpec("http_redirects", INT, "count"),
        FieldSpec("http_content_length", INT, "bytes"), FieldSpec("http_ssl", INT, "boolean"),
        FieldSpec("tls_version", FLOAT, "version"),  # also probes/tls.py
        # probes/tls.py evaluate
        FieldSpec("tls_cert_expiry_seconds", FLOAT, "seconds"),
        FieldSpec("tls_cert_not_after_timestamp_seconds", FLOAT, "timestamp_seconds"),
        FieldSpec("tls_cert_chain_valid", INT, "boolean"), FieldSpec("tls_cert_hostname_match", INT, "boolean"),
        # probes/dns.py
        FieldSpec("dns_rcode", INT, ""), FieldSpec("dns_answer_rrs", INT, "count"),
        FieldSpec("dns_response_seconds", FLOAT, "seconds"),
        # probes/dhcp.py, arp.py, traceroute.py, website.py
        FieldSpec("dhcp_servers", INT, "count"), FieldSpec("dhcp_rogue_servers", INT, "count"),
        FieldSpec("arp_hosts", INT, "count"), FieldSpec("arp_new_hosts", INT, "count"),
        FieldSpec("traceroute_hops", INT, "count"), FieldSpec("website_services", INT, "count")),
        _PROBE_TAGS),
    # per-phase durations: `probe_<kind>` for the kinds that time phases (HTTP: resolve/connect/tls/..., ICMP: rtt)
    MeasurementSpec("probe_http", "probe", (FieldSpec("duration_seconds", FLOAT, "seconds"),), (*_PROBE_TAGS, "phase")),
    MeasurementSpec("probe_icmp", "probe", (FieldSpec("duration_seconds", FLOAT, "seconds"),), (*_PROBE_TAGS, "phase")),
    # -- server/history/state.py: the server's own state, exported to history -------------------------
    MeasurementSpec("egovmon_findings", "server", _fields(G, INT, "count", "open", "acknowledged"),
        ("agency", "rule_id", "article", "severity"), server_tags=False),
    MeasurementSpec("egovmon_alerts", "server", _fields(G, INT, "count", "firing", "lacking_data"),
        ("agency", "severity"), server_tags=False),
    MeasurementSpec("egovmon_scorecard", "server",
        _fields(G, FLOAT, "ratio", "monitoring_coverage_ratio", "backup_rpo_ratio", "duties_on_time_ratio")
        + _fields(G, INT, "count", "duties", "duties_overdue", "open_findings", "hosts_expected", "hosts_reporting"),
        ("agency",), server_tags=False),
    MeasurementSpec("egovmon_alert_events", "server", _fields(G, STRING, "", "text", "fingerprint"),
        ("agency", "severity", "status", "alertname"), server_tags=False),
    MeasurementSpec("egovmon_finding_events", "server",
        (FieldSpec("text", STRING, ""), FieldSpec("finding_id", INT, "")),
        ("agency", "severity", "status", "article"), server_tags=False),
    # server/alerting/engine.py: each duty fed to the rule evaluator (never stored) for the DutyOverdue rule
    MeasurementSpec("duty_status", "server", (FieldSpec("overdue_seconds", FLOAT, "seconds"),),
        ("agency", "duty", "kind", "name", "system"), server_tags=False),
)}  # fmt: skip


# -- the agent's own /metrics (agent/metrics.py) ---------------------------------------------------


class MetricType(StrEnum):
    """A Prometheus metric type; a counter is exposed as `name_total`, a histogram as `name_bucket`/`_sum`/`_count`."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class AgentMetricSpec:
    """One metric of the agent's own health, by its prometheus-client family name, with its label names."""

    name: str
    type: MetricType
    labels: tuple[str, ...] = ()


AGENT_METRICS: Final[Mapping[str, AgentMetricSpec]] = {m.name: m for m in (
    AgentMetricSpec("egovmon_agent_collector_runs", MetricType.COUNTER, ("collector", "result")),
    AgentMetricSpec("egovmon_agent_collector_duration_seconds", MetricType.GAUGE, ("collector",)),
    AgentMetricSpec("egovmon_agent_collector_up", MetricType.GAUGE, ("collector",)),
    AgentMetricSpec("egovmon_agent_collector_last_success_timestamp_seconds", MetricType.GAUGE, ("collector",)),
    AgentMetricSpec("egovmon_agent_shipped_batches", MetricType.COUNTER, ("result",)),
    AgentMetricSpec("egovmon_agent_ship_errors", MetricType.COUNTER),
    AgentMetricSpec("egovmon_agent_ship_duration_seconds", MetricType.HISTOGRAM),
    AgentMetricSpec("egovmon_agent_last_ship_success_timestamp_seconds", MetricType.GAUGE),
    AgentMetricSpec("egovmon_agent_queue_write_errors", MetricType.COUNTER),
    AgentMetricSpec("egovmon_agent_queue_batches", MetricType.GAUGE),
    AgentMetricSpec("egovmon_agent_queue_bytes", MetricType.GAUGE),
    AgentMetricSpec("egovmon_agent_queue_dropped_batches", MetricType.COUNTER),
    AgentMetricSpec("egovmon_agent_queue_disk_full_dropped_batches", MetricType.COUNTER),
    AgentMetricSpec("egovmon_agent_worker_up", MetricType.GAUGE, ("worker",)),
    AgentMetricSpec("egovmon_agent_worker_restarts", MetricType.COUNTER, ("worker",)),
    AgentMetricSpec("egovmon_flow_decode_errors", MetricType.COUNTER, ("reason",)),
    AgentMetricSpec("egovmon_flow_evicted_templates", MetricType.COUNTER),
    AgentMetricSpec("egovmon_flow_evicted_exporters", MetricType.COUNTER),
    AgentMetricSpec("egovmon_flow_exporters", MetricType.GAUGE),
)}  # fmt: skip


# -- observations -----------------------------------------------------------------------------------


class SubjectFormat(StrEnum):
    """What an observation's subject is, and how to check one."""

    ADDRESS = "address"  # an IP address: 192.0.2.1, 2001:db8::1
    PREFIX = "prefix"  # an IP network: 192.0.2.0/24
    INTERFACE_ADDRESS = "interface_address"  # an address with its prefix length: 192.0.2.1/24
    SOCKET = "socket"  # proto:address:port, IPv6 in brackets: tcp:[::1]:22
    URL = "url"  # http(s)://host[:port]/...
    TEXT = "text"  # a name: an interface, a device, a job, a check, device/interface

    def matches(self, subject: str) -> bool:
        """Whether `subject` has this format (TEXT: any non-empty text)."""
        try:
            if self is SubjectFormat.ADDRESS:
                ipaddress.ip_address(subject)
            elif self is SubjectFormat.PREFIX:
                ipaddress.ip_network(subject, strict=False)
            elif self is SubjectFormat.INTERFACE_ADDRESS:
                ipaddress.ip_interface(subject)
                return "/" in subject
            elif self is SubjectFormat.SOCKET:
                return re.fullmatch(r"(tcp|udp)6?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}", subject) is not None
            elif self is SubjectFormat.URL:
                return re.match(r"https?://[^\s/]+", subject) is not None
        except ValueError:
            return False
        return bool(subject)


class AttributeType(StrEnum):
    """The JSON type of an attribute's value (`list` of scalars)."""

    STR = "str"
    INT = "int"
    BOOL = "bool"
    LIST = "list"


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    name: str
    type: AttributeType
    optional: bool = False  # present for some subjects only (a tunnel's vni on vxlan)


@dataclass(frozen=True, slots=True)
class ObservationSpec:
    """One observation kind as one source reports it (netstate and snmp both report `route`, with other details)."""

    kind: str
    source: str
    subject: SubjectFormat
    attributes: tuple[AttributeSpec, ...]

    def attribute(self, name: str) -> AttributeSpec | None:
        return next((a for a in self.attributes if a.name == name), None)


def _attrs(spec: str, *, optional: str = "") -> tuple[AttributeSpec, ...]:
    """Attributes from "name:type name:type ..." (types str, int, bool, list); `optional` likewise."""
    def parse(text: str, opt: bool) -> tuple[AttributeSpec, ...]:
        return tuple(AttributeSpec(name, AttributeType(type_), opt) for name, type_ in (w.split(":") for w in text.split()))
    return parse(spec, False) + parse(optional, True)


_SNMP = "device:str "  # collectors/snmp/reading.py observations() adds the device to every attribute set
A, P, IA, SOCK, URL, T = (SubjectFormat.ADDRESS, SubjectFormat.PREFIX, SubjectFormat.INTERFACE_ADDRESS,
                          SubjectFormat.SOCKET, SubjectFormat.URL, SubjectFormat.TEXT)

OBSERVATIONS: Final[Mapping[tuple[str, str], ObservationSpec]] = {(o.kind, o.source): o for o in (
    # -- collectors/netstate/reading.py ---------------------------------------------------------------
    ObservationSpec("interface", "netstate", T, _attrs(
        "kind:str link_kind:str mac:str state:str mtu:int master:str addresses:list address_count:int")),
    ObservationSpec("interface_address", "netstate", IA, _attrs("interface:str family:str network:str scope:str")),
    ObservationSpec("route", "netstate", P, _attrs(
        "gateway:str interface:str family:str metric:int table:str default:bool")),
    ObservationSpec("ip_forwarding", "netstate", T, _attrs("enabled:bool")),  # subject ipv4 or ipv6
    ObservationSpec("nat", "netstate", T, _attrs("present:bool source:str conclusive:bool")),  # subject masquerade
    ObservationSpec("listening_socket", "netstate", SOCK, _attrs("process:str pid:int")),
    ObservationSpec("tunnel", "netstate", T, _attrs(
        "type:str local:str remote:str", optional="vni:int peer_endpoints:list peer_count:int")),
    # -- collectors/snmp (reading.py, traps.py, discovery.py) -----------------------------------------
    ObservationSpec("snmp_device", "snmp", T, _attrs(
        _SNMP + "sys_name:str sys_descr:str sys_object_id:str location:str model:str serial:str")),
    ObservationSpec("interface", "snmp", T, _attrs(  # subject device/ifName
        _SNMP + "name:str if_index:int alias:str mac:str state:str admin_state:str mtu:int speed_bps:int")),
    ObservationSpec("interface_address", "snmp", IA, _attrs(_SNMP + "interface:str if_index:int network:str family:str")),
    ObservationSpec("route", "snmp", P, _attrs(
        _SNMP + "gateway:str interface:str if_index:int family:str metric:int type:str proto:int default:bool")),
    ObservationSpec("arp_entry", "snmp", A, _attrs(_SNMP + "mac:str interface:str if_index:int type:str")),
    ObservationSpec("lldp_neighbor", "snmp", T, _attrs(
        _SNMP + "local_port:str chassis_id:str port_id:str port_descr:str sys_descr:str management_addresses:list")),
    ObservationSpec("fdb_entry", "snmp", T, _attrs(  # subject the MAC address
        _SNMP + "vlan:int interface:str if_index:int bridge_port:int status:str")),
    ObservationSpec("snmp_trap", "snmp", T, _attrs(  # subject the sender
        "event:str severity:str trap_oid:str if_index:int interface:str vendor:str uptime_ticks:int varbinds:list")),
    ObservationSpec("snmp_candidate", "snmp", A, _attrs("via:str seen_by:str name:str")),
    # -- collectors/flow/aggregate.py -----------------------------------------------------------------
    ObservationSpec("flow_subnet", "flow", P, _attrs("exporter:str in_plan:bool")),
    ObservationSpec("flow_unplanned_address", "flow", A, _attrs("exporter:str")),
    ObservationSpec("flow_gateway_candidate", "flow", A, _attrs("exporter:str distinct_peers:int distinct_ttls:int")),
    # -- collectors/backup.py -------------------------------------------------------------------------
    ObservationSpec("backup_status", "backup", T, _attrs("status:str detail:str")),  # subject the job name
    # -- probes: result.py (state changes) and the discovery probes' findings -------------------------
    ObservationSpec("probe_state", "probe", T, _attrs(  # subject the check name
        "state:str previous:str reason:str reason_text:str detail:str")),
    ObservationSpec("arp_entry", "probe.arp", A, _attrs("mac:str interface:str network:str new:bool mac_changed:bool")),
    ObservationSpec("dhcp_offer", "probe.dhcp", T, _attrs(  # subject the server identifier
        "interface:str offered_address:str network:str routers:list dns_servers:list lease_seconds:int domain:str "
        "server_mac:str authorized:bool")),
    ObservationSpec("traceroute_path", "probe.traceroute", A, _attrs("protocol:str hops:list hop_count:int reached:bool")),
    ObservationSpec("website", "probe.website", URL, _attrs(
        "status:int title:str server:str tls:bool cert_subject:str cert_issuer:str cert_not_after:str")),
)}  # fmt: skip


# -- checks -------------------------------------------------------------------------------------------


def _type_of(value: object) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(type(value), type(value).__name__)


def sample_problems(sample: Sample) -> list[str]:
    """What in `sample` the catalogue does not describe (empty when it describes all of it), in English."""
    spec = MEASUREMENTS.get(sample.measurement)
    if spec is None:
        return [f"measurement {sample.measurement} is not catalogued"]
    problems = []
    for name, value in sample.fields.items():
        field = spec.field(name)
        if field is None:
            problems.append(f"{sample.measurement}: field {name} is not catalogued")
        elif _type_of(value) != field.type.value:
            problems.append(f"{sample.measurement}.{name}: {_type_of(value)} value, catalogued as {field.type.value}")
    known = set(spec.tags) | set(spec.optional_tags)
    problems += [f"{sample.measurement}: tag {tag} is not catalogued" for tag in sorted(set(sample.tags) - known)]
    problems += [f"{sample.measurement}: tag {tag} is missing" for tag in spec.tags if tag not in sample.tags]
    return problems


def observation_problems(observation: Observation) -> list[str]:
    """What in `observation` the catalogue does not describe (empty when it describes all of it), in English."""
    where = f"{observation.kind} from {observation.source}"
    spec = OBSERVATIONS.get((observation.kind, observation.source))
    if spec is None:
        return [f"observation {where} is not catalogued"]
    problems = []
    if not spec.subject.matches(observation.subject):
        problems.append(f"{where}: subject {observation.subject!r} is not a {spec.subject.value}")
    for name, value in observation.attributes.items():
        attribute = spec.attribute(name)
        found = "list" if isinstance(value, list) else _type_of(value).replace("string", "str")
        if attribute is None:
            problems.append(f"{where}: attribute {name} is not catalogued")
        elif found != attribute.type.value:
            problems.append(f"{where}: attribute {name} is {found}, catalogued as {attribute.type.value}")
    problems += [f"{where}: attribute {a.name} is missing" for a in spec.attributes
                 if not a.optional and a.name not in observation.attributes]
    return problems


def reference_problems(measurement: str, fields: Iterable[str] = (), tags: Iterable[str] = ()) -> list[str]:
    """What a query or rule names that is not catalogued: the measurement, a field of it, a tag of its series."""
    spec = MEASUREMENTS.get(measurement)
    if spec is None:
        return [f"measurement {measurement} is not catalogued"]
    problems = [f"{measurement}: field {name} is not catalogued" for name in fields if spec.field(name) is None]
    problems += [f"{measurement}: tag {tag} is not catalogued" for tag in tags if tag not in spec.all_tags]
    return problems


def split_metric(metric: str) -> tuple[MeasurementSpec, FieldSpec] | None:
    """The measurement and field of a Prometheus-style name `measurement_field` (how VictoriaMetrics stores a field).

    The longest catalogued measurement that leaves a catalogued field wins (`host_cpu_guest_seconds_total` is
    host_cpu_guest's seconds_total, not host_cpu's).
    """
    for name in sorted(MEASUREMENTS, key=len, reverse=True):
        if metric.startswith(name + "_"):
            field = MEASUREMENTS[name].field(metric[len(name) + 1:])
            if field is not None:
                return MEASUREMENTS[name], field
    return None
