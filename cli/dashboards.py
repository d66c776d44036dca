"""`egovmon dashboards build --out DIR` (dashboard JSON + Grafana provisioning files) and
`egovmon dashboards push --url URL --token T` (through the Grafana HTTP API, idempotent)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

dashboards_app = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)
Lang = Annotated[str, typer.Option("--lang", help="zh (default) or en")]


@dashboards_app.command("build", help="Write the dashboards' JSON and Grafana provisioning files (dashboards and the InfluxDB datasource) into --out.")
def build(out: Annotated[Path, typer.Option("--out", help="Directory to write into")], lang: Lang = "zh",
          influx_url: Annotated[str, typer.Option(help="The InfluxDB the datasource points at")] = "http://127.0.0.1:8086",
          database: str = "egovmon") -> None:
    from dashboards.build import write

    for path in write(out, lang=lang, influx_url=influx_url, database=database):
        typer.echo(str(path))


@dashboards_app.command("push", help='Create or update the datasource and every dashboard in a running Grafana through its HTTP API (idempotent).')
def push(url: Annotated[str, typer.Option("--url", help="Grafana URL")], token: Annotated[str, typer.Option("--token", envvar="GRAFANA_TOKEN")],
         influx_url: Annotated[str, typer.Option(help="The InfluxDB the datasource points at")], lang: Lang = "zh",
         database: str = "egovmon") -> None:
    from grafana_client import GrafanaApi

    from dashboards.build import push as provision

    from grafana_client.client import GrafanaException

    api = GrafanaApi.from_url(url, credential=token)
    try:
        result = provision(api, lang=lang, influx_url=influx_url, database=database)
    except (OSError, GrafanaException) as exc:  # requests' connection errors are OSErrors
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        typer.echo(f"error: cannot provision Grafana at {url}: {reason}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result))
