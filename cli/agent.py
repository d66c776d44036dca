"""`egovmon agent`: enrol, run, and install as a systemd service."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.settings import AgentSettings, load_agent_settings
from cli.bundle import bundle_app
from core.settings import SettingsError

agent_app = typer.Typer(help="The host agent: enrol it, run it, install it as a service.", no_args_is_help=True)
agent_config_app = typer.Typer(help="The agent's configuration file: validate it, print its JSON schema.", no_args_is_help=True)
agent_app.add_typer(agent_config_app, name="config")
agent_app.add_typer(bundle_app, name="bundle")

CAP_NET_RAW = 13  # linux/capability.h

UNIT = """\
[Unit]
Description=egovmon agent (host metrics, network state, backups)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
ExecStart={executable} agent run --config {config}
Restart=always
RestartSec=5
StateDirectory=egovmon-agent
StateDirectoryMode=0700
# Only what the discovery probes need: raw sockets (ARP, DHCP, ICMP).
AmbientCapabilities=CAP_NET_RAW
CapabilityBoundingSet=CAP_NET_RAW
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ReadWritePaths=/var/lib/egovmon-agent

[Install]
WantedBy=multi-user.target
"""

CONFIG = """\
# egovmon agent configuration. Environment overrides: EGOVMON_AGENT_<KEY>, nested with __.
state_dir: /var/lib/egovmon-agent     # credential (0600) and the disk queue
# server_url: https://egovmon.example   # default: the server the agent enrolled with
# hostname: web01                        # default: this machine's host name
collectors:
  host: {interval_seconds: 15, jitter_seconds: 1, timeout_seconds: 10}
  netstate: {interval_seconds: 300, timeout_seconds: 10}  # and at once on every link/address/route change
  backup: {interval_seconds: 60, timeout_seconds: 120}
backup_jobs: []
#  - {name: db-dump, kind: path, path: /backup/db, pattern: "*.sql.gz", rpo_seconds: 86400}
#  - {name: restore-drill, kind: status_file, role: restore_test, path: /backup/restore-test.json, rpo_seconds: 2592000}
shipper:
  queue_max_bytes: 268435456         # disk queue bound (256 MiB); the oldest batches are dropped beyond it
  # ca_file: /etc/egovmon/ca.pem     # CAs that may sign the server's certificate (default: the public CAs)
  # pin_sha256: "ab:cd:..."          # SHA-256 of the server certificate; any other certificate is refused
  # insecure_http: false             # plain http:// to another host is refused unless true (or --insecure)
metrics:
  listen: 127.0.0.1:9108             # local /metrics for an existing Prometheus; null turns it off
"""


def configure_logging(level: str) -> None:
    """Log to stderr at `level`. The HTTP client's line per request (httpx logs every POST at INFO: about 5,800 lines a
    day per agent at one batch every 15 s) is kept for WARNING and above; the shipper logs each batch at DEBUG itself."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


INSECURE_HELP = (
    "Allow a plain http:// server that is not this machine: the enrolment token, the credential and all metrics "
    "travel unencrypted (config: shipper.insecure_http)"
)


def _settings(config: Path | None, state_dir: Path | None = None) -> AgentSettings:
    try:
        return load_agent_settings(config, **({"state_dir": state_dir} if state_dir else {}))
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@agent_config_app.command("check")
def config_check(config: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Agent configuration file (YAML)")]) -> None:
    """Validate an agent configuration file (with the EGOVMON_AGENT_* environment applied) and print the result; exits 2
    and names each problem when it is invalid."""
    import json

    settings = _settings(config)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2, ensure_ascii=False))


@agent_config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of the agent configuration file (for editors and CI checks)."""
    import json

    typer.echo(json.dumps(AgentSettings.model_json_schema(), indent=2, ensure_ascii=False))


def effective_capabilities(status_text: str) -> int:
    """The CapEff bit mask from the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


