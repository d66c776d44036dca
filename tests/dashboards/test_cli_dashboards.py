"""`egovmon dashboards build|push` from the command line: flavours, absolute provisioning paths, help texts, and one
line (not a traceback) when Grafana cannot be reached."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from dashboards.panels import DASHBOARDS
from tests.services import free_port


def test_build_default_is_influxql_in_the_given_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["dashboards", "build", "--out", "grafana"])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 2 * len(DASHBOARDS) + 2
    providers = json.loads(Path("grafana/provisioning/dashboards.yaml").read_text())["providers"]
    assert {p["options"]["path"] for p in providers} == {str(tmp_path / "grafana" / "dashboards" / p["name"].removeprefix("egovmon-"))
                                                         for p in providers}  # fmt: skip
    assert json.loads(Path("grafana/dashboards/agencies/egovmon-agency.json").read_text())["panels"][0]["targets"][0]["rawQuery"]


def test_build_both_flavours_with_a_grafana_path_and_auth(tmp_path):
    result = CliRunner().invoke(app, ["dashboards", "build", "--out", str(tmp_path), "--flavour", "both", "--grafana-path",
                                      "/etc/grafana/egovmon", "--tsdb-user", "grafana", "--victoriametrics-url", "http://vm:8428"])  # fmt: skip
    assert result.exit_code == 0, result.output
    vm = json.loads((tmp_path / "promql" / "provisioning" / "datasources.yaml").read_text())["datasources"][0]
    assert (vm["url"], vm["basicAuthUser"], vm["secureJsonData"]) == ("http://vm:8428", "grafana", {"basicAuthPassword": "$EGOVMON_TSDB_PASSWORD"})
    providers = json.loads((tmp_path / "influxql" / "provisioning" / "dashboards.yaml").read_text())["providers"]
    assert all(p["options"]["path"].startswith("/etc/grafana/egovmon/influxql/dashboards/") for p in providers)
    relative = CliRunner().invoke(app, ["dashboards", "build", "--out", str(tmp_path), "--grafana-path", "etc/grafana"])
    assert relative.exit_code == 2 and "absolute" in relative.output
    unknown = CliRunner().invoke(app, ["dashboards", "build", "--out", str(tmp_path), "--flavour", "sql"])
    assert unknown.exit_code == 2 and "influxql, promql or both" in unknown.output


def test_push_to_an_unreachable_grafana_prints_one_line():
    port = free_port()  # nothing listens there
    result = CliRunner().invoke(app, ["dashboards", "push", "--url", f"http://127.0.0.1:{port}", "--token", "glsa_x"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [f"error: Grafana at http://127.0.0.1:{port} cannot be reached: ConnectionError"]


def test_every_dashboards_command_has_a_help_text():
    for command in ("build", "push"):
        result = CliRunner().invoke(app, ["dashboards", command, "--help"])
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        assert {"build": "Write dashboards", "push": "Create or update the datasource"}[command] in text
    assert "InfluxQL (InfluxDB) and PromQL (VictoriaMetrics)" in " ".join(CliRunner().invoke(app, ["dashboards", "--help"]).output.split())
