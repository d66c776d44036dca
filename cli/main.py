"""The `egovmon` command.

Server commands import the server stack only when they run, so an agent-only
install (no FastAPI, no SQLAlchemy) still has a working `egovmon` for its own
commands.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import typer

from cli.admin import admin_app
from cli.agent import agent_app
from cli.alerting import alerts_app, duties_app, incidents_app, rules_app
from cli.dashboards import dashboards_app
from cli.db import db_app, schema_error_text
from cli.flow import flow_app
from cli.inventory import findings_app, inventory_app
from cli.probe import probe_app
from cli.snmp import snmp_app
from core.settings import SettingsError
from server.settings import Settings, load_settings, settings_json_schema

app = typer.Typer(help="egovmon: operations and security monitor of the e-government platform.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration file tools.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(admin_app, name="admin")
app.add_typer(agent_app, name="agent")
app.add_typer(flow_app, name="flow")
app.add_typer(inventory_app, name="inventory")
app.add_typer(findings_app, name="findings")
app.add_typer(rules_app, name="rules")
app.add_typer(alerts_app, name="alerts")
app.add_typer(incidents_app, name="incidents")
app.add_typer(duties_app, name="duties")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(db_app, name="db")
app.add_typer(snmp_app, name="snmp")
app.add_typer(probe_app, name="probe")

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file", exists=True, dir_okay=False)]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (overrides the config)")]


# Which extra brings a module an agent-only install lacks (`pip install egovmon` has neither).
SERVER_EXTRA_MODULES = frozenset({
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "influxdb_client", "psycopg", "orjson", "jinja2", "multipart",
    "grafana_foundation_sdk", "grafana_client", "niquests", "weasyprint", "numpy",
})  # fmt: skip
FLOW_EXTRA_MODULES = frozenset({"numpy"})


def missing_extra(exc: ModuleNotFoundError, argv: list[str]) -> str | None:
    """The extra to install when `exc` names a module of an extra (`flow` for the flow commands, else `server`)."""
    top = (exc.name or "").split(".")[0]
    if argv[:1] == ["flow"] and top in FLOW_EXTRA_MODULES:
        return "flow"
    return "server" if top in SERVER_EXTRA_MODULES else None


def main() -> None:
    """The `egovmon` entry point: the Typer app, with a missing extra reported in one line instead of a traceback."""
    argv = sys.argv[1:]
    try:
        app(prog_name="egovmon")
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc, argv)
        if extra is None:
            raise
        command = " ".join(a for a in argv[:2] if not a.startswith("-"))
        typer.echo(f"error: `egovmon {command}` needs the [{extra}] extra ({exc.name} is not installed): "
                   f"pip install 'egovmon[{extra}]'", err=True)  # fmt: skip
        raise SystemExit(3) from None


def _settings(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _configure_logging(settings: Settings) -> None:
    fmt = (
        '{"at":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":"%(message)s"}'
        if settings.log.json_format
        else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.basicConfig(level=settings.log.level, format=fmt, stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for noisy in ("httpx", "httpcore"):  # a line per request of the local agent and the notifiers; failures are logged by us
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(2) from exc
    return sock


def _program() -> str:
    """How the operator ran egovmon (`.venv/bin/egovmon`), so printed commands work as written; else `egovmon`."""
    return sys.argv[0] if Path(sys.argv[0]).name == "egovmon" else "egovmon"


def first_login_hint(settings: Settings, config: Path | None, console_url: str) -> str:
    """How to log in to the console: the command that sets the admin's password, then the URL."""
    args = [_program(), "admin"]
    if config is not None:
        args += ["--config", str(config.resolve())]
    args += ["--data-dir", str(settings.data_dir.resolve()), "user", "passwd", "admin"]
    return (
        f"console: {console_url} (first login: set the admin's password with `{shlex.join(args)}`, "
        "then log in as admin)"
    )
class _FastAsgi(TypedDict, total=False):
    http: Literal["httptools"]
    loop: Literal["uvloop"]


def _fast_asgi() -> _FastAsgi:
    """uvicorn's C HTTP parser (httptools) and event loop (uvloop) when installed (the `server` extra installs
    them); the pure-Python h11 parser costs several times more CPU per request."""
    import importlib.util

    options: _FastAsgi = {}
    if importlib.util.find_spec("httptools") is not None:
        options["http"] = "httptools"
    if importlib.util.find_spec("uvloop") is not None:
        options["loop"] = "uvloop"
    if len(options) < 2:
        logging.getLogger(__name__).warning("httptools or uvloop missing: serving with slower pure-Python parts")
    return options


def _fresh_metrics_dir(data_dir: Path) -> Path:
    """prometheus-client's multiprocess directory for several workers, emptied: files left by an earlier run would
    add dead processes' counts to this one's. The workers read PROMETHEUS_MULTIPROC_DIR when they import prometheus_client."""
    import shutil

    directory = (data_dir / "metrics-multiproc").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700, parents=True)
    return directory


