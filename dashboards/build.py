"""Dashboards as code in two flavours from one declaration: Grafana JSON, provisioning files, import files, and
idempotent provisioning through the Grafana HTTP API with grafana-client.

`influxql` dashboards query InfluxDB (1.x; 2.x/3.x through the InfluxQL endpoint) with an
`influxdb` datasource; `promql` dashboards query VictoriaMetrics (or another
Prometheus-compatible store) with a `prometheus` datasource. Both come from
`dashboards.panels`. The `influxql` flavour keeps the uids, folders and titles egovmon
always had; the `promql` one adds `-vm` to uids and "(VictoriaMetrics)" to folder titles,
so both can live in one Grafana.

The SDK's builders type the dashboards (checked against its models by
`Dashboard.from_json` in the tests); its JSON encoder writes `{}` for empty
`templating`/`annotations`, which Grafana wants as `{"list": []}`, so `to_json`
normalises them. Uids are stable (`-en` for English), so a second push overwrites.

Three kinds of file: provisioned dashboards (datasource by fixed uid, for Grafana's file
provider, which needs absolute paths), import files (`__inputs`, so Grafana's UI import
asks for the datasource), and provisioning YAML (written as JSON, which is YAML) with the
datasource, whose secrets are Grafana environment references (`$EGOVMON_TSDB_PASSWORD`),
never the secret itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.dashboard import VariableRefresh

from core.jsontypes import JsonObject, JsonValue
from dashboards import influxql, promql
from dashboards.model import AnnotationSpec, DashboardSpec, PanelSpec
from dashboards.panels import ANNOTATIONS, DASHBOARDS, FOLDERS, VARIABLES

PanelBuilder = timeseries.Panel | stat.Panel | table.Panel
PANEL_BUILDERS: dict[str, type[PanelBuilder]] = {"timeseries": timeseries.Panel, "stat": stat.Panel, "table": table.Panel}
FlavourName = Literal["influxql", "promql"]
PASSWORD_ENV = "EGOVMON_TSDB_PASSWORD"
TOKEN_ENV = "EGOVMON_TSDB_TOKEN"


@dataclass(frozen=True, slots=True)
class Flavour:
    """One query language and the Grafana datasource that speaks it."""

    name: FlavourName
    datasource_type: str
    datasource_uid: str
    datasource_name: str
    plugin_name: str
    uid_suffix: str
    folder_suffix: tuple[str, str]  # zh, en
    default_url: str


FLAVOURS: dict[str, Flavour] = {
    "influxql": Flavour("influxql", "influxdb", "egovmon-influxdb", "egovmon InfluxDB", "InfluxDB", "", ("", ""),
                        "http://127.0.0.1:8086"),
    "promql": Flavour("promql", "prometheus", "egovmon-victoriametrics", "egovmon VictoriaMetrics", "Prometheus", "-vm",
                      ("（VictoriaMetrics）", " (VictoriaMetrics)"), "http://127.0.0.1:8428"),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DatasourceAuth:
    """How Grafana authenticates to the TSDB: a user and password (InfluxDB 1.x users, HTTP basic auth of
    VictoriaMetrics/vmauth) or a token (InfluxDB 2.x/3.x: `Authorization: Token ...`; Bearer for promql)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None


