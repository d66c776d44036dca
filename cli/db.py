"""`egovmon db`: back up, restore and upgrade the state database (SQLite or PostgreSQL).

`backup` is safe while the server runs. `restore` and `upgrade` refuse while a
server uses the database (stop it first, or --force). `upgrade` backs the
database up before it migrates; the server itself never upgrades an existing
database, and refuses one whose schema is newer than its code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from core.settings import SettingsError
from server.settings import Settings, load_settings

db_app = typer.Typer(help="State database: backup, restore, upgrade.", no_args_is_help=True)

MESSAGES = {
    "zh": {
        "backup_done": "备份完成: {path} ({size}, 用时 {seconds:.2f} 秒, 数据库结构版本 {revision})",
        "restore_done": "恢复完成: {path} ({size}, 用时 {seconds:.2f} 秒, 数据库结构版本 {revision})",
        "restore_next": "若该版本早于本程序 ({head}), 启动服务器前请运行 egovmon db upgrade",
        "at_head": "数据库结构已是最新版本 {head}, 无需升级",
        "fresh": "新数据库: 已建立最新结构 {head}",
        "upgrading": "升级前已备份: {path} ({size}, 用时 {seconds:.2f} 秒)",
        "upgraded": "数据库结构已从 {current} 升级到 {head} (用时 {seconds:.2f} 秒)",
        "in_use": "数据库正在被使用, 未做任何更改: {detail}。请先停止服务器 (或加 --force)",
        "failed": "失败, 未做任何更改: {detail}",
        "too_new": "数据库结构版本 {current} 比本程序新 (本程序最新为 {head}): 请运行不低于该数据库版本的 egovmon, "
                   "或恢复升级前的备份 (egovmon db restore)",
        "outdated": "数据库结构版本 {current} 早于本程序 ({head}): 请先运行 egovmon db upgrade (会先自动备份)",
    },
    "en": {
        "backup_done": "backup written: {path} ({size}, {seconds:.2f} s, schema revision {revision})",
        "restore_done": "restored: {path} ({size}, {seconds:.2f} s, schema revision {revision})",
        "restore_next": "if that revision is older than this program's ({head}), run egovmon db upgrade before starting the server",
        "at_head": "the schema is already at the newest revision {head}; nothing to upgrade",
        "fresh": "new database: created the newest schema {head}",
        "upgrading": "backed up before the upgrade: {path} ({size}, {seconds:.2f} s)",
        "upgraded": "schema upgraded from {current} to {head} ({seconds:.2f} s)",
        "in_use": "the database is in use, nothing changed: {detail}. Stop the server first (or --force)",
        "failed": "failed, nothing changed: {detail}",
        "too_new": "the database schema (revision {current}) is newer than this program (newest {head}): run an egovmon "
                   "at least as new as the database, or restore the backup taken before its upgrade (egovmon db restore)",
        "outdated": "the database schema (revision {current}) is older than this program ({head}): run egovmon db upgrade "
                    "first (it takes a backup before migrating)",
    },
}

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False, help="YAML configuration")]
DataDirOption = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (overrides the config)")]
ForceOption = Annotated[bool, typer.Option("--force", help="Go ahead although a server uses the database")]
Lang = Annotated[str, typer.Option("--lang", help="Output language: zh (default) or en")]


def say(lang: str, key: str, **values: object) -> str:
    """The message `key` in `lang` (zh when unknown)."""
    return MESSAGES.get(lang, MESSAGES["zh"])[key].format(**values)


def schema_error_text(exc: Exception) -> str:
    """A server start refused on its schema, in Chinese and in English (the server has no --lang)."""
    from server.database import SchemaTooNewError

    key = "too_new" if isinstance(exc, SchemaTooNewError) else "outdated"
    values = {"current": getattr(exc, "current", "?"), "head": getattr(exc, "head", "?")}
    return f"错误: {say('zh', key, **values)}\nerror: {say('en', key, **values)}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def _settings(config: Path | None, data_dir: Path | None) -> Settings:
    try:
        return load_settings(config, **({"data_dir": data_dir} if data_dir else {}))
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _fail(lang: str, exc: Exception) -> typer.Exit:
    from server.backup import DatabaseInUseError
    from server.database import SchemaError, SchemaTooNewError

    if isinstance(exc, SchemaError):
        key = "too_new" if isinstance(exc, SchemaTooNewError) else "outdated"
        typer.echo(say(lang, key, current=exc.current, head=exc.head), err=True)
    elif isinstance(exc, DatabaseInUseError):
        typer.echo(say(lang, "in_use", detail=exc), err=True)
    else:
        typer.echo(say(lang, "failed", detail=exc), err=True)
    return typer.Exit(1)


def _backup(settings: Settings, output: Path | None) -> Any:
    from server.backup import backup, default_backup_path

    target = output or default_backup_path(settings.data_dir, settings.database_url, datetime.now(UTC))
    return backup(settings.database_url, target)


@db_app.command("backup")
def backup_command(
    config: ConfigOption = None, data_dir: DataDirOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Backup file (default: data-dir/backups/egovmon-<UTC time>.sqlite3 or .pgdump)")] = None,
    lang: Lang = "zh",
) -> None:
    """Back the state database up while the server runs: SQLite's online backup API, or pg_dump (custom format)."""
    from server.backup import BackupError

    settings = _settings(config, data_dir)
    try:
        result = _backup(settings, output)
    except BackupError as exc:
        raise _fail(lang, exc) from exc
    typer.echo(say(lang, "backup_done", path=result.path.resolve(), size=_size(result.size_bytes), seconds=result.seconds,
                   revision=result.revision or "-"))


