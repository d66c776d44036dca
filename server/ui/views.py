"""The console at /ui: server-rendered pages over the same services as the API, scoped the same way.

Login exchanges a user name and password (scrypt, under the lockout of
server/auth/login) for a normal API token with an 8-hour expiry, stored hashed
like every token and kept by the browser in an HttpOnly, SameSite=Strict
cookie; logout revokes it. Every form carries a CSRF token derived from the
session (HMAC of the cookie), checked on each POST. An agency user sees only its agency: another agency's pages
answer 404, as in the API (`server.access`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.documents import DocumentError
from inventory.rules import RULES
from probes.result import reason_text
from server import access
from server.access import CONSOLE_COOKIE, ConsoleScoped, ConsoleSecurity, Id, Public
from server.agencies.service import codes_by_id
from server.agentdist import service as bundles
from server.alerting import service as alert_service
from server.alerting.models import AlertRecord
from server.audit import service as audit
from server.auth import service as auth
from server.auth.login import LoginError, LoginLockedError, password_login
from server.auth.models import ApiToken
from server.auth.principal import Principal
from server.auth.secrets import token_hash
from server.deps import DbSession, Now, RemoteAddr
from server.duties import service as duties
from server.errors import BadRequestError, ForbiddenError, NotFoundError
from server.findings import service as findings
from server.findings.models import Finding
from server.history.read import HistoryReadError
from server.hosts import service as hosts
from server.hosts.models import Host, LatestSeries
from server.incidents import service as incidents
from server.ingest.models import ObservationRecord
from server.inventory import governance
from server.inventory.models import DeclarationRequest, DeclaredSite, HostEntry
from server.ui import format as ui_format
from server.ui.charts import DEFAULT_ZONE, Chart, humanize, line_chart, ranges, rate
from server.ui.i18n import MESSAGES
from server.ui.metrics_charts import (
    HostCharts,
    ReadHistory,
    embedded_history,
    flow_charts,
    interface_charts,
    tsdb_history,
)
from server.ui.redirect import CONSOLE_HOME, console_return_path

router = APIRouter(prefix="/ui", include_in_schema=False)
root_router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
ui_format.register(templates.env)
templates.env.filters["local_time"] = templates.env.filters["when"]  # the same: in the configured zone, to the second
COOKIE = CONSOLE_COOKIE
log = logging.getLogger(__name__)
SESSION_TTL = timedelta(hours=8)
REPORTING_WINDOW = timedelta(minutes=15)


def _lang(request: Request) -> str:
    lang = request.cookies.get("egovmon_lang")
    if lang in MESSAGES:
        return lang
    return "en" if request.app.state.settings.language == "en" else "zh"


def _csrf(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"egovmon-console-csrf", hashlib.sha256).hexdigest()


def _page(request: Request, name: str, principal: Principal | None, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    token = request.cookies.get(COOKIE, "")
    tz = ui_format.zone(request.app.state.settings.timezone)
    return templates.TemplateResponse(request, name, {"t": MESSAGES[lang], "lang": lang, "tz": tz, "user": principal,
                                                      "csrf": _csrf(token) if token else "", **context})


def _check_csrf(request: Request, csrf: str) -> None:
    token = request.cookies.get(COOKIE, "")
    if not token or not hmac.compare_digest(csrf, _csrf(token)):
        raise ForbiddenError("the form's CSRF token does not match this session", reason="csrf")



ERROR_TEXTS = {403: "error_page_403", 404: "error_page_404", 409: "error_page_409"}


def wants_page(request: Request) -> bool:
    """Whether a refusal should be a readable page rather than JSON: a console address asked for by a browser (it
    sends `Accept: text/html`); scripts calling console addresses, and every API caller, get the JSON body."""
    return request.url.path.startswith("/ui") and "text/html" in request.headers.get("accept", "")


def error_page(request: Request, *, status_code: int, reason: str, detail: str) -> HTMLResponse:
    """A refused console request (403, 404, 409, ...) as a page in the user's language: what happened, the technical
    detail in small print, and the way back. The status code stays the refusal's."""
    t = MESSAGES[_lang(request)]
    key = "error_page_csrf" if reason == "csrf" else ERROR_TEXTS.get(status_code, "error_page_other")
    response = _page(request, "error.html", None, status_code=status_code, message=t[key], reason=reason, detail=detail[:300])
    response.status_code = status_code
    return response


@root_router.get("/", dependencies=[Public])
def root() -> Response:
    """The address `egovmon up` prints: the console."""
    return RedirectResponse(CONSOLE_HOME, status_code=303)


@router.get("/login", response_class=HTMLResponse, dependencies=[Public])
def login_form(request: Request) -> HTMLResponse:
    return _page(request, "login.html", None, error=None)


@router.post("/login", dependencies=[Public])
def login(request: Request, session: DbSession, now: Now, remote: RemoteAddr,
          username: str = Form(""), password: str = Form("")) -> Response:
    """Password login under the lockout of server/auth/login; always back to `/ui` (no `next` parameter to abuse)."""
    try:
        user = password_login(session, username=username, password=password, remote_addr=remote, now=now,
                              metrics=request.app.state.metrics)  # fmt: skip
    except LoginError as exc:
        session.commit()  # the failure counts and its audit events are kept
        locked = isinstance(exc, LoginLockedError)
        refused = _page(request, "login.html", None, error="login_locked" if locked else "bad_login")
        refused.status_code = exc.status_code
        if isinstance(exc, LoginLockedError):
            refused.headers["Retry-After"] = str(exc.retry_after_seconds)
        return refused
    _, secret = auth.create_api_token(session, actor=f"user:{user.username}", user_id=user.id, name="console",
                                      ttl=SESSION_TTL, remote_addr=remote, now=now)  # fmt: skip
    session.commit()
    response = RedirectResponse(CONSOLE_HOME, status_code=303)
    response.set_cookie(COOKIE, secret, max_age=int(SESSION_TTL.total_seconds()), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")  # fmt: skip
    return response


@router.post("/logout", dependencies=[Public])
def logout(request: Request, session: DbSession, now: Now, csrf: str = Form("")) -> Response:
    _check_csrf(request, csrf)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(request.cookies.get(COOKIE, ""))))
    if token is not None:
        auth.revoke_api_token(session, actor="console", token_id=token.id, now=now)
        session.commit()
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/lang/{lang}", dependencies=[Public])
def switch_language(lang: str, request: Request) -> Response:
    back = console_return_path(request.headers.get("referer"), host=request.headers.get("host"))
    response = RedirectResponse(back, status_code=303)
    if lang in MESSAGES:
        response.set_cookie("egovmon_lang", lang, max_age=365 * 86400, samesite="strict", path="/")
    return response