def _migrate_once(settings: Settings) -> None:
    """Create a fresh state database before the workers start: workers migrating a fresh database at the same moment
    race (SQLite: "table agencies already exists"), and uvicorn then stops the whole server. A schema newer than this
    program, or an older one (`egovmon db upgrade` backs it up and migrates it), stops the start with exit status 2."""
    from core.filemodes import make_private
    from server.database import SchemaError, make_engine, migrate

    make_private(settings.data_dir, log=logging.getLogger("server.app"))  # loose modes are tightened, with a warning
    engine = make_engine(settings.database_url)
    try:
        migrate(engine, upgrade_existing=False)
    except SchemaError as exc:
        typer.echo(schema_error_text(exc), err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    make_private(settings.data_dir, log=None)  # the database it may just have created


def _serve(settings: Settings, config: Path | None, *, local_agent: bool = False) -> None:
    """Run the server in the foreground until interrupted."""
    import uvicorn

    from server.app import create_app

    _configure_logging(settings)
    server = settings.server
    if server.workers > 1:
        # Several processes: each builds its own app from the same settings.
        os.environ["EGOVMON_CONFIG_FILE"] = str(config.resolve()) if config else ""
        os.environ["EGOVMON_DATA_DIR"] = str(settings.data_dir)
        os.environ["EGOVMON_SERVER__HOST"] = server.host
        os.environ["EGOVMON_SERVER__PORT"] = str(server.port)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_fresh_metrics_dir(settings.data_dir))
        _migrate_once(settings)
        typer.echo(f"egovmon server listening on http://{server.host}:{server.port} with {server.workers} workers")
        typer.echo(first_login_hint(settings, config, f"http://{server.host}:{server.port}/ui"))
        from server.jobs import JobsProcess

        jobs = JobsProcess()  # retention, reconciliation, alerting, delivery, state export: not in the HTTP workers
        jobs.start()
        os.environ["EGOVMON_ROLE"] = "http"
        try:
            uvicorn.run(
                "server.asgi:app_from_environment", factory=True, host=server.host, port=server.port,
                workers=server.workers, log_level=settings.log.level.lower(), access_log=False, **_fast_asgi(),
            )
        finally:
            jobs.stop()
        return
    _migrate_once(settings)  # refuses a schema it must not run on, before listening
    sock = _bound_socket(server.host, server.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"egovmon server listening on http://{shown}:{port}", color=False)
    token_file = settings.data_dir / "initial-admin-token"
    typer.echo(f"data directory: {settings.data_dir.resolve()}; first admin token: {token_file.resolve()}")
    typer.echo(first_login_hint(settings, config, f"http://{shown}:{port}/ui"))
    sys.stdout.flush()
    uv_config = uvicorn.Config(
        create_app(settings), log_level=settings.log.level.lower(), access_log=False, lifespan="on", **_fast_asgi()
    )
    stop_agent = None
    if local_agent:
        from cli.local_agent import start_local_agent

        stop_agent = start_local_agent(f"http://{shown}:{port}", settings)
        typer.echo("local agent: monitoring this host (its state is in data-dir/agent)")
        sys.stdout.flush()
    try:
        uvicorn.Server(uv_config).run(sockets=[sock])
    finally:
        if stop_agent is not None:
            stop_agent.set()


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Data directory")] = Path("egovmon-data"),
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port)")] = 8080,
    agent: Annotated[bool, typer.Option("--agent/--no-agent", help="Also run a local agent monitoring this host")] = True,
) -> None:
    """Run the server on the embedded default (SQLite, embedded history) and a local agent: no external servers needed."""
    settings = _settings(None, data_dir=data_dir, server={"host": host, "port": port})
    _serve(settings, None, local_agent=agent)


@app.command()
def server(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address (overrides the config)")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (overrides the config)")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes (overrides the config)")] = None,
) -> None:
    """Run the central server with a configuration file."""
    server_overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    settings = _settings(config, data_dir=data_dir, server=server_overrides or None)
    _serve(settings, config)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the configuration file."""
    typer.echo(settings_json_schema())


@config_app.command("check")
def config_check(config: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Validate a configuration file (with the environment applied) and print the result."""
    settings = _settings(config)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2, ensure_ascii=False))


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Directory to write egovmon.yaml and inventory.yaml into")]) -> None:
    """Write a commented example configuration and an example inventory; print the first steps up to the console login."""
    directory.mkdir(parents=True, exist_ok=True)
    templates = resources.files("cli") / "templates"
    for name in ("egovmon.yaml", "inventory.yaml"):
        target = directory / name
        if target.exists():
            typer.echo(f"error: {target} exists; not overwriting", err=True)
            raise typer.Exit(1)
        target.write_text((templates / name).read_text(encoding="utf-8"), encoding="utf-8")
        typer.echo(f"wrote {target}")
    config = directory / "egovmon.yaml"
    settings = _settings(config)
    program = _program()
    typer.echo("next steps:")
    typer.echo(f"  {shlex.join([program, 'server', '--config', str(config)])}")
    typer.echo(f"  {shlex.join([program, 'admin', '--config', str(config), 'user', 'passwd', 'admin'])}"
               "   # in a second shell, once the server has started and created user admin")  # fmt: skip
    typer.echo(f"  then log in as admin at http://{settings.server.host}:{settings.server.port}/ui")

