"""What the dashboards read, produced the way egovmon produces it: the real host collector on this machine, real
flow aggregates from a captured NetFlow export, and samples with the measurements and fields of
collectors/backup.py, collectors/snmp/reading.py, probes/result.py and server/history/state.py; encoded by the
server's ingest encoder with the tags it adds, and written by the server's own TSDB writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collectors.flow.aggregate import AggregateSettings, summarise
from collectors.flow.batch import BatchDecoder
from collectors.flow.decode import read_datagrams
from collectors.host import HostCollector
from core.collect import LOCAL
from core.models import Sample
from server.history.base import EncodedBatch
from server.history.state import state_samples
from server.ingest.encode import encode_batch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flows"
AGENCY, HOST, SITE = "health", "his-db-1", "platform-dc"  # the agency with every kind of data
OTHER_AGENCY, OTHER_HOST, OTHER_SITE = "edu", "edu-web-1", "edu-dc"  # a second agency with host data only


def _host_samples(now: datetime) -> list[Sample]:
    first = asyncio.run(HostCollector().collect(LOCAL, timeout=10)).samples
    # The same real collection 90 s later, its CPU counters advanced: two real collections a moment apart can even
    # go backwards (per-CPU iowait does), and a rate needs two points in different buckets (GROUP BY time stops at now()).
    host = [s.model_copy(update={"timestamp": now - timedelta(seconds=120)}) for s in first]
    later = [
        s.model_copy(update={"timestamp": now - timedelta(seconds=30),
                             "fields": {k: v + 15 for k, v in s.fields.items()} if s.measurement in ("host_cpu", "host_network") else s.fields})
        for s in first
    ]  # fmt: skip
    return host + later


def samples(now: datetime) -> list[Sample]:
    """Every kind of sample the dashboards read, for one host of one agency, around `now`."""
    decoded = BatchDecoder().decode([("10.0.0.1", d) for _, d in read_datagrams(FIXTURES / "netflow5_test_microtik.dat")])
    flows, _ = summarise({e: f.flows for e, f in decoded.exporters.items()}, AggregateSettings(), at=now)
    device = [Sample(measurement="snmp_interface", tags={"device": "core-1", "if_index": "1", "if_name": "GE0/0/1"},
                     fields={"in_octets_total": 1000 + i * 125000, "hc_in_octets_total": 1000 + i * 125000,
                             "hc_out_octets_total": 500 + i * 62500, "oper_up": 1, "admin_up": 1}, timestamp=now + timedelta(seconds=90 * i))
              for i in range(2)]  # fmt: skip
    device.append(Sample(measurement="snmp_health", tags={"device": "core-1", "vendor": "huawei", "entity": "67108873", "name": "MPU 9"},
                         fields={"cpu_percent": 12, "memory_percent": 40}, timestamp=now))
    device.append(Sample(measurement="snmp_device", tags={"device": "core-1"}, fields={"up": 1, "poll_duration_seconds": 0.2}, timestamp=now))
    backup = [Sample(measurement="backup", tags={"job": "his-db", "role": "backup", "kind": "path"},
                     fields={"age_seconds": 3600.0, "rpo_ok": 1, "rpo_seconds": 86400.0}, timestamp=now)]  # fmt: skip
    probe = [Sample(measurement="probe", tags={"check": "portal", "kind": "http", "target": "https://www.example.gov/"},
                    fields={"success": 1, "duration_seconds": 0.05}, timestamp=now)]  # fmt: skip
    state = state_samples(
        findings=[{"agency": AGENCY, "rule_id": "undeclared_network", "article": "第九条、第三十条第（二）项", "severity": "critical", "status": "open"}],
        alerts=[{"agency": AGENCY, "severity": "critical", "status": "firing", "lacking_data": False}],
        scorecard=[{"agency": AGENCY, "monitoring_coverage_ratio": 1.0, "backup_rpo_ratio": 0.5, "duties_on_time_ratio": None, "duties": 2,
                    "duties_overdue": 1, "open_findings": 1, "hosts_expected": 1, "hosts_reporting": 1}],
        alert_events=[{"agency": AGENCY, "severity": "critical", "status": "firing", "alertname": "BackupRpoMissed",
                       "text": "主机 his-db-1 的备份任务 his-db 超过恢复点目标（RPO）", "fingerprint": "a1b2c3d4e5f60718", "at": now}],
        finding_events=[{"agency": AGENCY, "severity": "critical", "status": "open", "article": "第九条、第三十条第（二）项",
                         "text": "未申报的网络（疑似业务专网）：192.168.77.0/24", "finding_id": 1, "at": now}],
        at=now,
    )  # what server/history/state.py exports every minute from the SQL state
    return _host_samples(now) + flows + device + backup + probe + state


def batches(now: datetime) -> list[EncodedBatch]:
    """The line protocol the server's ingest makes of both agencies' samples (it adds host, agency and site)."""
    out = []
    for records, tags in (
        (samples(now), {"host": HOST, "agency": AGENCY, "site": SITE}),
        (_host_samples(now), {"host": OTHER_HOST, "agency": OTHER_AGENCY, "site": OTHER_SITE}),
    ):
        batch, _ = encode_batch([s.model_dump() for s in records], extra_tags=tags, now=datetime.now(UTC))
        out.append(batch)
    return out
