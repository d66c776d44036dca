"""Every panel, variable and annotation query of both dashboard flavours, run against the real server of its flavour.

InfluxQL runs on a real InfluxDB 1.6 (`influxd`), PromQL on a real VictoriaMetrics
(`victoria-metrics`), both seeded through egovmon's own TSDB writers (InfluxV1Writer on
`/write`, InfluxV2Writer on VictoriaMetrics' `/api/v2/write`) with the line protocol the
server's ingest makes of real collector output (tests/dashboards/seed.py). The queries
are taken from the built dashboard JSON, so what is tested is what Grafana gets.

Grafana itself cannot be installed here (not in Debian, not on PyPI), so the test
expands Grafana's macros and variables as Grafana does: `$timeFilter` → the last hour,
`$__interval` → 1m, `$__range` → 1h, `$__rate_interval` → 75s (max(interval + scrape
interval, 4 × scrape interval) with the datasource's 15 s scrape interval), a variable
set to All → `.*`, one value → that value. Grafana's `label_values(selector, label)` is
asked as Grafana asks it: `/api/v1/label/<label>/values?match[]=selector`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dashboards.build import build_dashboard
from dashboards.panels import DASHBOARDS
from server.history.influx1 import InfluxV1Writer
from server.history.influx2 import InfluxV2Writer
from server.settings import TsdbSettings
from tests.dashboards import seed
from tests.services import require_program, start_victoriametrics, wait_until

DATABASE = "dashboards_test"
ALL = ".*"
BUILTINS = {"timeFilter", "__interval", "__rate_interval", "__range", "tag_", "col"}
ALL_VALUES = {"agency": [seed.OTHER_AGENCY, seed.AGENCY], "site": [seed.OTHER_SITE, seed.SITE],
              "host": [seed.OTHER_HOST, seed.HOST], "device": ["core-1"]}  # fmt: skip


def _dashboards(flavour: str) -> list[dict[str, Any]]:
    return [build_dashboard(spec, "zh", flavour) for spec in DASHBOARDS]


def _panels(flavour: str) -> list[tuple[str, dict[str, Any]]]:
    return [(d["uid"], p) for d in _dashboards(flavour) for p in d["panels"]]


# Servers --------------------------------------------------------------------------------------------


class Influx:
    """The session's InfluxDB 1.x with this module's own database (other tests write to `egovmon`)."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def query(self, q: str, variables: dict[str, str]) -> list[dict[str, Any]]:
        q = q.replace("$timeFilter", "time > now() - 1h").replace("$__interval", "1m")
        q = re.sub(r"/\^\$(\w+)\$/", lambda m: f"/^{variables.get(m.group(1), ALL)}$/", q)
        assert not re.search(r"\$\w", q), q  # every Grafana macro and variable expanded
        return [s for r in self.server.query(q, database=DATABASE)["results"] for s in r.get("series", [])]


