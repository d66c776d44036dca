"""`egovmon admin`: agencies, users, tokens, enrolment tokens and agents, straight on the state database.

For the first steps on a new server and for scripts on the server host; every
change is written to the audit log as `cli:<os user>`. Remote administration uses
the REST API with an admin token instead.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from core.settings import SettingsError
from server.settings import load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

admin_app = typer.Typer(help="Administer agencies, users, tokens and agents (on the state database).", no_args_is_help=True)
agency_app = typer.Typer(help="Agencies.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of users.", no_args_is_help=True)
enroll_app = typer.Typer(help="One-time agent enrolment tokens.", no_args_is_help=True)
agent_app = typer.Typer(help="Enrolled agents.", no_args_is_help=True)
for sub, name in ((agency_app, "agency"), (user_app, "user"), (token_app, "token"), (enroll_app, "enrollment-token"), (agent_app, "agent")):
    admin_app.add_typer(sub, name=name)

_state: dict[str, Any] = {}


@admin_app.callback()
def _options(
    config: Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False, help="YAML configuration")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory (overrides the config)")] = None,
    output_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    _state.update(config=config, data_dir=data_dir, json=output_json)


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def state_session(config: Path | None, data_dir: Path | None) -> Iterator[Session]:
    """A committed-on-success session on the configured, migrated state database; API errors exit 1."""
    from cli.db import schema_error_text
    from server.database import SchemaError, make_engine, make_sessionmaker, migrate
    from server.errors import ApiError

    overrides = {"data_dir": data_dir} if data_dir else {}
    try:
        settings = load_settings(config, **overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        try:
            migrate(engine, upgrade_existing=False)  # an older schema: `egovmon db upgrade` first, which backs it up
        except SchemaError as exc:
            typer.echo(schema_error_text(exc), err=True)
            raise typer.Exit(2) from exc
        with make_sessionmaker(engine)() as session:
            try:
                yield session
                session.commit()
            except ApiError as exc:
                session.rollback()
                typer.echo(f"error: {exc.message}", err=True)
                raise typer.Exit(1) from exc
    finally:
        engine.dispose()


@contextmanager
def _session() -> Iterator[Session]:
    with state_session(_state.get("config"), _state.get("data_dir")) as session:
        yield session


def _emit(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if _state.get("json"):
        typer.echo(json.dumps(rows, ensure_ascii=False, default=str, indent=2))
        return
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in columns}
    typer.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        typer.echo("  ".join(str(row.get(c, "") if row.get(c) is not None else "-").ljust(widths[c]) for c in columns))


def _row(obj: Any, columns: list[str]) -> dict[str, Any]:
    return {c: getattr(obj, c) for c in columns}


def _agency_id(session: Any, code: str) -> int:
    from server.agencies.service import get_agency_by_code

    return get_agency_by_code(session, code=code).id


# -- agencies -----------------------------------------------------------------------------

@agency_app.command("create")
def agency_create(code: str, name: str) -> None:
    """Add an agency: CODE (e.g. health) and NAME (e.g. 市卫生健康委员会)."""
    from server.agencies.service import create_agency

    with _session() as session:
        agency = create_agency(session, actor=_actor(), code=code, name=name, now=_now())
        _emit([_row(agency, ["id", "code", "name"])], ["id", "code", "name"])


@agency_app.command("list")
def agency_list() -> None:
    """List agencies."""
    from server.access import operator
    from server.agencies.service import list_agencies

    with _session() as session:
        _emit([_row(a, ["id", "code", "name"]) for a in list_agencies(session, access=operator("cli"))], ["id", "code", "name"])


@agency_app.command("import")
def agency_import(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Inventory YAML with an agencies list")]) -> None:
    """Create the agencies listed under `agencies:` in an inventory file (existing codes are kept)."""
    from sqlalchemy import select

    from server.agencies.models import Agency
    from server.agencies.service import create_agency

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        typer.echo(f"error: {path} is not valid YAML: {exc}", err=True)
        raise typer.Exit(2) from exc
    entries = data.get("agencies") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        typer.echo(f"error: {path} has no 'agencies' list", err=True)
        raise typer.Exit(2)
    created = 0
    with _session() as session:
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or not entry.get("code") or not entry.get("name"):
                typer.echo(f"error: agencies[{index}] needs code and name", err=True)
                raise typer.Exit(2)
            if session.scalar(select(Agency.id).where(Agency.code == entry["code"])) is None:
                create_agency(session, actor=_actor(), code=str(entry["code"]), name=str(entry["name"]), now=_now())
                created += 1
    typer.echo(f"created {created} agencies, {len(entries) - created} already present")


# -- users and tokens -----------------------------------------------------------------------

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input (scripts)")
]


def _read_password(from_stdin: bool) -> str:
    """The password typed twice at a hidden prompt, or the first line of stdin (without its line break)."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("password (at least 12 characters)", hide_input=True, confirmation_prompt=True))


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[str, typer.Option(help="admin, noc, security or agency")],
    agency: Annotated[str | None, typer.Option(help="Agency code (role agency)")] = None,
    display_name: Annotated[str, typer.Option(help="Display name")] = "",
    password: Annotated[bool, typer.Option("--password", help="Prompt for a console password")] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a user."""
    from server.auth.service import create_user

    secret = _read_password(password_stdin) if password or password_stdin else None
    with _session() as session:
        agency_id = _agency_id(session, agency) if agency else None
        user = create_user(
            session, actor=_actor(), username=username, role=role, agency_id=agency_id,
            display_name=display_name, password=secret, now=_now(),
        )
        _emit([_row(user, ["id", "username", "role", "agency_id"])], ["id", "username", "role", "agency_id"])


@user_app.command("passwd")
def user_passwd(username: str, password_stdin: PasswordStdin = False) -> None:
    """Set a user's console password (at least 12 characters); it also lifts a login lockout of that user.

    The first console login: the server creates user `admin` on its first start;
    `egovmon admin --data-dir DIR user passwd admin` gives it a password.
    """
    from sqlalchemy import select

    from server.auth.models import User
    from server.auth.service import update_user

    secret = _read_password(password_stdin)
    with _session() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            hint = " (the server creates 'admin' on its first start)" if username == "admin" else ""
            typer.echo(f"error: user {username!r} does not exist{hint}", err=True)
            raise typer.Exit(1)
        update_user(session, actor=_actor(), user_id=user_id, password=secret, now=_now())
    typer.echo(f"console password of user {username} set")


@user_app.command("list")
def user_list() -> None:
    """List users."""
    from sqlalchemy import select

    from server.auth.models import User

    cols = ["id", "username", "role", "agency_id", "disabled"]
    with _session() as session:
        _emit([_row(u, cols) for u in session.scalars(select(User).order_by(User.id))], cols)


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a user (its tokens stop working at once)."""
    _set_disabled(username, True)