@agent_app.command("enroll")
def enroll_command(
    server: Annotated[str, typer.Option(help="egovmon server URL")],
    token: Annotated[str, typer.Option(help="One-time enrolment token from the e-gov agency")],
    config: Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False)] = None,
    state_dir: Annotated[Path | None, typer.Option(help="Where to store the credential (overrides the config)")] = None,
    hostname: Annotated[str | None, typer.Option(help="Host name to enrol as (default: this machine's)")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help=INSECURE_HELP)] = False,
) -> None:
    """Exchange a one-time enrolment token for this agent's credential (stored with mode 0600)."""
    from agent.runtime import EnrollmentError, enroll
    from agent.transport import TransportError

    settings = _settings(config, state_dir)
    logging.basicConfig(level=settings.log.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        credential = enroll(
            server, token, hostname=hostname or settings.resolved_hostname(), state_dir=settings.state_dir,
            shipper=settings.shipper, insecure=insecure,
        )
    except TransportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except EnrollmentError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"enrolled as agent {credential.agent_id} for host {credential.hostname}; "
        f"credential stored in {settings.credential_file} (mode 0600)"
    )


@agent_app.command("run")
def run_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False)] = None,
    state_dir: Annotated[Path | None, typer.Option(help="State directory (overrides the config)")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help=INSECURE_HELP)] = False,
) -> None:
    """Run the agent in the foreground until interrupted."""
    from agent.runtime import NotEnrolledError, build
    from agent.transport import TransportError

    settings = _settings(config, state_dir)
    configure_logging(settings.log.level)
    try:
        agent = build(settings, insecure=insecure)
    except TransportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    except NotEnrolledError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    caps = effective_capabilities(Path("/proc/self/status").read_text())
    if not caps & (1 << CAP_NET_RAW):
        logging.getLogger("egovmon.agent").warning(
            "running without CAP_NET_RAW: raw-socket probes (ARP sweep, DHCP, ICMP) are unavailable"
        )
    address = agent.start_metrics_server()
    if address:
        typer.echo(f"egovmon agent metrics on http://{address[0]}:{address[1]}/metrics")
    typer.echo(f"egovmon agent {agent.credential.agent_id} shipping to {settings.server_url or agent.credential.server_url}")
    sys.stdout.flush()
    try:
        asyncio.run(agent.run())
    except KeyboardInterrupt:
        pass


@agent_app.command("install")
def install_command(
    root: Annotated[Path, typer.Option(help="Install under this root (for packaging and tests)")] = Path("/"),
    user: Annotated[str, typer.Option(help="Unprivileged user the service runs as")] = "egovmon",
    force: Annotated[bool, typer.Option(help="Overwrite an existing configuration")] = False,
) -> None:
    """Write the systemd unit and a configuration; say which capabilities this process lacks."""
    unit_path = root / "etc/systemd/system/egovmon-agent.service"
    config_path = root / "etc/egovmon/agent.yaml"
    unit_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    # absolute(), not resolve(): /opt/egovmon/venv is a link that an upgrade switches to the new environment.
    executable = Path(sys.argv[0]).absolute() if Path(sys.argv[0]).name == "egovmon" else Path(sys.executable).with_name("egovmon")
    unit_path.write_text(UNIT.format(user=user, executable=executable, config="/etc/egovmon/agent.yaml"), encoding="utf-8")
    typer.echo(f"wrote {unit_path}")
    if config_path.exists() and not force:
        typer.echo(f"kept existing {config_path} (--force overwrites)")
    else:
        config_path.write_text(CONFIG, encoding="utf-8")
        typer.echo(f"wrote {config_path}")
    caps = effective_capabilities(Path("/proc/self/status").read_text())
    if not caps & (1 << CAP_NET_RAW):
        typer.echo("note: this process lacks CAP_NET_RAW; the service gets it from its unit (AmbientCapabilities)")
    typer.echo(
        "next: useradd --system --no-create-home " + user + "; "
        "egovmon agent enroll --config /etc/egovmon/agent.yaml --server URL --token TOKEN; "
        "systemctl daemon-reload && systemctl enable --now egovmon-agent"
    )