class Victoria:
    """A VictoriaMetrics of this module's own: the session's one receives other tests' agencies and hosts."""

    def __init__(self, server: Any) -> None:
        self.server = server

    @staticmethod
    def expand(q: str, variables: dict[str, str]) -> str:
        q = q.replace("$__rate_interval", "75s").replace("$__interval", "1m").replace("$__range", "1h")
        q = re.sub(r'"\$(\w+)"', lambda m: f'"{variables.get(m.group(1), ALL)}"', q)
        assert not re.search(r"\$\w", q), q
        return q

    def query(self, q: str, variables: dict[str, str], *, instant: bool) -> list[dict[str, Any]]:
        now = time.time()
        params = {"query": self.expand(q, variables)}
        params.update({"time": str(now)} if instant else {"start": str(now - 3600), "end": str(now), "step": "60"})
        response = httpx.get(f"{self.server.url}/api/v1/{'query' if instant else 'query_range'}", params=params, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (q, body)
        return list(body["data"]["result"])

    def label_values(self, q: str, variables: dict[str, str]) -> list[str]:
        match = re.fullmatch(r"label_values\((.+), (\w+)\)", q)
        assert match, q
        now = time.time()
        response = httpx.get(f"{self.server.url}/api/v1/label/{match.group(2)}/values", timeout=10,
                             params={"match[]": self.expand(match.group(1), variables), "start": str(now - 3600), "end": str(now)})
        response.raise_for_status()
        return list(response.json()["data"])


@pytest.fixture(scope="module")
def seeded_at() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@pytest.fixture(scope="module")
def batches(seeded_at) -> list[Any]:
    """One seed for both servers, so that both flavours can be compared value for value."""
    return seed.batches(seeded_at)


@pytest.fixture(scope="module")
def influx(influxdb1, batches) -> Influx:
    influxdb1.query(f"DROP DATABASE {DATABASE}", method="POST")
    influxdb1.query(f"CREATE DATABASE {DATABASE}", method="POST")
    writer = InfluxV1Writer(TsdbSettings(kind="influxdb1", url=influxdb1.url, database=DATABASE))
    for batch in batches:
        writer.write(batch)
    writer.close()
    return Influx(influxdb1)


@pytest.fixture(scope="module")
def victoria(tmp_path_factory, batches) -> Iterator[Victoria]:
    require_program("victoria-metrics")  # skipped when missing, failed when CI=true
    server = start_victoriametrics(tmp_path_factory.mktemp("dashboards-vm"))
    try:
        writer = InfluxV2Writer(TsdbSettings(kind="influxdb2", url=server.url))
        for batch in batches:
            writer.write(batch)
        writer.close()
        server.force_flush()
        wait_until(lambda: server.export('{__name__="egovmon_finding_events_finding_id"}'), 10, "VictoriaMetrics to show the seed")
        yield Victoria(server)
    finally:
        server.stop()


# Normalised results: {(legend tag values, column index): last value} ----------------------------------


def _influx_result(series: list[dict[str, Any]], legend: list[str]) -> dict[tuple[tuple[str, ...], int], float]:
    out = {}
    for s in series:
        tags = s.get("tags") or {}
        assert set(legend) <= set(tags), (legend, tags)
        for column in range(1, len(s["columns"])):
            values = [row[column] for row in s["values"] if row[column] is not None]
            if values:
                out[(tuple(tags[t] for t in legend), column - 1)] = float(values[-1])
    return out


def _prom_result(results: list[list[dict[str, Any]]], legend: list[str]) -> dict[tuple[tuple[str, ...], int], float]:
    out = {}
    for index, series_list in enumerate(results):
        for s in series_list:
            assert set(legend) <= set(s["metric"]), (legend, s["metric"])
            value = s["value"][1] if "value" in s else s["values"][-1][1]
            out[(tuple(s["metric"][t] for t in legend), index)] = float(value)
    return out


def _legend(panel: dict[str, Any]) -> list[str]:
    """The legend tags of a panel, read back from its JSON (`$tag_host` for InfluxQL, `{{host}}` for PromQL)."""
    target = panel["targets"][0]
    text = target.get("alias", "") if "query" in target else target["legendFormat"]
    return [a or b for a, b in re.findall(r"\$tag_(\w+)|\{\{(\w+)\}\}", text)]


def run_influx(influx: Influx, panel: dict[str, Any], variables: dict[str, str]) -> dict[tuple[tuple[str, ...], int], float]:
    (target,) = panel["targets"]  # InfluxQL: one statement per panel, its columns the targets
    return _influx_result(influx.query(target["query"], variables), _legend(panel))


def run_prom(victoria: Victoria, panel: dict[str, Any], variables: dict[str, str]) -> dict[tuple[tuple[str, ...], int], float]:
    results = [victoria.query(t["expr"], variables, instant=t["instant"]) for t in panel["targets"]]
    return _prom_result(results, _legend(panel))


# Panels -----------------------------------------------------------------------------------------------

INFLUX_PANELS = _panels("influxql")
PROM_PANELS = _panels("promql")


@pytest.mark.parametrize(("uid", "panel"), INFLUX_PANELS, ids=[f"{u}:{p['title']}" for u, p in INFLUX_PANELS])
def test_every_influxql_panel_returns_series_with_its_legend_tags(influx, uid, panel):
    result = run_influx(influx, panel, {})
    assert result, f"{uid}: {panel['title']} returned nothing"


@pytest.mark.parametrize(("uid", "panel"), PROM_PANELS, ids=[f"{u}:{p['title']}" for u, p in PROM_PANELS])
def test_every_promql_panel_returns_series_with_its_legend_tags(victoria, uid, panel):
    result = run_prom(victoria, panel, {})
    assert result, f"{uid}: {panel['title']} returned nothing"
    assert {column for _, column in result} == set(range(len(panel["targets"])))  # every target answered


PAIRS = [(i[0], i[1], p[1]) for i, p in zip(INFLUX_PANELS, PROM_PANELS, strict=True)]


@pytest.mark.parametrize(("uid", "influx_panel", "prom_panel"), PAIRS, ids=[f"{u}:{p['title']}" for u, p, _ in PAIRS])
def test_both_flavours_show_the_same_series(influx, victoria, uid, influx_panel, prom_panel):
    """One declaration, two languages: the same legend groups; tables and stats (last values, counts) the same values."""
    a, b = run_influx(influx, influx_panel, {}), run_prom(victoria, prom_panel, {})
    assert sorted(a) == sorted(b), (uid, influx_panel["title"])
    if influx_panel["type"] != "timeseries":
        assert a == pytest.approx(b), (uid, influx_panel["title"])


# Variables and annotations -------------------------------------------------------------------------------


def _variables(flavour: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for d in _dashboards(flavour):
        for v in d["templating"]["list"]:
            seen[v["name"]] = v["query"]
    return sorted(seen.items())


@pytest.mark.parametrize(("name", "query"), _variables("influxql"))
def test_every_influxql_variable_returns_the_seeded_values(influx, name, query):
    values = [row[1] for s in influx.query(query, {}) for row in s["values"]]
    assert sorted(values) == ALL_VALUES[name]


@pytest.mark.parametrize(("name", "query"), _variables("promql"))
def test_every_promql_variable_returns_the_seeded_values(victoria, name, query):
    assert sorted(victoria.label_values(query, {})) == ALL_VALUES[name]


def _annotations(flavour: str) -> list[dict[str, Any]]:
    return [a for a in _dashboards(flavour)[0]["annotations"]["list"] if "datasource" in a and a["datasource"]["uid"].startswith("egovmon")]


@pytest.mark.parametrize("annotation", _annotations("influxql"), ids=lambda a: a["name"])
def test_influxql_annotations_return_text_and_tags(influx, annotation):
    series = influx.query(annotation["query"], {})
    rows = [dict(zip(s["columns"], values, strict=True)) for s in series for values in s["values"]]
    assert len(rows) == 1 and rows[0][annotation["textColumn"]]
    assert all(rows[0][column] for column in annotation["tagsColumn"].split(","))


@pytest.mark.parametrize("annotation", _annotations("promql"), ids=lambda a: a["name"])
def test_promql_annotations_return_one_event_with_title_and_tags(victoria, annotation):
    series = victoria.query(annotation["expr"], {}, instant=False)
    assert len(series) == 1
    labels = series[0]["metric"]
    wanted = re.findall(r"\{\{(\w+)\}\}", annotation["titleFormat"] + annotation["textFormat"]) + annotation["tagKeys"].split(",")
    assert all(labels.get(label) for label in wanted), labels
    values = [float(v) for _, v in series[0]["values"]]
    assert values == [1.0]  # one step: Grafana marks the steps valued 1, so the event shows once


# The agency dashboard (issue 15: `$site` was used but not defined) -------------------------------------------


@pytest.mark.parametrize("flavour", ["influxql", "promql"])
def test_every_variable_a_dashboard_uses_is_defined_in_it(flavour):
    for data in _dashboards(flavour):
        defined = {v["name"] for v in data["templating"]["list"]}
        text = str([data["panels"], data["templating"], data["annotations"]])
        used = set(re.findall(r"\$\{?(\w+)", text)) - BUILTINS
        used = {u for u in used if not u.startswith("tag_")}
        assert used <= defined, (data["uid"], used - defined)


AGENCY_VIEW = {"influxql": next(d for d in _dashboards("influxql") if d["uid"] == "egovmon-agency"),
               "promql": next(d for d in _dashboards("promql") if d["uid"] == "egovmon-agency-vm")}  # fmt: skip


def test_agency_dashboard_returns_data_for_one_seeded_agency(influx, victoria):
    """With agency=health (site and host All, as Grafana starts), every panel shows health's host and nothing of edu."""
    chosen = {"agency": seed.AGENCY}
    variables = {v["name"]: v["query"] for v in AGENCY_VIEW["influxql"]["templating"]["list"]}
    assert [row[1] for s in influx.query(variables["host"], chosen) for row in s["values"]] == [seed.HOST]
    assert [row[1] for s in influx.query(variables["site"], chosen) for row in s["values"]] == [seed.SITE]
    prom_variables = {v["name"]: v["query"] for v in AGENCY_VIEW["promql"]["templating"]["list"]}
    assert victoria.label_values(prom_variables["host"], chosen) == [seed.HOST]
    assert victoria.label_values(prom_variables["site"], chosen) == [seed.SITE]
    for influx_panel, prom_panel in zip(AGENCY_VIEW["influxql"]["panels"], AGENCY_VIEW["promql"]["panels"], strict=True):
        for result in (run_influx(influx, influx_panel, chosen), run_prom(victoria, prom_panel, chosen)):
            assert result, influx_panel["title"]
            hosts = {key[0][_legend(influx_panel).index("host")] for key in result}
            assert hosts == {seed.HOST}, (influx_panel["title"], hosts)
    other = run_prom(victoria, AGENCY_VIEW["promql"]["panels"][0], {"agency": seed.OTHER_AGENCY})
    assert {key[0][0] for key in other} == {seed.OTHER_HOST}