@user_app.command("enable")
def user_enable(username: str) -> None:
    """Enable a disabled user."""
    _set_disabled(username, False)


def _set_disabled(username: str, disabled: bool) -> None:
    from sqlalchemy import select

    from server.auth.models import User
    from server.auth.service import update_user

    with _session() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        if user_id is None:
            typer.echo(f"error: user {username!r} does not exist", err=True)
            raise typer.Exit(1)
        update_user(session, actor=_actor(), user_id=user_id, disabled=disabled, now=_now())
    typer.echo(f"user {username} {'disabled' if disabled else 'enabled'}")


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="Username")],
    name: Annotated[str, typer.Option(help="What the token is for")],
    ttl_days: Annotated[float | None, typer.Option(help="Days until expiry (default: none)")] = None,
) -> None:
    """Create an API token; the secret is printed once."""
    from sqlalchemy import select

    from server.auth.models import User
    from server.auth.service import create_api_token

    with _session() as session:
        user_id = session.scalar(select(User.id).where(User.username == user))
        if user_id is None:
            typer.echo(f"error: user {user!r} does not exist", err=True)
            raise typer.Exit(1)
        token, secret = create_api_token(
            session, actor=_actor(), user_id=user_id, name=name,
            ttl=timedelta(days=ttl_days) if ttl_days else None, now=_now(),
        )
        _emit([{"id": token.id, "token": secret, "expires_at": token.expires_at}], ["id", "token", "expires_at"])


@token_app.command("list")
def token_list() -> None:
    """List API tokens (without secrets)."""
    from server.auth.service import list_api_tokens

    cols = ["id", "user_id", "name", "prefix", "expires_at", "revoked_at", "last_used_at"]
    with _session() as session:
        _emit([_row(t, cols) for t in list_api_tokens(session)], cols)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke an API token at once."""
    from server.auth.service import revoke_api_token

    _revoke(lambda s: revoke_api_token(s, actor=_actor(), token_id=token_id, now=_now()), f"token {token_id}")


# -- enrolment tokens and agents ------------------------------------------------------------

@enroll_app.command("create")
def enrollment_token_create(
    agency: Annotated[str, typer.Option(help="Agency code the agent will belong to")],
    ttl_hours: Annotated[float, typer.Option(help="Hours until it expires unused")] = 72,
    note: Annotated[str, typer.Option(help="What it is for, e.g. the host to install")] = "",
) -> None:
    """Create a one-time enrolment token; the secret is printed once."""
    from server.agents.service import create_enrollment_token

    with _session() as session:
        token, secret = create_enrollment_token(
            session, actor=_actor(), agency_id=_agency_id(session, agency), ttl=timedelta(hours=ttl_hours), note=note, now=_now()
        )
        _emit([{"id": token.id, "token": secret, "expires_at": token.expires_at}], ["id", "token", "expires_at"])


@enroll_app.command("list")
def enrollment_token_list() -> None:
    """List enrolment tokens (without secrets)."""
    from server.agents.service import list_enrollment_tokens

    cols = ["id", "agency_id", "prefix", "note", "expires_at", "used_at", "used_by_agent_id", "revoked_at"]
    with _session() as session:
        _emit([_row(t, cols) for t in list_enrollment_tokens(session)], cols)


@enroll_app.command("revoke")
def enrollment_token_revoke(token_id: int) -> None:
    """Revoke an unused enrolment token."""
    from server.agents.service import revoke_enrollment_token

    _revoke(lambda s: revoke_enrollment_token(s, actor=_actor(), token_id=token_id, now=_now()), f"enrollment token {token_id}")


@agent_app.command("list")
def agent_list() -> None:
    """List enrolled agents."""
    from server.access import operator
    from server.agents.service import list_agents

    with _session() as session:
        rows = [
            {"id": a.id, "agency_id": a.agency_id, "hostname": h.hostname, "version": a.version,
             "last_seen_at": a.last_seen_at, "revoked_at": a.revoked_at}
            for a, h in list_agents(session, access=operator("cli"))
        ]
        _emit(rows, ["id", "agency_id", "hostname", "version", "last_seen_at", "revoked_at"])


@agent_app.command("revoke")
def agent_revoke(agent_id: int) -> None:
    """Revoke an agent's credential at once."""
    from server.agents.service import revoke_agent

    _revoke(lambda s: revoke_agent(s, actor=_actor(), agent_id=agent_id, now=_now()), f"agent {agent_id}")


def _revoke(action: Callable[[Any], Any], what: str) -> None:
    with _session() as session:
        action(session)
    typer.echo(f"{what} revoked")
