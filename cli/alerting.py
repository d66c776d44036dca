"""`egovmon rules check FILE` (validate rule files like `promtool check rules`) and `egovmon alerts`
(list, acknowledge, silence through the REST API with a user's token, scoped like the API)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer

if TYPE_CHECKING:
    from alerting.pack import PackedRule

rules_app = typer.Typer(help="Alert rule files.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts on a running server (REST API; token from --token or EGOVMON_TOKEN).", no_args_is_help=True)

UrlOption = Annotated[str, typer.Option("--url", envvar="EGOVMON_URL", help="Server URL")]
TokenOption = Annotated[str, typer.Option("--token", envvar="EGOVMON_TOKEN", help="A user's API token")]


@rules_app.command("check")
def check(
    files: Annotated[list[Path] | None, typer.Argument(exists=True, dir_okay=False, help="Rule files (besides the config's)")] = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", exists=True, dir_okay=False,
                                                help="Take rules_files and default_rules from this configuration")] = None,
    default_rules: Annotated[bool, typer.Option("--default-rules/--no-default-rules",
                                                help="Include the built-in default pack (the config's default_rules wins)")] = True,
) -> None:
    """Validate rule files like `promtool check rules`, then print the effective rule set the server would evaluate:
    the default pack plus the files (a file's rule with a default rule's name replaces it). Exits 1 on any problem."""
    from alerting.pack import load_rule_pack
    from alerting.rules import RulesError

    paths = list(files or [])
    if config is not None:
        config_files, default_rules = _config_rules(config)
        paths = [*config_files, *paths]
    if not _each_file_loads(paths):
        raise typer.Exit(1)
    try:
        packed = load_rule_pack(paths, default_rules_too=default_rules)
    except RulesError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from exc
    _print_pack(packed, default_rules=default_rules)


def _config_rules(config: Path) -> tuple[list[Path], bool]:
    """The configuration's rules_files and default_rules; exits 2 when it does not load."""
    from core.settings import SettingsError
    from server.settings import load_settings

    try:
        alerting = load_settings(config).alerting
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    return list(alerting.rules_files), alerting.default_rules


def _each_file_loads(paths: Sequence[Path]) -> bool:
    """Check each rule file on its own, printing SUCCESS with its rule count or FAILED with its problems."""
    from alerting.rules import RulesError, load_rules

    failed = False
    for path in paths:
        try:
            rules = load_rules(Path(path).read_text(encoding="utf-8")).rules()
        except (RulesError, OSError) as exc:
            failed = True
            typer.echo(f"{path}: FAILED", err=True)
            for problem in getattr(exc, "problems", [str(exc)]):
                typer.echo(f"  {problem}", err=True)
            continue
        typer.echo(f"{path}: SUCCESS: {len(rules)} rules found")
    return not failed


def _print_pack(packed: Sequence[PackedRule], *, default_rules: bool) -> None:
    """One line per effective rule: name, kind, severity, and where it comes from."""
    from alerting.pack import DEFAULT_SOURCE

    pack = "with the default pack" if default_rules else "without the default pack (default_rules: false)"
    typer.echo(f"effective rule set, {pack}: {len(packed)} rules")
    width = max((len(p.rule.alert) for p in packed), default=0)
    for p in packed:
        origin = p.source if p.source == DEFAULT_SOURCE else f"{p.source}{' (replaces the default rule)' if p.replaces_default else ''}"
        severity = p.rule.labels.get("severity", "-")
        typer.echo(f"  {p.rule.alert:<{width}}  {p.rule.kind:<9}  {severity:<8}  {origin}")


def _call(method: str, url: str, token: str, path: str, **kwargs: Any) -> Any:
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        typer.echo(f"error: {response.status_code} {response.text}", err=True)
        raise typer.Exit(1)
    return response.json()


