"""`egovmon inventory` (import/export the declared inventory) and `egovmon findings` (what reconciliation found).

Both work straight on the state database of this server host, like `egovmon
admin`; changes are audited as `cli:<os user>` with admin rights. Remote use
goes through the REST API (`/api/v1/inventory`, `/api/v1/findings`).
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.admin import state_session

inventory_app = typer.Typer(help="The declared inventory: sites, address plan, exemptions, systems, websites, hosts.",
                            no_args_is_help=True)
findings_app = typer.Typer(help="Findings: what the platform runs that nobody declared or approved.", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False, help="YAML configuration")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (overrides the config)")]


def _cli_admin() -> Any:
    from server.auth.principal import Principal

    return Principal(kind="user", id=0, name=f"cli:{getpass.getuser()}", role="admin")


@inventory_app.command("import")
def import_file(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="YAML document, a CSV section, or NetBox JSON")],
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    section: Annotated[str | None, typer.Option(help="For CSV: the section the rows belong to (e.g. address_plan)")] = None,
    netbox: Annotated[str | None, typer.Option(help="For NetBox JSON: sites, prefixes, devices or ip_addresses")] = None,
    agency: Annotated[str | None, typer.Option(help="For NetBox: the agency of entries without a tenant")] = None,
) -> None:
    """Add new declarations and update existing ones (by prefix, code, host name)."""
    from inventory import documents
    from server.inventory import service

    text = path.read_text(encoding="utf-8")
    try:
        if netbox:
            if netbox not in ("sites", "prefixes", "devices", "ip_addresses") or not agency:
                raise documents.DocumentError({"netbox": "give --netbox sites|prefixes|devices|ip_addresses and --agency"})
            document = documents.from_netbox(**{netbox: json.loads(text)}, default_agency=agency)
        elif path.suffix.lower() == ".csv":
            document = documents.load_csv(section or "", text)
        else:
            document = documents.load_yaml(text)
    except documents.DocumentError as exc:
        for where, what in exc.errors.items():
            typer.echo(f"error: {where}: {what}", err=True)
        raise typer.Exit(2) from exc
    with state_session(config, data_dir) as session:
        counts = service.import_document(session, document, principal=_cli_admin(), now=datetime.now(UTC))
    typer.echo(json.dumps(counts, ensure_ascii=False))


@inventory_app.command("export")
def export(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Print the whole declared inventory as YAML (what `import` reads back)."""
    from inventory import documents
    from server.inventory import service

    with state_session(config, data_dir) as session:
        typer.echo(documents.dump_yaml(service.export_document(session, agency_id=None)), nl=False)


@findings_app.command("list")
def list_findings(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    status: Annotated[str | None, typer.Option(help="open, acknowledged, exempted, remediated, false_positive")] = None,
    lang: Annotated[str, typer.Option(help="zh or en")] = "zh",
    output_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Findings, newest first, with the article each one cites."""
    from sqlalchemy import select

    from server.access import operator
    from server.agencies.models import Agency
    from server.findings import service

    with state_session(config, data_dir) as session:
        codes = dict(session.execute(select(Agency.id, Agency.code)).all())
        rows = [service.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)
                for f in service.list_findings(session, access=operator(), status=status)]  # fmt: skip
    if output_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str, indent=2))
        return
    for row in rows:
        typer.echo(f"#{row['id']:<5} {row['status']:<14} {row['severity']:<8} {row['article']:<20} {row['title']}  [{row['agency'] or '-'}]")