def _host_rows(session: Session, caller: access.Access, now: datetime) -> list[dict[str, Any]]:
    codes = codes_by_id(session)
    return [
        {"id": h.id, "hostname": h.hostname, "agency": codes.get(h.agency_id), "agency_id": h.agency_id, "last_seen": h.last_seen_at,
         "reporting": h.last_seen_at is not None and now - h.last_seen_at <= REPORTING_WINDOW}
        for h in hosts.list_hosts(session, access=caller)
    ]  # fmt: skip


def _local(value: datetime | None) -> str:
    """A time in the console's zone to the second (until the shared presentation filters land)."""
    return value.astimezone(DEFAULT_ZONE).strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def _site_of_hosts(session: Session, rows: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """Host id → (site code, site name) from the declared inventory (host name and agency); unknown: ("", "")."""
    declared = {(e.name, e.agency_id): e.site for e in session.scalars(select(HostEntry).where(HostEntry.site.is_not(None)))}
    names = {s.code: s.name for s in session.scalars(select(DeclaredSite))}
    out = {}
    for row in rows:
        code = declared.get((row["hostname"], row["agency_id"])) or ""
        out[row["id"]] = (code, names.get(code, code))
    return out


@dataclass(slots=True)
class _SiteCounts:
    """One site's line on the NOC wall."""

    name: str
    hosts: int = 0
    silent: int = 0  # hosts not reporting within REPORTING_WINDOW
    devices_up: int = 0
    devices_down: int = 0
    probes_failing: int = 0
    critical: int = 0  # firing alerts by severity
    warning: int = 0
    info: int = 0

    def add_alert(self, severity: str) -> None:
        if severity == "critical":
            self.critical += 1
        elif severity == "warning":
            self.warning += 1
        else:
            self.info += 1


class _Wall:
    """The NOC wall's counts per site (by declared site code), a site's entry made when first counted."""

    SEVERITIES = ("critical", "warning", "info")

    def __init__(self, site_of: dict[int, tuple[str, str]], undeclared: str) -> None:
        self._site_of, self._undeclared = site_of, undeclared
        self.sites: dict[str, _SiteCounts] = {}

    def site(self, host_id: int) -> _SiteCounts:
        code, name = self._site_of.get(host_id, ("", ""))
        return self.sites.setdefault(code, _SiteCounts(name or self._undeclared))

    def count_hosts(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            entry = self.site(row["id"])
            entry.hosts += 1
            entry.silent += int(not row["reporting"])

    def count_devices_and_probes(self, found: list[tuple[LatestSeries, Host]]) -> None:
        """Devices up and down (newest `snmp_device`), probes failing (newest `probe` without success)."""
        for series, host in found:
            entry = self.site(host.id)
            if series.measurement != "snmp_device":
                entry.probes_failing += int(not series.fields.get("success"))
            elif series.fields.get("up"):
                entry.devices_up += 1
            else:
                entry.devices_down += 1

    def count_alerts(self, firing: list[AlertRecord], host_ids: dict[str, int]) -> dict[str, int]:
        """Firing alerts by severity (an unknown one counts as info), on the wall and on the site of their host."""
        by_severity = dict.fromkeys(self.SEVERITIES, 0)
        for alert in firing:
            severity = alert.severity if alert.severity in by_severity else "info"
            by_severity[severity] += 1
            host_id = host_ids.get(str(alert.labels.get("host", "")))
            if host_id is not None:
                self.site(host_id).add_alert(severity)
        return by_severity


def _by_article(open_findings: list[Finding], lang: str) -> list[tuple[str, int]]:
    """How many of `open_findings` fall under each article of the rules, most first."""
    by_article: dict[str, int] = {}
    for f in open_findings:
        article = findings.read(f, agency_code=None, language=lang)["article"]
        by_article[article] = by_article.get(article, 0) + 1
    return sorted(by_article.items(), key=lambda kv: -kv[1])


@router.get("", response_class=HTMLResponse)
def overview(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    """The NOC wall: per site, hosts reporting and silent, devices up and down, probes failing, firing alerts by
    severity; open findings by article. Refreshes itself every 30 seconds."""
    lang = _lang(request)
    rows = _host_rows(session, caller, now)
    wall = _Wall(_site_of_hosts(session, rows), MESSAGES[lang]["site_undeclared"])
    wall.count_hosts(rows)
    wall.count_devices_and_probes(hosts.latest_of(session, access=caller, measurements=("snmp_device", "probe")))
    firing = alert_service.list_alerts(session, access=caller, status="firing")
    by_severity = wall.count_alerts(firing, {row["hostname"]: row["id"] for row in rows})
    open_findings = [f for f in findings.list_findings(session, access=caller) if f.status in ("open", "acknowledged")]
    return _page(request, "overview.html", caller.principal, hosts=rows, reporting=sum(r["reporting"] for r in rows),
                 sites=sorted(wall.sites.values(), key=lambda s: s.name), open_findings=len(open_findings), firing=len(firing),
                 by_severity=by_severity, by_article=_by_article(open_findings, lang), refresh=30)  # fmt: skip


@router.get("/hosts", response_class=HTMLResponse)
def host_list(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    rows = _host_rows(session, caller, now)
    versions = hosts.agent_versions(session, host_ids=[row["id"] for row in rows])
    latest = bundles.latest_version(bundles.bundle_dir(request.app.state.settings))
    for row in rows:  # the agent's version, and the newer one the server's agent bundle would install
        row["agent_version"] = versions.get(row["id"])
        row["upgrade_to"] = latest if bundles.upgrade_available(versions.get(row["id"], ""), latest) else None
    return _page(request, "hosts.html", caller.principal, hosts=rows)


RangeName = Literal["1h", "6h", "24h", "7d"]
HOST_OBSERVATIONS = ("interface_address", "route", "listening_socket", "tunnel")


def _svg(chart: Chart, t: dict[str, str]) -> str:
    return line_chart(chart, no_data=t["no_data"], more=lambda n: t["more_series"].format(n=n))


@router.get("/hosts/{host_id}", response_class=HTMLResponse)
def host_page(host_id: Id, request: Request, session: DbSession, now: Now, caller: ConsoleScoped,
              range: RangeName = "1h") -> HTMLResponse:  # noqa: A002 - the query parameter's name
    """A host: charts over the chosen range (embedded history), its latest addresses, routes, listening services and
    tunnels, its backups and RPO, its findings and alerts."""
    host = hosts.get_host(session, host_id=host_id, access=caller)  # another agency's host: 404
    lang = _lang(request)
    t = MESSAGES[lang]
    codes = codes_by_id(session)
    since = now - ranges()[range]
    read = _history_source(request, session, host, since=since, until=now)
    svgs, history_error = _charts(HostCharts(read, since=since, until=now, t=t).all, t)
    seen = hosts.latest_observations(session, host_id=host_id, kinds=HOST_OBSERVATIONS, limit=1000)
    # The host's own state (netstate); the devices it polls report addresses and routes too, shown on their pages.
    latest = {kind: [o for o in records if o.source != "snmp"][:200] for kind, records in seen.items()}
    backups = [_backup_row(series, t) for series, _ in hosts.latest_of(session, access=caller, measurements=("backup",), host_id=host_id)]
    related = [findings.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)
               for f in findings.list_findings(session, access=caller, agency_id=host.agency_id) if _names_host(f, host)]  # fmt: skip
    alerts = [a for a in alert_service.list_alerts(session, access=caller, open_only=True) if a.labels.get("host") == host.hostname]
    return _page(request, "host.html", caller.principal, host=host, agency=codes.get(host.agency_id), charts=svgs,
                 range=range, ranges=list(ranges()), observations=latest, backups=backups, findings=related, alerts=alerts,
                 last_seen=_local(host.last_seen_at), history_error=history_error)  # fmt: skip


def _backup_row(series: LatestSeries, t: dict[str, str]) -> dict[str, Any]:
    """A backup job's newest state on the host page: within its RPO or not, its age and RPO as durations."""
    return {"job": series.tags.get("job", "-"), "rpo_ok": series.fields.get("rpo_ok"), "age": _duration(series.fields.get("age_seconds"), t),
            "rpo": _duration(series.fields.get("rpo_seconds"), t), "at": _local(datetime.fromtimestamp(series.ts_ns / 1e9, UTC))}  # fmt: skip


def _names_host(finding: Finding, host: Host) -> bool:
    """Whether some evidence of `finding` was seen on `host` (by its host name)."""
    return any(e.get("host") == host.hostname for e in finding.evidence)


def _history_source(request: Request, session: Session, host: Host, *, since: datetime, until: datetime) -> ReadHistory:
    """Where the charts of `host` (or of the devices it polls) come from: the configured TSDB, else the embedded
    history."""
    reader = request.app.state.history_reader
    if reader is None:
        return embedded_history(session, host_id=host.id, since=since, until=until, cache=request.app.state.history_buckets)
    return tsdb_history(reader, hostname=host.hostname, agency=codes_by_id(session).get(host.agency_id), since=since, until=until)


def _charts(build: Callable[[], list[Chart]], t: dict[str, str]) -> tuple[list[str], str]:
    """The charts as SVG, or none and the reason when the TSDB cannot be read (the first failed query stops)."""
    try:
        return [_svg(c, t) for c in build()], ""
    except HistoryReadError as exc:
        log.warning("console charts: %s", exc)
        return [], str(exc)


DEVICE_MEASUREMENTS = ("snmp_device", "snmp_system", "snmp_health", "snmp_processor")


def _device_rows(session: Session, caller: access.Access) -> list[dict[str, Any]]:
    """Every SNMP device polled by a host `caller` sees: status, vendor, uptime, CPU and memory (newest values)."""
    codes = codes_by_id(session)
    found = hosts.latest_of(session, access=caller, measurements=DEVICE_MEASUREMENTS)
    rows = {(host.id, str(series.tags.get("device", "-"))): _device_row(series, host, codes)
            for series, host in found if series.measurement == "snmp_device"}  # fmt: skip
    for series, host in found:
        row = rows.get((host.id, str(series.tags.get("device", "-"))))
        if row is not None:
            _add_device_detail(row, series)
    return sorted(rows.values(), key=lambda d: (d["device"], d["collector"]))


def _device_row(series: LatestSeries, host: Host, codes: dict[int, str]) -> dict[str, Any]:
    """A device's row from its newest `snmp_device` series (the poll's outcome); the details are filled in later."""
    name = str(series.tags.get("device", "-"))
    return {"device": name, "host_id": host.id, "up": bool(series.fields.get("up")),
            "duration": series.fields.get("poll_duration_seconds"), "error": series.fields.get("last_error", ""),
            "collector": host.hostname, "agency": codes.get(host.agency_id), "vendor": "", "uptime": None,
            "cpu": None, "memory": None, "polled": _local(datetime.fromtimestamp(series.ts_ns / 1e9, UTC))}  # fmt: skip


def _add_device_detail(row: dict[str, Any], series: LatestSeries) -> None:
    """Fill `row` from one more series of its device: uptime, vendor, and the busiest CPU and memory (in %)."""
    if series.measurement == "snmp_system":
        row["uptime"] = series.fields.get("uptime_seconds")
    elif series.measurement == "snmp_health":
        row["vendor"] = row["vendor"] or str(series.tags.get("vendor", ""))
        for key, target in (("cpu_percent", "cpu"), ("memory_percent", "memory")):
            _keep_highest(row, target, series.fields.get(key))
    elif series.measurement == "snmp_processor":
        _keep_highest(row, "cpu", series.fields.get("load_percent"))


def _keep_highest(row: dict[str, Any], key: str, value: object) -> None:
    """`row[key]` becomes `value` when it is a number higher than what it holds (or it holds nothing)."""
    if isinstance(value, (int, float)):
        row[key] = max(row[key] or 0.0, float(value))


def _duration(seconds: object, t: dict[str, str]) -> str:
    """Seconds as days, hours and minutes ("3 天 6 小时 12 分"); "—" when unknown."""
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return "—"
    days, rest = divmod(int(seconds), 86400)
    return t["uptime_format"].format(d=days, h=rest // 3600, m=rest % 3600 // 60)


@router.get("/devices", response_class=HTMLResponse)
def device_list(request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    """Network devices polled over SNMP, with the collector host."""
    t = MESSAGES[_lang(request)]
    rows = _device_rows(session, caller)
    for row in rows:
        row["uptime_text"] = _duration(row["uptime"], t)
    return _page(request, "devices.html", caller.principal, devices=rows)


DEVICE_OBSERVATIONS = ("lldp_neighbor", "arp_entry", "route", "interface_address")


@router.get("/devices/{host_id}/{device}", response_class=HTMLResponse)
def device_page(host_id: Id, device: str, request: Request, session: DbSession, now: Now, caller: ConsoleScoped,
                range: RangeName = "1h") -> HTMLResponse:  # noqa: A002 - the query parameter's name
    """One device as polled by one collector host: every interface, charts, LLDP neighbours, ARP and routes."""
    host = hosts.get_host(session, host_id=host_id, access=caller)  # another agency's collector: 404
    row = next((r for r in _device_rows(session, caller) if r["host_id"] == host.id and r["device"] == device), None)
    if row is None:
        raise NotFoundError("no such device", reason="not_found")
    lang = _lang(request)
    t = MESSAGES[lang]
    row["uptime_text"] = _duration(row["uptime"], t)
    interfaces = _interface_rows(session, caller, host_id=host.id, device=device, now=now)
    since = now - ranges()[range]
    read = _history_source(request, session, host, since=since, until=now)
    svgs, history_error = _charts(lambda: interface_charts(read, device=device, since=since, until=now, t=t), t)
    seen = hosts.latest_observations(session, host_id=host.id, kinds=DEVICE_OBSERVATIONS, limit=2000)
    observed = {kind: [o for o in records if o.source == "snmp" and o.attributes.get("device") == device][:300] for kind, records in seen.items()}
    return _page(request, "device.html", caller.principal, d=row, interfaces=interfaces, charts=svgs, range=range, ranges=list(ranges()),
                 observations=observed, humanize=humanize, history_error=history_error)  # fmt: skip


def _interface_rows(session: Session, caller: access.Access, *, host_id: int, device: str, now: datetime) -> list[dict[str, Any]]:
    """The interfaces of `device` by index: their newest state, error and discard counters, and bits per second."""
    interfaces = [_interface_row(series) for series, _ in hosts.latest_of(session, access=caller, measurements=("snmp_interface",),
                                                                          host_id=host_id) if series.tags.get("device") == device]  # fmt: skip
    interfaces.sort(key=lambda i: i["index"])
    rates = _interface_rates(session, host_id=host_id, device=device, now=now)
    for iface in interfaces:
        iface["in_bps"], iface["out_bps"] = rates.get(iface["key"], (None, None))
    return interfaces


def _tag_number(tags: Mapping[str, str], name: str) -> int:
    """A tag that counts (an interface index, a rank) as a number for sorting; 0 when absent or not a number (tag
    values are text an agent chose: one that is not a number must not fail the page)."""
    value = tags.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else 0


def _interface_row(series: LatestSeries) -> dict[str, Any]:
    f = series.fields
    return {"index": _tag_number(series.tags, "if_index"), "name": series.tags.get("if_name", ""),
            "oper_up": f.get("oper_up"), "admin_up": f.get("admin_up"), "speed": f.get("speed_bps"),
            "in_errors": f.get("in_errors_total"), "out_errors": f.get("out_errors_total"),
            "in_discards": f.get("in_discards_total"), "out_discards": f.get("out_discards_total"),
            "key": series.series_key}  # fmt: skip


def _interface_rates(session: Session, *, host_id: int, device: str, now: datetime) -> dict[str, tuple[float | None, float | None]]:
    """In/out bits per second of each interface between its two newest polls in the last hour (64-bit counters)."""
    out: dict[str, tuple[float | None, float | None]] = {}
    histories = hosts.downsampled_history(session, host_id=host_id, measurement="snmp_interface", since=now - timedelta(hours=1),
                                          until=now, buckets=3600)  # fmt: skip
    for key, h in histories.items():
        if h.tags.get("device") != device or len(h.points) < 2:
            continue
        pair = h.points[-2:]
        values = []
        for field in ("in_octets_total", "out_octets_total"):
            name = f"hc_{field}" if f"hc_{field}" in pair[1][1] else field
            got = rate([(ts, value) for ts, f in pair if (value := hosts.number(f, name)) is not None])
            values.append(got[-1][1] * 8 if got else None)
        out[key] = (values[0], values[1])
    return out




@router.get("/probes", response_class=HTMLResponse)
def probe_page(request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    """Every active check's newest result (the `probe` series of the hosts `caller` sees), failing ones first, with
    the reason of its last state change (`probe_state` observations)."""
    lang = _lang(request)
    codes = codes_by_id(session)
    found = hosts.latest_of(session, access=caller, measurements=("probe",))
    query = (select(ObservationRecord).join(Host, Host.id == ObservationRecord.host_id)
             .where(ObservationRecord.kind == "probe_state").order_by(ObservationRecord.id.desc()).limit(5000))  # fmt: skip
    reasons: dict[tuple[int, str], dict[str, Any]] = {}
    for record in session.scalars(access.scoped(Host, access=caller, query=query)):
        reasons.setdefault((record.host_id, record.subject), record.attributes)  # newest first: the first one wins
    rows = []
    for series, host in found:
        check, f = str(series.tags.get("check", "-")), series.fields
        state = reasons.get((host.id, check), {})
        ok = bool(f.get("success"))
        rows.append({"check": check, "kind": series.tags.get("kind", ""), "target": series.tags.get("target", ""), "ok": ok,
                     "duration": f.get("duration_seconds"), "status_code": f.get("http_status_code"),
                     "reason": "" if ok else reason_text(str(state.get("reason", "")), lang) if state.get("reason") else "",
                     "detail": "" if ok else str(state.get("detail", ""))[:300], "host": host.hostname, "host_id": host.id,
                     "agency": codes.get(host.agency_id), "at": datetime.fromtimestamp(series.ts_ns / 1e9, UTC)})  # fmt: skip
    rows.sort(key=lambda r: (r["ok"], r["host"], r["check"]))
    return _page(request, "probes.html", caller.principal, probes=rows, failing=sum(not r["ok"] for r in rows))


UNPLANNED_LISTED = 200  # the newest observations of addresses outside the plan shown on the flows page


FLOW_MEASUREMENTS = ("flow", "flow_interface", "flow_top", "flow_unplanned")


@router.get("/flows", response_class=HTMLResponse)
def flow_page(request: Request, session: DbSession, now: Now, caller: ConsoleScoped,
              range: RangeName = "1h") -> HTMLResponse:  # noqa: A002 - `range`: the query parameter's name
    """Flow aggregates (newest window of each exporter): traffic per interface, top conversations, and traffic to
    and from internal space outside the address plan."""
    found = hosts.latest_of(session, access=caller, measurements=FLOW_MEASUREMENTS)
    exporters = _exporters(found, codes_by_id(session))
    unplanned_subjects = _unplanned_addresses(session, caller)
    svgs = []
    if request.app.state.history is None:
        t = MESSAGES[_lang(request)]
        collectors = sorted({host.id for _, host in found})
        svgs = [_svg(c, t) for c in flow_charts(session, host_ids=collectors, since=now - ranges()[range], until=now, t=t)]
    return _page(request, "flows.html", caller.principal, charts=svgs, range=range, ranges=list(ranges()),
                 exporters=sorted(exporters.values(), key=lambda e: (e["exporter"], e["collector"])),
                 unplanned=unplanned_subjects, unplanned_capped=len(unplanned_subjects) >= UNPLANNED_LISTED, humanize=humanize)  # fmt: skip


def _exporters(found: list[tuple[LatestSeries, Host]], codes: dict[int, str]) -> dict[tuple[int, str], dict[str, Any]]:
    """(collector host id, exporter) → its newest flow aggregates: total, interfaces (busiest first), the newest
    window's top conversations by rank, and traffic outside the address plan."""
    exporters: dict[tuple[int, str], dict[str, Any]] = {}
    for series, host in found:
        name = str(series.tags.get("exporter", "-"))
        entry = exporters.setdefault((host.id, name), {"exporter": name, "collector": host.hostname, "agency": codes.get(host.agency_id),
                                                        "total": None, "interfaces": [], "top": [], "unplanned": []})  # fmt: skip
        _add_flow_series(entry, series)
    for entry in exporters.values():
        newest = max((r["ts"] for r in entry["top"]), default=0)
        entry["top"] = sorted((r for r in entry["top"] if r["ts"] == newest), key=lambda r: r["rank"])  # the newest window's ranking
        entry["interfaces"].sort(key=lambda r: -r["bytes"])
    return exporters


def _add_flow_series(entry: dict[str, Any], series: LatestSeries) -> None:
    """Put one flow series into its exporter's `entry`, by measurement."""
    f, tags = series.fields, series.tags
    if series.measurement == "flow":
        at = _local(datetime.fromtimestamp(series.ts_ns / 1e9, UTC))
        entry["total"] = {"bytes": f.get("bytes"), "packets": f.get("packets"), "flows": f.get("flows"), "at": at}
    elif series.measurement == "flow_interface":
        entry["interfaces"].append({"interface": tags.get("interface_name") or tags.get("interface"), "direction": tags.get("direction"),
                                    "bytes": f.get("bytes", 0), "packets": f.get("packets", 0), "flows": f.get("flows", 0)})  # fmt: skip
    elif series.measurement == "flow_top":
        entry["top"].append({"rank": _tag_number(tags, "rank"), "src": tags.get("src_prefix"), "dst": tags.get("dst_prefix"),
                             "protocol": tags.get("protocol"), "port": tags.get("dst_port"), "bytes": f.get("bytes", 0),
                             "packets": f.get("packets", 0), "flows": f.get("flows", 0), "ts": series.ts_ns})  # fmt: skip
    else:
        entry["unplanned"].append({"direction": tags.get("direction"), "bytes": f.get("bytes", 0), "flows": f.get("flows", 0)})


def _unplanned_addresses(session: Session, caller: access.Access) -> list[ObservationRecord]:
    """The newest observation of each address outside the plan, among the newest UNPLANNED_LISTED, newest first."""
    query = (select(ObservationRecord).join(Host, Host.id == ObservationRecord.host_id)
             .where(ObservationRecord.kind == "flow_unplanned_address").order_by(ObservationRecord.id.desc()).limit(UNPLANNED_LISTED))
    return list({o.subject: o for o in reversed(list(session.scalars(access.scoped(Host, access=caller, query=query))))}.values())[::-1]


# Findings triage -------------------------------------------------------------------------------------

OPEN_TAB = ("open", "acknowledged")  # still to be handled
CLOSED_TAB = ("exempted", "remediated", "false_positive")  # handled one way or another
FindingTab = Literal["open", "closed"]
FindingStatus = Literal["", "open", "acknowledged", "exempted", "remediated", "false_positive"]
FindingAction = Literal["acknowledge", "exempt", "false_positive", "reopen", "declare", "incident"]
TRANSITION_ACTIONS = ("acknowledge", "exempt", "false_positive", "reopen")  # server.findings.service.TRANSITIONS
INCIDENT_STATUSES = ("open", "investigating", "contained", "resolved", "closed")  # server.incidents.models.STATUSES
IncidentStatus = Literal["open", "investigating", "contained", "resolved", "closed"]
# The labels an alert's silence form matches on: enough to name this alert only (a finding alert by its finding
# and agency, not every finding alert); values with spaces are left out (the form's matchers are space-separated).
SILENCE_LABELS = ("alertname", "host", "device", "check", "job", "agency", "finding_id")
SILENCE_PRESETS = (("minutes_30", 30), ("hours_1", 60), ("hours_2", 120), ("hours_4", 240), ("hours_8", 480),
                   ("hours_24", 1440), ("days_7", 10080))  # fmt: skip
TRIAGE_ERRORS = ("bad_transition", "approval_ref_required", "not_declarable")
DECLARABLE_RULES = ("undeclared_network",)  # its subject is a prefix the agency can ask to declare
DECLARERS = ("admin", "agency")  # server.inventory.service._authorize: NOC and security only read the plan
MAX_LISTED = 1000  # findings read for one page; the filters narrow within these


def _host_sites(session: Session, caller: access.Access) -> dict[tuple[int, str], str]:
    """(agency id, declared host name) → its site code, for the hosts `caller` may see (the site filter)."""
    query = access.scoped(HostEntry, access=caller).where(HostEntry.site.is_not(None)).limit(MAX_LISTED * 10)
    return {(h.agency_id, h.name): h.site for h in session.scalars(query) if h.site is not None}


def _rule_choices(lang: str) -> list[tuple[str, str]]:
    """(rule id, its title without the subject) for the rule filter."""
    return sorted((rule.id, rule.text(lang, "")["title"].rstrip("：: ")) for rule in RULES.values())


def _article_choices(lang: str) -> list[str]:
    return sorted({rule.text(lang, "")["article"] for rule in RULES.values()})


@router.get("/findings", response_class=HTMLResponse)
def finding_list(
    request: Request, session: DbSession, caller: ConsoleScoped, tab: FindingTab = "open", status: FindingStatus = "",
    agency: str = Query("", max_length=64), rule: str = Query("", max_length=64), article: str = Query("", max_length=100),
    min_confidence: float = Query(0, ge=0, le=1), q: str = Query("", max_length=100), site: str = Query("", max_length=64),
) -> HTMLResponse:
    """Findings in two tabs (open: open and acknowledged; closed: the rest), filtered by agency (platform roles),
    status, rule, article, confidence and a search over subject and title. An agency user sees only its own."""
    codes = codes_by_id(session)
    lang = _lang(request)
    sites = _host_sites(session, caller)
    platform = not caller.scoped  # platform roles choose the agency and see subjects shared across agencies
    agency_id = _agency_id(codes, agency) if agency and platform else None
    statuses = OPEN_TAB if tab == "open" else CLOSED_TAB
    listed = findings.list_findings(session, access=caller, agency_id=agency_id, status=status or None, rule_id=rule or None,
                                    statuses=statuses, limit=MAX_LISTED)  # fmt: skip
    rows = _matching_rows(listed, codes=codes, lang=lang, min_confidence=min_confidence, article=article, q=q, site=site,
                          sites=sites)  # fmt: skip
    chosen = {"tab": tab, "status": status, "agency": agency, "rule": rule, "article": article, "q": q, "site": site,
              "min_confidence": min_confidence}  # fmt: skip
    return _page(request, "findings.html", caller.principal, findings=rows, chosen=chosen,
                 shared=findings.shared_subjects(session, language=lang) if platform else None,
                 agencies=sorted(codes.values()) if platform else [], rules=_rule_choices(lang), articles=_article_choices(lang),
                 sites=sorted(set(sites.values())), statuses=statuses)  # fmt: skip


def _agency_id(codes: dict[int, str], agency: str) -> int:
    """The id of the agency with code `agency`; -1 (matches nothing) when there is none."""
    return next((i for i, code in codes.items() if code == agency), -1)


def _matching_rows(listed: list[Finding], *, codes: dict[int, str], lang: str, min_confidence: float, article: str, q: str,
                   site: str, sites: dict[tuple[int, str], str]) -> list[findings.FindingView]:
    """The findings of `listed` that pass the page's other filters (confidence, article, search, site), as read."""
    rows = []
    for f in listed:
        if f.confidence < min_confidence:
            continue
        row = findings.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)
        if _row_matches(row, article=article, q=q) and (not site or _at_site(f, site, sites)):
            rows.append(row)
    return rows


def _row_matches(row: findings.FindingView, *, article: str, q: str) -> bool:
    """Whether a finding as read passes the article filter and the search `q` over its subject and title."""
    if article and row["article"] != article:
        return False
    return not q or q.lower() in f"{row['subject']} {row['title']}".lower()


def _at_site(finding: Finding, site: str, sites: dict[tuple[int, str], str]) -> bool:
    """Whether some evidence of `finding` names a host declared at `site` (a finding of no agency is at none)."""
    agency_id = finding.agency_id
    return agency_id is not None and any(sites.get((agency_id, str(e.get("host")))) == site for e in finding.evidence)


def _evidence_by_source(evidence: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The evidence chain: grouped by source (netstate, snmp, flows...), oldest observation first in each."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in evidence:
        groups.setdefault(str(item.get("source") or "-"), []).append(item)
    return [(source, sorted(items, key=lambda e: str(e.get("observed_at") or ""))) for source, items in sorted(groups.items())]


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def finding_page(finding_id: Id, request: Request, session: DbSession, caller: ConsoleScoped,
                 error: str = Query("", max_length=64), done: str = Query("", max_length=64)) -> HTMLResponse:
    """One finding; another agency's answers 404 as in the API. Platform roles also see the same subject elsewhere.

    The triage actions the caller's role may take from the finding's status (the API's rules in
    `server.findings.service.TRANSITIONS`) are offered, each behind a confirmation; its history is the audit log."""
    found = access.get(session, Finding, finding_id, access=caller, what="finding")
    links = findings.related(session, [found]).get(found.id) if not caller.scoped else None
    row = findings.read(found, agency_code=codes_by_id(session).get(found.agency_id or -1), language=_lang(request), related=links)
    history = [e for e in audit.list_events(session, target_type="finding", target_id=str(found.id), limit=100)]
    return _page(request, "finding.html", caller.principal, f=row, evidence=_evidence_by_source(found.evidence),
                 actions=_finding_actions(found, caller.principal.role), history=history,
                 error=error if error in TRIAGE_ERRORS else "", done=done if done in get_args(FindingAction) else "")  # fmt: skip


def _finding_actions(found: Finding, role: str) -> list[str]:
    """The triage actions `role` may take on `found` in its status: the API's transitions, then declaring its
    network (an agency's undeclared network) and opening an incident (while it is open)."""
    actions = [name for name in TRANSITION_ACTIONS
               if role in findings.TRANSITIONS[name][2] and found.status in findings.TRANSITIONS[name][0]]  # fmt: skip
    if found.status not in OPEN_TAB:
        return actions
    if role in DECLARERS and found.rule_id in DECLARABLE_RULES and found.agency_id is not None:
        actions.append("declare")
    return [*actions, "incident"]


@router.post("/findings/{finding_id}/{action}")
def finding_action(finding_id: Id, action: FindingAction, request: Request, session: DbSession, now: Now, remote: RemoteAddr,
                   caller: ConsoleScoped, csrf: str = Form(""), approval_ref: str = Form("", max_length=200),
                   note: str = Form("", max_length=2000)) -> Response:
    """The API's actions on a finding (same roles, same audit events), from the finding page's confirmed forms:
    acknowledge, exempt, false_positive and reopen (POST /api/v1/findings/{id}/{action}), declare (POST /api/v1/inventory/requests for the
    finding's network) and incident (POST /api/v1/incidents with the finding)."""
    _check_csrf(request, csrf)
    found = access.get(session, Finding, finding_id, access=caller, what="finding")  # another agency's: 404
    page = f"/ui/findings/{finding_id}"
    try:
        if action == "incident":
            incident = incidents.create(session, access=caller, now=now, title=None, severity=None, finding_id=found.id,
                                        remote_addr=remote)  # fmt: skip
            session.commit()
            return RedirectResponse(f"/ui/incidents/{incident.id}", status_code=303)
        if action == "declare":
            if found.rule_id not in DECLARABLE_RULES or found.agency_id is None:
                raise BadRequestError("only an undeclared network of an agency can be declared", reason="not_declarable")
            code = codes_by_id(session)[found.agency_id]
            governance.submit(session, kind_name="address_plan", raw={"prefix": found.subject, "agency": code},
                              note=note.strip() or f"finding #{found.id}", principal=caller.principal, now=now, remote_addr=remote)  # fmt: skip
            session.commit()
            return RedirectResponse(f"{page}?done=declare", status_code=303)
        change = findings.transition(session, finding=found, action=action, principal=caller.principal, now=now,
                                     approval_ref=approval_ref.strip() or None, note=note.strip(), remote_addr=remote)  # fmt: skip
    except (BadRequestError, DocumentError) as exc:  # a stale page, no approval reference, a bad prefix: say so there
        session.rollback()
        return RedirectResponse(f"{page}?error={getattr(exc, 'reason', 'not_declarable')}", status_code=303)
    session.commit()
    for sink in request.app.state.hooks.finding_sinks:  # as the API does: alerting hears of the change
        sink.findings_changed([change])
    return RedirectResponse(f"{page}?done={action}", status_code=303)


@router.get("/alerts", response_class=HTMLResponse)
def alert_list(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    lang = _lang(request)
    rows = []
    alerts = alert_service.list_alerts(session, access=caller, open_only=True)
    deliveries = alert_service.latest_deliveries(session, {a.fingerprint for a in alerts})
    for a in alerts:
        summary = a.annotations.get("summary_zh" if lang == "zh" else "summary_en") or a.alertname
        rows.append({"fingerprint": a.fingerprint, "summary": summary, "severity": a.severity, "agency": a.agency_code,
                     "fired_at": a.fired_at, "active_since": a.active_since, "status": a.status, "matchers": _silence_matchers(a),
                     "acknowledged_by": a.acknowledged_by, "lacking_data": a.lacking_data,
                     "deliveries": [{"receiver": n.receiver, "status": n.status, "attempts": n.attempts, "last_error": n.last_error}
                                    for n in deliveries.get(a.fingerprint, [])]})  # fmt: skip
    silences = alert_service.list_silences(session, access=caller, now=now)
    return _page(request, "alerts.html", caller.principal, alerts=rows, silences=silences, presets=SILENCE_PRESETS)


def _silence_matchers(alert: AlertRecord) -> str:
    """The silence form's preset matchers for `alert`: `label=value` of SILENCE_LABELS, space-separated."""
    return " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())
                    if k in SILENCE_LABELS and v and not any(c.isspace() for c in str(v)))  # fmt: skip


@router.post("/silences")
def create_silence(request: Request, session: DbSession, now: Now, remote: RemoteAddr, caller: ConsoleScoped, csrf: str = Form(""),
                   matchers: str = Form(""), minutes: float = Form(60), comment: str = Form("")) -> Response:
    """The API's silence, from the alerts page (an agency user's silence is limited to its agency there)."""
    _check_csrf(request, csrf)
    alert_service.create_silence(session, access=caller, matchers=matchers.split(), minutes=minutes, comment=comment, now=now,
                                 remote_addr=remote)  # fmt: skip
    session.commit()
    return RedirectResponse("/ui/alerts", status_code=303)


@router.post("/alerts/{fingerprint}/acknowledge")
def acknowledge(fingerprint: str, request: Request, session: DbSession, now: Now, remote: RemoteAddr, caller: ConsoleScoped,
                csrf: str = Form("")) -> Response:
    _check_csrf(request, csrf)
    record = alert_service.get_alert(session, access=caller, fingerprint=fingerprint)  # another agency's: 404
    if record.status == "firing" and record.acknowledged_at is None:
        alert_service.acknowledge(session, record, principal=caller.principal, now=now, remote_addr=remote)
        session.commit()
    return RedirectResponse("/ui/alerts", status_code=303)


@router.get("/incidents", response_class=HTMLResponse)
def incident_list(request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    return _page(request, "incidents.html", caller.principal, incidents=incidents.list_incidents(session, access=caller))


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(incident_id: Id, request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    """One incident: its timeline (notes, status changes, evidence) with the hash chain's check, and the forms that
    add a note and change the status (POST .../timeline and .../status of the API, same policy)."""
    incident = incidents.get(session, incident_id=incident_id, access=caller)  # another agency's: 404
    entries = incidents.timeline(session, incident.id)
    intact, _ = incidents.verify(entries)
    return _page(request, "incident.html", caller.principal, incident=incident, timeline=entries, intact=intact,
                 statuses=INCIDENT_STATUSES)  # fmt: skip


@router.post("/incidents/{incident_id}/timeline")
def incident_note(incident_id: Id, request: Request, session: DbSession, now: Now, caller: ConsoleScoped, csrf: str = Form(""),
                  text: str = Form("", max_length=20000)) -> Response:
    _check_csrf(request, csrf)
    incident = incidents.get(session, incident_id=incident_id, access=caller)
    if not text.strip():
        raise BadRequestError("a note needs text", reason="empty_note")
    incidents.append(session, incident, actor=caller.actor, kind="note", text=text.strip(), data={}, at=now)
    session.commit()
    return RedirectResponse(f"/ui/incidents/{incident_id}", status_code=303)


@router.post("/incidents/{incident_id}/status")
def incident_status(incident_id: Id, request: Request, session: DbSession, now: Now, caller: ConsoleScoped, csrf: str = Form(""),
                    status: IncidentStatus = Form(...), note: str = Form("", max_length=2000)) -> Response:
    _check_csrf(request, csrf)
    incident = incidents.get(session, incident_id=incident_id, access=caller)
    incidents.set_status(session, incident, status=status, principal=caller.principal, now=now, note=note.strip())
    session.commit()
    return RedirectResponse(f"/ui/incidents/{incident_id}", status_code=303)


@router.get("/scorecard", response_class=HTMLResponse)
def scorecard(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    codes = codes_by_id(session)
    return _page(request, "scorecard.html", caller.principal, rows=duties.scorecard(session, now=now, access=caller),
                 duties=[duties.read(d, codes, now) for d in duties.list_duties(session, access=caller)])


# Declaration requests (Article 9) -------------------------------------------------------------------


@router.get("/requests", response_class=HTMLResponse)
def request_list(request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    """Declaration requests: pending first; approvers (admin, security) get approve and reject forms."""
    codes = codes_by_id(session)
    rows = [governance.read(r, codes) for r in governance.list_requests(session, access=caller)]
    rows.sort(key=lambda r: r["status"] != governance.PENDING)  # stable: newest first within each group
    return _page(request, "requests.html", caller.principal, requests=rows,
                 approver=caller.principal.role in governance.APPROVERS)


@router.post("/requests/{request_id}/approve")
def approve_request(request_id: Id, request: Request, session: DbSession, now: Now, remote: RemoteAddr, caller: ConsoleSecurity,
                    csrf: str = Form(""), approval_ref: str = Form(""), note: str = Form("")) -> Response:
    """The API's approval, from the requests page."""
    _check_csrf(request, csrf)
    found = access.get(session, DeclarationRequest, request_id, access=caller, what="request")
    governance.approve(session, request=found, approval_ref=approval_ref[:200], note=note, principal=caller.principal, now=now,
                       remote_addr=remote)  # fmt: skip
    session.commit()
    return RedirectResponse("/ui/requests", status_code=303)


@router.post("/requests/{request_id}/reject")
def reject_request(request_id: Id, request: Request, session: DbSession, now: Now, remote: RemoteAddr, caller: ConsoleSecurity,
                   csrf: str = Form(""), note: str = Form("")) -> Response:
    """The API's rejection, from the requests page."""
    _check_csrf(request, csrf)
    found = access.get(session, DeclarationRequest, request_id, access=caller, what="request")
    governance.reject(session, request=found, note=note, principal=caller.principal, now=now, remote_addr=remote)
    session.commit()
    return RedirectResponse("/ui/requests", status_code=303)
