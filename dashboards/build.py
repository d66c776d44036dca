"""Dashboards as code: the specs of `dashboards.panels` built with grafana-foundation-sdk, provisioning files,
and idempotent provisioning through the Grafana HTTP API with grafana-client.

The SDK's builders type the dashboards (checked against its models by
`Dashboard.from_json` in the tests); its JSON encoder writes `{}` for empty
`templating`/`annotations`, which Grafana wants as `{"list": []}`, so `to_json`
normalises them. Uids are stable (the spec's uid, `-en` for English), so a
second push overwrites instead of duplicating.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import VariableRefresh

from dashboards.influxql import DATASOURCE, DATASOURCE_UID, InfluxQL
from dashboards.panels import ANNOTATIONS, DASHBOARDS, FOLDERS, VARIABLES, DashboardSpec, PanelSpec

PANEL_BUILDERS = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}


def _panel(spec: PanelSpec, lang: str) -> Any:
    builder = PANEL_BUILDERS[spec.kind]()
    builder.title(spec.title_zh if lang == "zh" else spec.title_en).datasource(DATASOURCE).height(8).span(12)
    alias = " ".join(f"$tag_{tag}" for tag in spec.legend)
    builder.with_target(InfluxQL(spec.query, result_format="table" if spec.kind == "table" else "time_series", alias=alias))
    if spec.unit:
        builder.unit(spec.unit)
    return builder


def build_dashboard(spec: DashboardSpec, lang: str = "zh") -> dict[str, Any]:
    """One dashboard as Grafana JSON."""
    builder = (
        dash.Dashboard(spec.title_zh if lang == "zh" else spec.title_en)
        .uid(spec.uid if lang == "zh" else f"{spec.uid}-en")
        .tags(["egovmon", spec.folder])
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
    )
    for name in spec.variables:
        variable = VARIABLES[name]
        builder.with_variable(
            dash.QueryVariable(variable.name).label(variable.label_zh if lang == "zh" else variable.label_en)
            .query(variable.query).datasource(DATASOURCE).multi(True).include_all(True)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )  # fmt: skip
    for panel in spec.panels:
        builder.with_panel(_panel(panel, lang))
    data = to_json(builder.build())
    if spec.annotations:
        # The SDK's AnnotationQuery has no field for a datasource query: InfluxDB annotations are added as Grafana stores them.
        data["annotations"]["list"] += [
            {"name": a.name_zh if lang == "zh" else a.name_en, "datasource": {"type": "influxdb", "uid": DATASOURCE_UID},
             "enable": True, "iconColor": a.color, "query": a.query, "textColumn": "text", "tagsColumn": a.tags_column}
            for a in ANNOTATIONS
        ]  # fmt: skip
    return data


def to_json(model: Any) -> dict[str, Any]:
    data = json.loads(JSONEncoder(sort_keys=True).encode(model))
    for key in ("templating", "annotations"):
        if not data.get(key):
            data[key] = {"list": []}
    return data


def folder_uid(folder: str) -> str:
    return f"egovmon-{folder}"


def write(out: Path, *, lang: str = "zh", influx_url: str = "http://127.0.0.1:8086", database: str = "egovmon") -> list[Path]:
    """Dashboard JSON per folder plus Grafana provisioning files (datasource and dashboard providers)."""
    written = []
    for spec in DASHBOARDS:
        path = out / "dashboards" / spec.folder / f"{spec.uid}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(build_dashboard(spec, lang), ensure_ascii=False, indent=2), encoding="utf-8")
        written.append(path)
    providers = {"apiVersion": 1, "providers": [
        {"name": f"egovmon-{folder}", "folder": FOLDERS[folder][0 if lang == "zh" else 1], "folderUid": folder_uid(folder),
         "type": "file", "disableDeletion": False, "allowUiUpdates": False, "options": {"path": str(out / "dashboards" / folder)}}
        for folder in sorted({s.folder for s in DASHBOARDS})
    ]}  # fmt: skip
    datasource = {"apiVersion": 1, "datasources": [datasource_model(influx_url, database)]}
    for name, content in (("dashboards.yaml", providers), ("datasources.yaml", datasource)):
        path = out / "provisioning" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")  # JSON is valid YAML
        written.append(path)
    return written


def datasource_model(influx_url: str, database: str) -> dict[str, Any]:
    return {"name": "egovmon InfluxDB", "uid": DATASOURCE_UID, "type": "influxdb", "access": "proxy", "url": influx_url,
            "jsonData": {"dbName": database, "httpMode": "GET", "version": "InfluxQL"}}  # fmt: skip


def push(api: Any, *, lang: str = "zh", influx_url: str, database: str = "egovmon") -> dict[str, int]:
    """Provision through a `grafana_client.GrafanaApi`: the datasource, folders and dashboards; safe to repeat."""
    from grafana_client.client import GrafanaClientError  # noqa: PLC0415

    counts = {"datasources_created": 0, "datasources_updated": 0, "folders_created": 0, "dashboards": 0}
    model = datasource_model(influx_url, database)
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, model)
        counts["datasources_updated"] += 1
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.datasource.create_datasource(model)
        counts["datasources_created"] += 1
    for folder in sorted({s.folder for s in DASHBOARDS}):
        try:
            api.folder.get_folder(folder_uid(folder))
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(FOLDERS[folder][0 if lang == "zh" else 1], uid=folder_uid(folder))
            counts["folders_created"] += 1
    for spec in DASHBOARDS:
        api.dashboard.update_dashboard({"dashboard": build_dashboard(spec, lang), "folderUid": folder_uid(spec.folder),
                                        "overwrite": True, "message": "egovmon dashboards push"})  # fmt: skip
        counts["dashboards"] += 1
    return counts