@alerts_app.command("list", help='Alerts you may see (an agency user: its own), newest first; --status pending, firing or resolved.')
def list_alerts(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "", status: str | None = None,
                output_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    alerts = _call("GET", url, token, "/api/v1/alerts", params={"status": status} if status else None)
    if output_json:
        typer.echo(json.dumps(alerts, ensure_ascii=False, indent=2))
        return
    for a in alerts:
        summary = a["annotations"].get("summary_zh") or a["alertname"]
        flag = " 数据中断" if a["lacking_data"] else ""
        typer.echo(f"{a['fingerprint']} {a['status']:<9} {a['severity']:<8} {a['agency'] or '-':<12} {summary}{flag}")


@alerts_app.command("ack", help='Acknowledge a firing alert (stops its repeats and escalation); the comment goes to the audit log.')
def acknowledge(fingerprint: str, url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "", comment: str = "") -> None:
    alert = _call("POST", url, token, f"/api/v1/alerts/{fingerprint}/acknowledge", json={"comment": comment})
    typer.echo(f"{alert['fingerprint']} acknowledged by {alert['acknowledged_by']}")


@alerts_app.command("silence", help='Silence the alerts matching label matchers for a while, with the reason (required).')
def silence(matchers: Annotated[list[str], typer.Argument(help='e.g. alertname=HostMemoryLow host=web-1')],
            comment: Annotated[str, typer.Option(help="Why (required)")], minutes: float = 60,
            url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    created = _call("POST", url, token, "/api/v1/silences", json={"matchers": matchers, "duration_minutes": minutes, "comment": comment})
    typer.echo(f"silence {created['id']} until {created['ends_at']}: {' '.join(created['matchers'])}")


incidents_app = typer.Typer(help="Incidents on a running server (REST API).", no_args_is_help=True)
duties_app = typer.Typer(help="Security duties and the scorecard on a running server (REST API).", no_args_is_help=True)


@incidents_app.command("list", help='Incidents you may see, with status and severity.')
def list_incidents(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    for i in _call("GET", url, token, "/api/v1/incidents"):
        typer.echo(f"#{i['id']:<5} {i['status']:<13} {i['severity']:<8} {i['title']}")


@incidents_app.command("note")
def add_note(incident_id: int, text: str, url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    """Append a note to an incident's timeline (entries are never edited)."""
    entry = _call("POST", url, token, f"/api/v1/incidents/{incident_id}/timeline", json={"kind": "note", "text": text})
    typer.echo(f"entry {entry['seq']} {entry['hash']}")


@incidents_app.command("report", help="Write an incident's report (timeline and evidence) as HTML or PDF, by the extension of --out.")
def report(incident_id: int, out: Annotated[Path, typer.Option("--out", help="File to write (.html or .pdf)")],
           url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    fmt = "pdf" if out.suffix.lower() == ".pdf" else "html"
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/v1/incidents/{incident_id}/report", params={"format": fmt},
                             headers={"Authorization": f"Bearer {token}"}, timeout=60)
    except httpx.HTTPError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        typer.echo(f"error: {response.status_code} {response.text}", err=True)
        raise typer.Exit(1)
    out.write_bytes(response.content)
    typer.echo(str(out))


@duties_app.command("list", help='Duties (evaluations, drills, inspections) per agency, and whether each is overdue.')
def list_duties(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "") -> None:
    for d in _call("GET", url, token, "/api/v1/duties"):
        state = "逾期" if d["overdue"] else "按期"
        typer.echo(f"#{d['id']:<4} {d['agency']:<16} {d['name_zh']:<8} {d['system'] or '-':<12} {state} due {d['due_at']}")


@duties_app.command("scorecard", help="Each agency's duty scorecard (JSON).")
def scorecard(url: UrlOption = "http://127.0.0.1:8080", token: TokenOption = "",
              output_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    rows = _call("GET", url, token, "/api/v1/scorecard")
    typer.echo(json.dumps(rows, ensure_ascii=False, indent=2 if output_json else None))
