"""`egovmon dashboards build --out DIR` (dashboard JSON + Grafana provisioning files) and
`egovmon dashboards push --url URL --token T` (through the Grafana HTTP API, idempotent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

dashboards_app = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)
Lang = Annotated[str, typer.Option("--lang", help="zh (default) or en")]


@dashboards_app.command("build")
def build(out: Annotated[Path, typer.Option("--out", help="Directory to write into")], lang: Lang = "zh",
          influx_url: Annotated[str, typer.Option(help="The InfluxDB the datasource points at")] = "http://127.0.0.1:8086",
          database: str = "egovmon") -> None:
    from dashboards.build import write

    for path in write(out, lang=lang, influx_url=influx_url, database=database):
        typer.echo(str(path))


@dashboards_app.command("push")
def push(url: Annotated[str, typer.Option("--url", help="Grafana URL")], token: Annotated[str, typer.Option("--token", envvar="GRAFANA_TOKEN")],
         influx_url: Annotated[str, typer.Option(help="The InfluxDB the datasource points at")], lang: Lang = "zh",
         database: str = "egovmon") -> None:
    from grafana_client import GrafanaApi

    from dashboards.build import push as provision

    api = GrafanaApi.from_url(url, credential=token)
    typer.echo(json.dumps(provision(api, lang=lang, influx_url=influx_url, database=database)))
