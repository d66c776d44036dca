"""Dashboards as code: every panel's and variable's InfluxQL against a real InfluxDB 1.x seeded through egovmon's
real history writer with what the collectors produce; the JSON against the foundation SDK's models; provisioning
against the documented Grafana HTTP API."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from collectors.flow.aggregate import AggregateSettings, summarise
from collectors.flow.batch import BatchDecoder
from collectors.flow.decode import read_datagrams
from collectors.host import HostCollector
from core.collect import LOCAL
from core.models import Sample
from core.settings import TsdbSettings
from dashboards.build import build_dashboard, push, to_json, write
from dashboards.panels import ANNOTATIONS, DASHBOARDS, VARIABLES
from server.history.influx1 import InfluxV1Writer
from server.history.state import state_samples
from server.ingest.encode import encode_batch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flows"


def _samples(now: datetime) -> list[Sample]:
    """What the collectors write: the real host collector on this machine, real flow aggregates, and samples with the
    measurements and fields of collectors/backup.py, collectors/snmp/reading.py and probes/result.py."""
    first = asyncio.run(HostCollector().collect(LOCAL, timeout=10)).samples
    # The same real collection 90 s later, its CPU counters advanced: two real collections a moment apart can even
    # go backwards (per-CPU iowait does), and a rate needs two points in different buckets (GROUP BY time stops at now()).
    host = [s.model_copy(update={"timestamp": now - timedelta(seconds=120)}) for s in first]
    later = [
        s.model_copy(update={"timestamp": now - timedelta(seconds=30),
                             "fields": {k: v + 15.0 for k, v in s.fields.items()} if s.measurement == "host_cpu" else s.fields})
        for s in first
    ]  # fmt: skip
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
        findings=[{"agency": "health", "rule_id": "undeclared_network", "article": "第九条、第三十条第（二）项", "severity": "critical", "status": "open"}],
        alerts=[{"agency": "health", "severity": "critical", "status": "firing", "lacking_data": False}],
        scorecard=[{"agency": "health", "monitoring_coverage_ratio": 1.0, "backup_rpo_ratio": 0.5, "duties_on_time_ratio": None, "duties": 2,
                    "duties_overdue": 1, "open_findings": 1, "hosts_expected": 1, "hosts_reporting": 1}],
        alert_events=[{"agency": "health", "severity": "critical", "status": "firing", "alertname": "BackupRpoMissed",
                       "text": "主机 his-db-1 的备份任务 his-db 超过恢复点目标（RPO）", "fingerprint": "a1b2c3d4e5f60718", "at": now}],
        finding_events=[{"agency": "health", "severity": "critical", "status": "open", "article": "第九条、第三十条第（二）项",
                         "text": "未申报的网络（疑似业务专网）：192.168.77.0/24", "finding_id": 1, "at": now}],
        at=now,
    )  # what server/history/state.py exports every minute from the SQL state
    return host + later + flows + device + backup + probe + state


DATABASE = "dashboards_test"


class Seeded:
    """The session's InfluxDB 1.x, with a database of this module's own (other tests write to `egovmon`)."""

    def __init__(self, influxdb1: Any) -> None:
        self._influx = influxdb1

    def query(self, q: str) -> dict[str, Any]:
        return self._influx.query(q, database=DATABASE)

    def rows(self, q: str) -> list[dict[str, Any]]:
        return [dict(zip(s["columns"], values, strict=True)) for r in self.query(q)["results"]
                for s in r.get("series", []) for values in s["values"]]  # fmt: skip


@pytest.fixture(scope="module")
def seeded(influxdb1):  # noqa: ANN001 - the session fixture of tests/conftest.py
    influxdb1.query(f"DROP DATABASE {DATABASE}", method="POST")
    influxdb1.query(f"CREATE DATABASE {DATABASE}", method="POST")
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    samples = [s.model_dump() for s in _samples(now)]
    batch, _ = encode_batch(samples, extra_tags={"host": "his-db-1", "agency": "health", "site": "platform-dc"}, now=datetime.now(UTC))
    writer = InfluxV1Writer(TsdbSettings(kind="influxdb1", url=influxdb1.url, database=DATABASE))
    writer.write(batch)
    writer.close()
    return Seeded(influxdb1)


def _concrete(query: str) -> str:
    """Grafana's macros and All-valued variables as Grafana would expand them."""
    query = query.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "1m")
    return re.sub(r"/\^\$(agency|site|host|device)\$/", "/.*/", query)


PANELS = [(d.uid, p) for d in DASHBOARDS for p in d.panels]


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=[f"{u}:{p.title_en}" for u, p in PANELS])
def test_every_panel_query_returns_series_with_its_legend_tags(seeded, uid, panel):
    results = seeded.query(_concrete(panel.query))["results"]
    series = [s for r in results for s in r.get("series", [])]
    assert series, f"{uid}: {panel.title_en} returned nothing"
    for s in series:
        assert set(panel.legend) <= set(s.get("tags", {})), (panel.title_en, s.get("tags"))
        assert any(v is not None for row in s["values"] for v in row[1:])


