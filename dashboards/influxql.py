"""A typed InfluxQL query for Grafana panels, the piece grafana-foundation-sdk does not have.

The SDK types panels, variables and dashboards, but has no InfluxDB dataquery;
`InfluxQL` is one, following Grafana's InfluxDB datasource query model for raw
InfluxQL (`refId`, `query`, `rawQuery: true`, `resultFormat`, `alias`).
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.models import dashboard

DATASOURCE_UID = "egovmon-influxdb"
DATASOURCE = dashboard.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)


class InfluxQLQuery(variants.Dataquery):
    def __init__(self, ref_id: str, query: str, *, result_format: str = "time_series", alias: str = "") -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.ref_id, "query": self.query, "rawQuery": True, "resultFormat": self.result_format,
            "datasource": {"type": "influxdb", "uid": DATASOURCE_UID},
        }  # fmt: skip
        if self.alias:
            out["alias"] = self.alias
        return out


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of an `InfluxQLQuery`, for `panel.with_target(...)`."""

    def __init__(self, query: str, *, ref_id: str = "A", result_format: str = "time_series", alias: str = "") -> None:
        self._query = InfluxQLQuery(ref_id, query, result_format=result_format, alias=alias)

    def build(self) -> InfluxQLQuery:
        return self._query
