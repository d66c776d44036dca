"""The influxql datasource's auth fields open a real InfluxDB 1.6 that has authentication on.

Grafana cannot run here (not in Debian, not on PyPI), so the test sends what Grafana's
InfluxDB datasource sends for a user and password in InfluxQL mode: the `u` and `p`
parameters of `/query` (InfluxDB 1.x also takes basic auth; it answers 401 to neither).
The database is seeded through egovmon's own InfluxV1Writer with the same credentials.
VictoriaMetrics with basic auth is not tested end to end: egovmon's v2 writer sends a
token, which VictoriaMetrics' `-httpAuth.*` does not accept, so it cannot be seeded that way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import SecretStr

from dashboards.build import DatasourceAuth, build_dashboard, datasource_model
from dashboards.panels import DASHBOARDS
from server.history.influx1 import InfluxV1Writer
from server.settings import TsdbSettings
from tests.dashboards import seed
from tests.services import require_program, start_influxdb1

PASSWORD = "dashboards-auth-Wq7"


def test_influxql_datasource_user_and_password_read_the_agency_view(tmp_path):
    require_program("influxd")  # skipped when missing, failed when CI=true
    server = start_influxdb1(tmp_path, username="grafana", password=PASSWORD)
    try:
        writer = InfluxV1Writer(TsdbSettings(kind="influxdb1", url=server.url, username="grafana", password=SecretStr(PASSWORD)))
        for batch in seed.batches(datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)):
            writer.write(batch)
        writer.close()
        model = datasource_model("influxql", server.url, "egovmon", DatasourceAuth(user="grafana", password=PASSWORD))
        agency = build_dashboard(next(d for d in DASHBOARDS if d.uid == "egovmon-agency"), "zh", "influxql")
        query = agency["panels"][-1]["targets"][0]["query"]  # this agency's backups
        query = re.sub(r"/\^\$(\w+)\$/", lambda m: "/^health$/" if m.group(1) == "agency" else "/.*/", query)
        query = query.replace("$timeFilter", "time > now() - 1h")
        params = {"db": model["jsonData"]["dbName"], "q": query, "epoch": "ms"}
        anonymous = httpx.get(f"{model['url']}/query", params=params, timeout=10)
        assert anonymous.status_code == 401
        signed = httpx.get(f"{model['url']}/query", timeout=10,
                           params={**params, "u": model["user"], "p": model["secureJsonData"]["password"]})  # fmt: skip
        assert signed.status_code == 200
        (series,) = signed.json()["results"][0]["series"]
        assert series["tags"] == {"host": seed.HOST, "job": "his-db"} and series["values"][0][1] == 1
    finally:
        server.stop()