@pytest.mark.parametrize("annotation", ANNOTATIONS, ids=[a.name_en for a in ANNOTATIONS])
def test_annotation_queries_return_text_and_tags(seeded, annotation):
    rows = seeded.rows(_concrete(annotation.query))
    assert len(rows) == 1 and rows[0]["text"] and all(rows[0][column] for column in annotation.tags_column.split(","))


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_every_variable_query_returns_values(seeded, name):
    results = seeded.query(_concrete(VARIABLES[name].query))["results"]
    values = [row[1] for r in results for s in r.get("series", []) for row in s["values"]]
    assert values == {"agency": ["health"], "host": ["his-db-1"], "device": ["core-1"], "site": ["platform-dc"]}[name]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_dashboard_json_round_trips_through_the_sdk_models(lang):
    for spec in DASHBOARDS:
        data = build_dashboard(spec, lang)
        annotations = data["annotations"]["list"]
        typed = {**data, "annotations": {"list": []}}  # the SDK's model has no InfluxDB annotation query (added by us)
        assert to_json(Dashboard.from_json(typed)) == typed
        assert [a["name"] for a in annotations] == (["告警", "合规发现"] if lang == "zh" else ["Alerts", "Findings"])
        assert data["uid"] == (spec.uid if lang == "zh" else f"{spec.uid}-en")
        assert data["title"] == (spec.title_zh if lang == "zh" else spec.title_en)
        assert [v["name"] for v in data["templating"]["list"]] == list(spec.variables)
        assert all(t["rawQuery"] and t["datasource"]["uid"] == "egovmon-influxdb" for p in data["panels"] for t in p["targets"])


def test_build_writes_dashboards_and_provisioning(tmp_path):
    written = write(tmp_path, influx_url="http://influx.example:8086")
    assert len([p for p in written if p.suffix == ".json"]) == len(DASHBOARDS) and len(written) == len(DASHBOARDS) + 2
    datasources = json.loads((tmp_path / "provisioning" / "datasources.yaml").read_text())
    assert datasources["datasources"][0]["jsonData"] == {"dbName": "egovmon", "httpMode": "GET", "version": "InfluxQL"}
    providers = json.loads((tmp_path / "provisioning" / "dashboards.yaml").read_text())
    assert {p["folder"] for p in providers["providers"]} == {"统一平台", "网络", "服务", "部门", "安全与合规"}


class FakeGrafana(BaseHTTPRequestHandler):
    """A stand-in for Grafana's HTTP API (no Grafana server can be installed here: not in Debian, not on PyPI).
    It implements the documented shapes of the calls egovmon makes: GET/POST /api/folders, GET /api/folders/:uid,
    GET /api/datasources/uid/:uid, POST /api/datasources, PUT /api/datasources/uid/:uid, POST /api/dashboards/db."""

    state: dict[str, Any] = {}

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def do_GET(self) -> None:  # noqa: N802
        assert self.headers["Authorization"] == "Bearer glsa_test"
        if self.path.startswith("/api/folders/"):
            uid = self.path.rsplit("/", 1)[1]
            folder = self.state["folders"].get(uid)
            self._send(200, folder) if folder else self._send(404, {"message": "folder not found"})
        elif self.path.startswith("/api/datasources/uid/"):
            ds = self.state["datasources"].get(self.path.rsplit("/", 1)[1])
            self._send(200, ds) if ds else self._send(404, {"message": "Data source not found"})
        else:
            self._send(404, {"message": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if self.path == "/api/folders":
            self.state["folders"][body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": len(self.state["folders"]) + 1}
            self._send(200, self.state["folders"][body["uid"]])
        elif self.path == "/api/datasources":
            self.state["datasources"][body["uid"]] = body
            self._send(200, {"message": "Datasource added", "datasource": body})
        elif self.path == "/api/dashboards/db":
            uid = body["dashboard"]["uid"]
            assert body["overwrite"] is True and body["folderUid"] in self.state["folders"]
            self.state["dashboards"][uid] = body
            self._send(200, {"status": "success", "uid": uid, "version": 1})
        else:
            self._send(404, {"message": "not found"})

    def do_PUT(self) -> None:  # noqa: N802
        body = self._body()
        uid = self.path.rsplit("/", 1)[1]
        self.state["datasources"][uid] = body
        self._send(200, {"message": "Datasource updated"})

    def log_message(self, *args: object) -> None:
        pass


def test_push_provisions_idempotently_through_grafana_client():
    from grafana_client import GrafanaApi

    FakeGrafana.state = {"folders": {}, "datasources": {}, "dashboards": {}}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGrafana)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = GrafanaApi.from_url(f"http://127.0.0.1:{server.server_address[1]}", credential="glsa_test")
        first = push(api, influx_url="http://influx:8086")
        second = push(api, influx_url="http://influx:8086")
    finally:
        server.shutdown()
        server.server_close()
    assert first == {"datasources_created": 1, "datasources_updated": 0, "folders_created": 5, "dashboards": len(DASHBOARDS)}
    assert second == {"datasources_created": 0, "datasources_updated": 1, "folders_created": 0, "dashboards": len(DASHBOARDS)}
    assert sorted(FakeGrafana.state["dashboards"]) == sorted(d.uid for d in DASHBOARDS)
    assert list(FakeGrafana.state["datasources"]) == ["egovmon-influxdb"]