@db_app.command("restore")
def restore_command(
    backup_file: Annotated[Path, typer.Argument(help="A file written by egovmon db backup", exists=True, dir_okay=False)],
    config: ConfigOption = None, data_dir: DataDirOption = None, force: ForceOption = False, lang: Lang = "zh",
) -> None:
    """Replace the state database with a backup. Refuses while a server uses the database, unless --force."""
    from core.filemodes import make_private
    from server.backup import BackupError, exclusive_use, restore
    from server.database import head_revision

    settings = _settings(config, data_dir)
    try:
        with exclusive_use(settings.database_url, force=force):
            result = restore(settings.database_url, backup_file)
    except BackupError as exc:
        raise _fail(lang, exc) from exc
    if settings.data_dir.exists():
        make_private(settings.data_dir, log=None)
    typer.echo(say(lang, "restore_done", path=result.path.resolve(), size=_size(result.size_bytes), seconds=result.seconds,
                   revision=result.revision or "-"))
    if result.revision != head_revision():
        typer.echo(say(lang, "restore_next", head=head_revision()))


@db_app.command("upgrade")
def upgrade_command(
    config: ConfigOption = None, data_dir: DataDirOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the backup taken first")] = None,
    force: ForceOption = False, lang: Lang = "zh",
) -> None:
    """Back the state database up, then migrate it to this program's schema. Refuses while a server uses it."""
    import time

    from core.filemodes import make_private
    from server.backup import BackupError, exclusive_use
    from server.database import (
        SchemaError,
        check_schema,
        head_revision,
        make_engine,
        migrate,
    )

    settings = _settings(config, data_dir)
    head = head_revision()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            current = check_schema(connection, upgrade_existing=True)
        if current == head:
            typer.echo(say(lang, "at_head", head=head))
            return
        engine.dispose()  # our own pooled connection is not "another session" to exclusive_use
        with exclusive_use(settings.database_url, force=force):
            if current is not None:
                result = _backup(settings, output)
                typer.echo(say(lang, "upgrading", path=result.path.resolve(), size=_size(result.size_bytes), seconds=result.seconds))
            started = time.monotonic()
            migrate(engine, upgrade_existing=True)
    except (BackupError, SchemaError) as exc:
        raise _fail(lang, exc) from exc
    finally:
        engine.dispose()
    make_private(settings.data_dir, log=None)
    if current is None:
        typer.echo(say(lang, "fresh", head=head))
    else:
        typer.echo(say(lang, "upgraded", current=current, head=head, seconds=time.monotonic() - started))
