"""Dashboards as code: the JSON of both flavours against the foundation SDK's models, the provisioning and import
files, and provisioning against the documented Grafana HTTP API. The queries themselves run against real InfluxDB and
VictoriaMetrics in tests/dashboards/test_queries.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards.build import (
    DatasourceAuth,
    build_dashboard,
    datasource_model,
    push,
    to_json,
    write,
)
from dashboards.panels import DASHBOARDS


@pytest.mark.parametrize("flavour", ["influxql", "promql"])
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_dashboard_json_round_trips_through_the_sdk_models(lang, flavour):
    suffix = "" if flavour == "influxql" else "-vm"
    for spec in DASHBOARDS:
        data = build_dashboard(spec, lang, flavour)
        annotations = data["annotations"]["list"]
        typed = {**data, "annotations": {"list": []}}  # the SDK's model has no datasource annotation query (added by us)
        assert to_json(Dashboard.from_json(typed)) == typed
        assert [a["name"] for a in annotations] == (["告警", "合规发现"] if lang == "zh" else ["Alerts", "Findings"])
        assert data["uid"] == spec.uid + suffix + ("" if lang == "zh" else "-en")
        assert data["title"] == (spec.title_zh if lang == "zh" else spec.title_en)
        assert [v["name"] for v in data["templating"]["list"]] == list(spec.variables)
        targets = [t for p in data["panels"] for t in p["targets"]]
        if flavour == "influxql":
            assert all(t["rawQuery"] and t["datasource"] == {"type": "influxdb", "uid": "egovmon-influxdb"} for t in targets)
            assert len(targets) == len(spec.panels)  # one InfluxQL statement per panel
        else:
            assert all(t["datasource"] == {"type": "prometheus", "uid": "egovmon-victoriametrics"} for t in targets)
            assert len(targets) == sum(len(p.targets) for p in spec.panels)  # one PromQL query per column
            assert all(t["instant"] == (p["type"] != "timeseries") for p in data["panels"] for t in p["targets"])


def test_build_keeps_the_default_layout_with_absolute_provider_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    written = write(Path("grafana"),
                    urls={"influxql": "http://influx.example:8086"})  # a relative --out, as a user types it
    dashboards = [p for p in written if p.parts[1] == "dashboards"]
    imports = [p for p in written if p.parts[1] == "import"]
    assert len(dashboards) == len(imports) == len(DASHBOARDS) and len(written) == 2 * len(DASHBOARDS) + 2
    assert (tmp_path / "grafana" / "dashboards" / "agencies" / "egovmon-agency.json").is_file()
    datasources = json.loads((tmp_path / "grafana" / "provisioning" / "datasources.yaml").read_text())
    assert datasources["datasources"] == [{"name": "egovmon InfluxDB", "uid": "egovmon-influxdb", "type": "influxdb", "access": "proxy",
                                           "url": "http://influx.example:8086",
                                           "jsonData": {"dbName": "egovmon", "httpMode": "GET", "version": "InfluxQL"}}]
    providers = json.loads((tmp_path / "grafana" / "provisioning" / "dashboards.yaml").read_text())["providers"]
    assert {p["folder"] for p in providers} == {"统一平台", "网络", "服务", "部门", "安全与合规"}
    for provider in providers:  # Grafana's file provider needs absolute paths
        path = PurePosixPath(provider["options"]["path"])
        assert path.is_absolute() and path == PurePosixPath(tmp_path / "grafana" / "dashboards" / path.name)


def test_build_both_flavours_into_separate_folders_for_a_grafana_path(tmp_path):
    write(tmp_path, flavours=("influxql", "promql"), grafana_path=PurePosixPath("/var/lib/grafana/egovmon"),
          urls={"promql": "http://vm.example:8428"})  # fmt: skip
    for flavour, suffix in (("influxql", ""), ("promql", "-vm")):
        providers = json.loads((tmp_path / flavour / "provisioning" / "dashboards.yaml").read_text())["providers"]
        assert {p["options"]["path"] for p in providers} == {
            f"/var/lib/grafana/egovmon/{flavour}/dashboards/{folder}" for folder in ("agencies", "compliance", "network", "platform", "services")}
        assert {p["folderUid"] for p in providers} == {f"egovmon-{f}{suffix}" for f in ("agencies", "compliance", "network", "platform", "services")}
        assert (tmp_path / flavour / "dashboards" / "agencies" / f"egovmon-agency{suffix}.json").is_file()
    vm = json.loads((tmp_path / "promql" / "provisioning" / "datasources.yaml").read_text())["datasources"]
    assert vm == [{"name": "egovmon VictoriaMetrics", "uid": "egovmon-victoriametrics", "type": "prometheus", "access": "proxy",
                   "url": "http://vm.example:8428", "jsonData": {"httpMethod": "POST", "timeInterval": "15s"}}]
    with pytest.raises(ValueError, match="absolute"):
        write(tmp_path, grafana_path=PurePosixPath("grafana"))


@pytest.mark.parametrize("flavour", ["influxql", "promql"])
def test_import_files_ask_for_the_datasource(tmp_path, flavour):
    write(tmp_path, flavours=(flavour,))
    data = json.loads((tmp_path / "import" / ("egovmon-agency.json" if flavour == "influxql" else "egovmon-agency-vm.json")).read_text())
    placeholder = "DS_EGOVMON_INFLUXDB" if flavour == "influxql" else "DS_EGOVMON_VICTORIAMETRICS"
    (wanted,) = data["__inputs"]
    assert wanted["name"] == placeholder and wanted["type"] == "datasource"
    assert wanted["pluginId"] == ("influxdb" if flavour == "influxql" else "prometheus")
    text = json.dumps({k: v for k, v in data.items() if k not in ("__inputs", "__requires")})
    assert "egovmon-influxdb" not in text and "egovmon-victoriametrics" not in text  # every reference is the input
    refs = [t["datasource"]["uid"] for p in data["panels"] for t in p["targets"]] + [v["datasource"]["uid"] for v in data["templating"]["list"]]
    assert set(refs) == {f"${{{placeholder}}}"}


def test_datasource_auth_fields():
    influx_user = datasource_model("influxql", "http://i:8086", "egovmon", DatasourceAuth(user="grafana", password="s3cret"))
    assert influx_user["user"] == "grafana" and influx_user["secureJsonData"] == {"password": "s3cret"}
    influx_token = datasource_model("influxql", "http://i:8086", "egovmon", DatasourceAuth(token="tok"))
    assert influx_token["jsonData"]["httpHeaderName1"] == "Authorization"
    assert influx_token["secureJsonData"] == {"httpHeaderValue1": "Token tok"}  # InfluxDB 2.x/3.x InfluxQL endpoint
    vm = datasource_model("promql", "http://v:8428", auth=DatasourceAuth(user="grafana", password="s3cret"))
    assert vm["basicAuth"] is True and vm["basicAuthUser"] == "grafana" and vm["secureJsonData"] == {"basicAuthPassword": "s3cret"}


def test_provisioning_files_hold_environment_references_not_secrets(tmp_path):
    write(tmp_path, auth=DatasourceAuth(user="grafana", password="s3cret", token="tok"))
    text = (tmp_path / "provisioning" / "datasources.yaml").read_text()
    assert "s3cret" not in text and '"tok"' not in text and "Token tok" not in text
    (ds,) = json.loads(text)["datasources"]
    assert ds["secureJsonData"] == {"password": "$EGOVMON_TSDB_PASSWORD", "httpHeaderValue1": "Token $EGOVMON_TSDB_TOKEN"}


class FakeGrafana(BaseHTTPRequestHandler):
    """A stand-in for Grafana's HTTP API (no Grafana server can be installed here: not in Debian, not on PyPI).
    It implements the documented shapes of the calls egovmon makes: GET/POST /api/folders, GET /api/folders/:uid,
    GET /api/datasources/uid/:uid, POST /api/datasources, PUT /api/datasources/uid/:uid, POST /api/dashboards/db."""

    state: ClassVar[dict[str, Any]] = {}

    def _send(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")

    def do_GET(self) -> None:
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

    def do_POST(self) -> None:
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

    def do_PUT(self) -> None:
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
        first = push(api, url="http://influx:8086")
        second = push(api, url="http://influx:8086")
        vm = push(api, url="http://vm:8428", flavour="promql")
    finally:
        server.shutdown()
        server.server_close()
    assert first == {"datasources_created": 1, "datasources_updated": 0, "folders_created": 5, "dashboards": len(DASHBOARDS)}
    assert second == {"datasources_created": 0, "datasources_updated": 1, "folders_created": 0, "dashboards": len(DASHBOARDS)}
    assert vm == {"datasources_created": 1, "datasources_updated": 0, "folders_created": 5, "dashboards": len(DASHBOARDS)}
    assert sorted(FakeGrafana.state["dashboards"]) == sorted([d.uid for d in DASHBOARDS] + [f"{d.uid}-vm" for d in DASHBOARDS])
    assert list(FakeGrafana.state["datasources"]) == ["egovmon-influxdb", "egovmon-victoriametrics"]


def test_influxql_refuses_what_one_statement_cannot_read():
    from dashboards import influxql
    from dashboards.model import Field, Nested, PanelSpec, Target

    two_measurements = PanelSpec("t", "t", (Target(Field("host_load", "load1")), Target(Field("host_memory", "total_bytes"))), ("host",))
    with pytest.raises(ValueError, match="host_load and host_memory"):
        influxql.render_panel(two_measurements)
    nested_over_time = PanelSpec("t", "t", (Target(Nested("count", Field("host_system", "uptime_seconds"), ("host",))),), ())
    with pytest.raises(ValueError, match="nested aggregate"):
        influxql.render_panel(nested_over_time)
