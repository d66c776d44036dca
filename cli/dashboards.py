"""`egovmon dashboards build` (dashboard JSON, import files, Grafana provisioning) and `egovmon dashboards push`
(through the Grafana HTTP API, idempotent), each in the InfluxQL flavour, the PromQL flavour, or both."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

dashboards_app = typer.Typer(help="Grafana dashboards as code: InfluxQL (InfluxDB) and PromQL (VictoriaMetrics).",
                             no_args_is_help=True)  # fmt: skip
Lang = Annotated[str, typer.Option("--lang", help="Dashboard language: zh (default) or en")]
Flavour = Annotated[str, typer.Option("--flavour", help="influxql (InfluxDB 1.x/2.x/3.x, default), promql (VictoriaMetrics), "
                                      "or both (built into one folder each)")]  # fmt: skip
InfluxUrl = Annotated[str, typer.Option("--influx-url", help="The InfluxDB the influxql datasource points at")]
VmUrl = Annotated[str, typer.Option("--victoriametrics-url", help="The VictoriaMetrics the promql datasource points at")]
Database = Annotated[str, typer.Option("--database", help="InfluxDB database (1.x) or DBRP-mapped bucket (2.x/3.x)")]
TsdbUser = Annotated[str | None, typer.Option("--tsdb-user", help="User Grafana logs in to the TSDB with (InfluxDB user, or "
                                              "VictoriaMetrics basic auth); password from EGOVMON_TSDB_PASSWORD")]  # fmt: skip
FLAVOURS = ("influxql", "promql")


def _flavours(flavour: str, *, allow_both: bool) -> tuple[str, ...]:
    if flavour == "both" and allow_both:
        return FLAVOURS
    if flavour in FLAVOURS:
        return (flavour,)
    typer.echo(f"error: --flavour must be {', '.join(FLAVOURS)}{' or both' if allow_both else ''}, not {flavour!r}", err=True)
    raise typer.Exit(2)


@dashboards_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="Directory to write into")],
    lang: Lang = "zh", flavour: Flavour = "influxql",
    influx_url: InfluxUrl = "http://127.0.0.1:8086", victoriametrics_url: VmUrl = "http://127.0.0.1:8428",
    database: Database = "egovmon",
    grafana_path: Annotated[str | None, typer.Option("--grafana-path", help="Absolute path at which Grafana sees --out, when "
                                                     "built elsewhere (default: --out, resolved)")] = None,
    tsdb_user: TsdbUser = None,
    tsdb_token: Annotated[bool, typer.Option("--tsdb-token", help="Authenticate with a token from EGOVMON_TSDB_TOKEN (InfluxDB 2.x/3.x)")] = False,
) -> None:
    """Write dashboards (provisioning and UI-import JSON) and Grafana provisioning files; secrets stay environment references."""
    from dashboards.build import DatasourceAuth, write  # without the server extra: one line from cli.main.main

    auth = DatasourceAuth(user=tsdb_user, token="from-environment" if tsdb_token else None)
    try:
        written = write(out, lang=lang, flavours=_flavours(flavour, allow_both=True), database=database, auth=auth,
                        urls={"influxql": influx_url, "promql": victoriametrics_url},
                        grafana_path=PurePosixPath(grafana_path) if grafana_path else None)  # fmt: skip
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    for path in written:
        typer.echo(str(path))


@dashboards_app.command("push")
def push(
    url: Annotated[str, typer.Option("--url", help="Grafana URL")],
    token: Annotated[str, typer.Option("--token", envvar="GRAFANA_TOKEN", help="Grafana service account token (or GRAFANA_TOKEN)")],
    lang: Lang = "zh", flavour: Flavour = "influxql",
    influx_url: InfluxUrl = "http://127.0.0.1:8086", victoriametrics_url: VmUrl = "http://127.0.0.1:8428",
    database: Database = "egovmon", tsdb_user: TsdbUser = None,
    tsdb_password: Annotated[str | None, typer.Option(envvar="EGOVMON_TSDB_PASSWORD", hidden=True)] = None,
    tsdb_token: Annotated[str | None, typer.Option(envvar="EGOVMON_TSDB_TOKEN", hidden=True)] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each Grafana call")] = 10.0,
) -> None:
    """Create or update the datasource, folders and dashboards in a running Grafana; safe to repeat."""
    import niquests  # without the server extra: one line from cli.main.main
    from grafana_client.api import GrafanaApi
    from grafana_client.client import GrafanaException

    from dashboards.build import DatasourceAuth
    from dashboards.build import push as provision

    counts: dict[str, dict[str, int]] = {}
    auth = DatasourceAuth(user=tsdb_user, password=tsdb_password, token=tsdb_token)
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    for name in _flavours(flavour, allow_both=True):
        target = influx_url if name == "influxql" else victoriametrics_url
        try:
            counts[name] = provision(api, url=target, flavour=name, lang=lang, database=database, auth=auth)
        except niquests.exceptions.RequestException as exc:
            typer.echo(f"error: Grafana at {url} cannot be reached: {type(exc).__name__}", err=True)
            raise typer.Exit(1) from exc
        except GrafanaException as exc:
            typer.echo(f"error: Grafana at {url} refused: {exc.status_code or ''} {exc.message}".replace("  ", " "), err=True)
            raise typer.Exit(1) from exc
    typer.echo(json.dumps(counts if len(counts) > 1 else next(iter(counts.values()))))