def _text(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


def dashboard_uid(spec: DashboardSpec, lang: str, flavour: Flavour) -> str:
    return spec.uid + flavour.uid_suffix + ("" if lang == "zh" else "-en")


def folder_uid(folder: str, flavour: Flavour | None = None) -> str:
    return f"egovmon-{folder}" + (flavour.uid_suffix if flavour else "")


def folder_title(folder: str, lang: str, flavour: Flavour) -> str:
    zh, en = FOLDERS[folder]
    return _text(lang, zh + flavour.folder_suffix[0], en + flavour.folder_suffix[1])


def _panel(spec: PanelSpec, lang: str, flavour: Flavour) -> PanelBuilder:
    builder = PANEL_BUILDERS[spec.kind]()
    ref = models.DataSourceRef(type_val=flavour.datasource_type, uid=flavour.datasource_uid)
    builder.title(_text(lang, spec.title_zh, spec.title_en)).datasource(ref).height(8).span(12)
    if flavour.name == "influxql":
        alias = " ".join(f"$tag_{tag}" for tag in spec.legend)
        builder.with_target(influxql.InfluxQL(influxql.render_panel(spec, lang), datasource_uid=flavour.datasource_uid,
                                              result_format="table" if spec.kind == "table" else "time_series", alias=alias))
    else:
        rendered = promql.render_panel(spec, lang)
        for index, (expr, legend) in enumerate(rendered):
            builder.with_target(promql.PromQL(expr, datasource_uid=flavour.datasource_uid, ref_id=chr(ord("A") + index),
                                              legend=legend, instant=spec.kind != "timeseries"))
        if spec.kind == "table" and len(rendered) > 1:  # one instant query per column: join them into one table
            builder.with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
    if spec.unit:
        builder.unit(spec.unit)
    return builder


def _annotation(a: AnnotationSpec, lang: str, flavour: Flavour) -> JsonObject:
    common: JsonObject = {"name": _text(lang, a.name_zh, a.name_en), "enable": True, "iconColor": a.color,
              "datasource": {"type": flavour.datasource_type, "uid": flavour.datasource_uid}}  # fmt: skip
    if flavour.name == "influxql":
        return {**common, "query": influxql.render_annotation(a), "textColumn": a.text_field, "tagsColumn": ",".join(a.tags)}
    others = [t for t in (*a.scope, *a.tags) if t != a.title_tag]
    return {**common, "expr": promql.render_annotation(a), "step": promql.ANNOTATION_STEP, "titleFormat": f"{{{{{a.title_tag}}}}}",
            "textFormat": " ".join(f"{{{{{t}}}}}" for t in others), "tagKeys": ",".join(a.tags), "useValueForTime": False}


def build_dashboard(spec: DashboardSpec, lang: str = "zh", flavour: str = "influxql") -> JsonObject:
    """One dashboard as Grafana JSON, its queries in the flavour's language, for provisioning (datasource by uid)."""
    fl = FLAVOURS[flavour]
    ref = models.DataSourceRef(type_val=fl.datasource_type, uid=fl.datasource_uid)
    builder = (
        dash.Dashboard(_text(lang, spec.title_zh, spec.title_en))
        .uid(dashboard_uid(spec, lang, fl))
        .tags(["egovmon", spec.folder, fl.name])
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
    )
    for name in spec.variables:
        variable = VARIABLES[name]
        query = influxql.render_variable(variable) if fl.name == "influxql" else promql.render_variable(variable)
        builder.with_variable(
            dash.QueryVariable(variable.name).label(_text(lang, variable.label_zh, variable.label_en))
            .query(query).datasource(ref).multi(True).include_all(True)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        )  # fmt: skip
    for panel in spec.panels:
        builder.with_panel(_panel(panel, lang, fl))
    data = to_json(builder.build())
    if spec.annotations:
        # The SDK's AnnotationQuery has no field for a datasource query: annotations are added as Grafana stores them.
        _append_annotations(data, [_annotation(a, lang, fl) for a in ANNOTATIONS])
    return data


def _append_annotations(data: JsonObject, added: list[JsonObject]) -> None:
    """Add `added` at the end of the dashboard's `annotations.list` (which `to_json` guarantees)."""
    annotations = data["annotations"]
    assert isinstance(annotations, dict) and isinstance(annotations["list"], list)  # to_json's {"list": [...]}
    annotations["list"] += added


def for_import(data: JsonObject, flavour: str) -> JsonObject:
    """The dashboard as Grafana exports it for sharing: `__inputs` names the datasource, every reference is `${DS_...}`."""
    fl = FLAVOURS[flavour]
    placeholder = "DS_" + fl.datasource_uid.upper().replace("-", "_")

    def swap_object(node: JsonObject) -> JsonObject:
        if node.get("uid") == fl.datasource_uid and node.get("type") == fl.datasource_type:
            return {**node, "uid": f"${{{placeholder}}}"}
        return {k: swap(v) for k, v in node.items()}

    def swap(node: JsonValue) -> JsonValue:
        if isinstance(node, dict):
            return swap_object(node)
        if isinstance(node, list):
            return [swap(v) for v in node]
        return node

    out = swap_object(data)
    out.pop("id", None)
    return {
        "__inputs": [{"name": placeholder, "label": fl.datasource_name, "description": "", "type": "datasource",
                      "pluginId": fl.datasource_type, "pluginName": fl.plugin_name}],
        "__requires": [{"type": "datasource", "id": fl.datasource_type, "name": fl.plugin_name, "version": "1.0.0"},
                       {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"}],
        **out,
    }  # fmt: skip


def to_json(model: object) -> JsonObject:
    """A grafana-foundation-sdk model as Grafana JSON, with empty `templating` and `annotations` as `{"list": []}`."""
    data: JsonObject = json.loads(JSONEncoder(sort_keys=True).encode(model))
    for key in ("templating", "annotations"):
        if not data.get(key):
            data[key] = {"list": []}
    return data


def datasource_model(flavour: str, url: str, database: str = "egovmon", auth: DatasourceAuth | None = None) -> JsonObject:
    """Grafana's datasource definition (provisioning file or `POST /api/datasources`), with auth fields when given."""
    fl = FLAVOURS[flavour]
    auth = auth or DatasourceAuth()
    model: JsonObject = {"name": fl.datasource_name, "uid": fl.datasource_uid, "type": fl.datasource_type, "access": "proxy",
                             "url": url}  # fmt: skip
    secure: JsonObject = {}
    json_data: JsonObject
    if fl.name == "influxql":
        json_data = {"dbName": database, "httpMode": "GET", "version": "InfluxQL"}
        if auth.user:
            model["user"] = auth.user
            secure["password"] = auth.password or ""
    else:
        json_data = {"httpMethod": "POST", "timeInterval": "15s"}  # agents report every 15 s
        if auth.user:
            model.update(basicAuth=True, basicAuthUser=auth.user)
            secure["basicAuthPassword"] = auth.password or ""
    model["jsonData"] = json_data
    if auth.token:
        json_data["httpHeaderName1"] = "Authorization"
        secure["httpHeaderValue1"] = ("Token " if fl.name == "influxql" else "Bearer ") + auth.token
    if secure:
        model["secureJsonData"] = secure
    return model


def _json_file(path: Path, content: JsonValue) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def write(
    out: Path, *, lang: str = "zh", flavours: tuple[str, ...] = ("influxql",), urls: dict[str, str] | None = None,
    database: str = "egovmon", grafana_path: PurePosixPath | None = None, auth: DatasourceAuth | None = None,
) -> list[Path]:
    """Dashboard JSON per folder, import files and provisioning YAML for each flavour; the written paths.

    One flavour writes into `out` (as before: `out/dashboards/<folder>/`, `out/provisioning/`);
    several write each into `out/<flavour>/`. Provider paths are absolute: `grafana_path`
    (where Grafana will see `out`, when built elsewhere) or `out` resolved. A user or
    token in `auth` goes into the file as a Grafana environment reference
    (`$EGOVMON_TSDB_PASSWORD`, `$EGOVMON_TSDB_TOKEN`) for Grafana to fill in.

    Raises:
        ValueError: `grafana_path` is not absolute, or a flavour is unknown.
    """
    _check_write_args(flavours, grafana_path)
    file_auth = _file_auth(auth or DatasourceAuth())
    root = grafana_path if grafana_path is not None else PurePosixPath(out.resolve().as_posix())
    written = []
    for name in flavours:
        sub = name if len(flavours) > 1 else ""  # `path / ""` is `path`
        url = (urls or {}).get(name) or FLAVOURS[name].default_url
        written += _write_flavour(FLAVOURS[name], out / sub, root / sub, lang=lang, url=url, database=database, auth=file_auth)
    return written


def _file_auth(auth: DatasourceAuth) -> DatasourceAuth:
    """`auth` as a provisioning file holds it: the user, and Grafana environment references for the secrets."""
    return DatasourceAuth(user=auth.user, password=f"${PASSWORD_ENV}" if auth.user else None,
                          token=f"${TOKEN_ENV}" if auth.token else None)  # fmt: skip


def _check_write_args(flavours: tuple[str, ...], grafana_path: PurePosixPath | None) -> None:
    """Raises ValueError: `grafana_path` is not absolute, or a flavour is unknown (or none is given)."""
    if grafana_path is not None and not grafana_path.is_absolute():
        raise ValueError(f"--grafana-path must be absolute, not {grafana_path}")
    unknown = [f for f in flavours if f not in FLAVOURS]
    if unknown or not flavours:
        raise ValueError(f"unknown flavour {unknown}; use {', '.join(FLAVOURS)}")


def _write_flavour(fl: Flavour, base: Path, root: PurePosixPath, *, lang: str, url: str, database: str,
                   auth: DatasourceAuth) -> list[Path]:  # fmt: skip
    """One flavour's dashboards (provisioned and import files) under `base`, and its provisioning files whose
    provider paths start at `root` (where Grafana sees `base`)."""
    written = []
    for spec in DASHBOARDS:
        data = build_dashboard(spec, lang, fl.name)
        written.append(_json_file(base / "dashboards" / spec.folder / f"{data['uid']}.json", data))
        written.append(_json_file(base / "import" / f"{data['uid']}.json", for_import(data, fl.name)))
    providers: JsonObject = {"apiVersion": 1, "providers": [
        {"name": folder_uid(folder, fl), "folder": folder_title(folder, lang, fl), "folderUid": folder_uid(folder, fl),
         "type": "file", "disableDeletion": False, "allowUiUpdates": False,
         "options": {"path": str(root / "dashboards" / folder)}}
        for folder in sorted({s.folder for s in DASHBOARDS})
    ]}  # fmt: skip
    datasources: JsonObject = {"apiVersion": 1, "datasources": [datasource_model(fl.name, url, database, auth)]}
    written.append(_json_file(base / "provisioning" / "dashboards.yaml", providers))  # JSON is valid YAML
    written.append(_json_file(base / "provisioning" / "datasources.yaml", datasources))
    return written


class _Datasources(Protocol):
    def get_datasource_by_uid(self, datasource_uid: str, /) -> object: ...
    def update_datasource_by_uid(self, datasource_uid: str, datasource: JsonObject, /) -> object: ...
    def create_datasource(self, datasource: JsonObject, /) -> object: ...


class _Folders(Protocol):
    def get_folder(self, uid: str, /) -> object: ...
    def create_folder(self, title: str, uid: str | None = None) -> object: ...


class _Dashboards(Protocol):
    def update_dashboard(self, dashboard: JsonObject, /) -> object: ...


class GrafanaProvisioning(Protocol):
    """The part of `grafana_client.GrafanaApi` that `push` calls (grafana-client's methods are not annotated)."""

    @property
    def datasource(self) -> _Datasources: ...
    @property
    def folder(self) -> _Folders: ...
    @property
    def dashboard(self) -> _Dashboards: ...


def push(
    api: GrafanaProvisioning, *, url: str, flavour: str = "influxql", lang: str = "zh", database: str = "egovmon", auth: DatasourceAuth | None = None,
) -> dict[str, int]:
    """Provision through a `grafana_client.GrafanaApi`: the datasource, folders and dashboards; safe to repeat.

    Raises:
        grafana_client.client.GrafanaException: Grafana refused a call (other than a 404 looked for);
        requests.exceptions.ConnectionError: Grafana cannot be reached.
    """
    from grafana_client.client import GrafanaClientError  # noqa: PLC0415 - grafana-client (server extra) only when provisioning

    fl = FLAVOURS[flavour]
    counts = {"datasources_created": 0, "datasources_updated": 0, "folders_created": 0, "dashboards": 0}
    model = datasource_model(flavour, url, database, auth)
    try:
        api.datasource.get_datasource_by_uid(fl.datasource_uid)
        api.datasource.update_datasource_by_uid(fl.datasource_uid, model)
        counts["datasources_updated"] += 1
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.datasource.create_datasource(model)
        counts["datasources_created"] += 1
    for folder in sorted({s.folder for s in DASHBOARDS}):
        try:
            api.folder.get_folder(folder_uid(folder, fl))
        except GrafanaClientError as exc:
            if exc.status_code != 404:
                raise
            api.folder.create_folder(folder_title(folder, lang, fl), uid=folder_uid(folder, fl))
            counts["folders_created"] += 1
    for spec in DASHBOARDS:
        api.dashboard.update_dashboard({"dashboard": build_dashboard(spec, lang, flavour), "folderUid": folder_uid(spec.folder, fl),
                                        "overwrite": True, "message": "egovmon dashboards push"})  # fmt: skip
        counts["dashboards"] += 1
    return counts
