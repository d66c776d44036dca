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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from server import access
from server.access import CONSOLE_COOKIE, ConsoleScoped, ConsoleSecurity, Id, Public
from server.agencies.service import codes_by_id
from server.alerting import service as alert_service
from server.auth import service as auth
from server.auth.login import LoginError, LoginLockedError, password_login
from server.auth.models import ApiToken
from server.auth.principal import Principal
from server.auth.secrets import token_hash
from server.deps import DbSession, Now, RemoteAddr
from server.duties import service as duties
from server.errors import ForbiddenError, NotFoundError
from server.findings import service as findings
from server.findings.models import Finding
from server.hosts import service as hosts
from server.hosts.models import Host
from server.incidents import service as incidents
from server.ingest.models import ObservationRecord
from server.inventory import governance
from server.inventory.models import DeclarationRequest, DeclaredSite, HostEntry
from server.ui.charts import DEFAULT_ZONE, Chart, humanize, line_chart, ranges, rate
from server.ui.i18n import MESSAGES
from server.ui.metrics_charts import HostCharts, flow_charts, interface_charts
from server.ui.redirect import CONSOLE_HOME, console_return_path

router = APIRouter(prefix="/ui", include_in_schema=False)
root_router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["local_time"] = lambda value: _local(value)
COOKIE = CONSOLE_COOKIE
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
    return templates.TemplateResponse(request, name, {"t": MESSAGES[lang], "lang": lang, "user": principal,
                                                      "csrf": _csrf(token) if token else "", **context})


def _check_csrf(request: Request, csrf: str) -> None:
    token = request.cookies.get(COOKIE, "")
    if not token or not hmac.compare_digest(csrf, _csrf(token)):
        raise ForbiddenError("the form's CSRF token does not match this session", reason="csrf")



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
        response = _page(request, "login.html", None, error="login_locked" if locked else "bad_login")
        response.status_code = exc.status_code
        if isinstance(exc, LoginLockedError):
            response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
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


@router.get("", response_class=HTMLResponse)
def overview(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    """The NOC wall: per site, hosts reporting and silent, devices up and down, probes failing, firing alerts by
    severity; open findings by article. Refreshes itself every 30 seconds."""
    t = MESSAGES[_lang(request)]
    rows = _host_rows(session, caller, now)
    site_of = _site_of_hosts(session, rows)
    sites: dict[str, dict[str, Any]] = {}

    def site(host_id: int) -> dict[str, Any]:
        code, name = site_of.get(host_id, ("", ""))
        return sites.setdefault(code, {"name": name or t["site_undeclared"], "hosts": 0, "silent": 0, "devices_up": 0,
                                       "devices_down": 0, "probes_failing": 0, "critical": 0, "warning": 0, "info": 0})  # fmt: skip

    for row in rows:
        entry = site(row["id"])
        entry["hosts"] += 1
        entry["silent"] += int(not row["reporting"])
    for series, host in hosts.latest_of(session, access=caller, measurements=("snmp_device", "probe")):
        entry = site(host.id)
        if series.measurement == "snmp_device":
            entry["devices_up" if series.fields.get("up") else "devices_down"] += 1
        elif not series.fields.get("success"):
            entry["probes_failing"] += 1
    host_ids = {row["hostname"]: row["id"] for row in rows}
    firing = alert_service.list_alerts(session, access=caller, status="firing")
    by_severity = {"critical": 0, "warning": 0, "info": 0}
    for alert in firing:
        severity = alert.severity if alert.severity in by_severity else "info"
        by_severity[severity] += 1
        host_id = host_ids.get(str(alert.labels.get("host", "")))
        if host_id is not None:
            site(host_id)[severity] += 1
    open_findings = [f for f in findings.list_findings(session, access=caller) if f.status in ("open", "acknowledged")]
    by_article: dict[str, int] = {}
    lang = _lang(request)
    for f in open_findings:
        article = findings.read(f, agency_code=None, language=lang)["article"]
        by_article[article] = by_article.get(article, 0) + 1
    return _page(request, "overview.html", caller.principal, hosts=rows, reporting=sum(r["reporting"] for r in rows),
                 sites=sorted(sites.values(), key=lambda s: s["name"]), open_findings=len(open_findings), firing=len(firing),
                 by_severity=by_severity, by_article=sorted(by_article.items(), key=lambda kv: -kv[1]), refresh=30)  # fmt: skip


@router.get("/hosts", response_class=HTMLResponse)
def host_list(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    return _page(request, "hosts.html", caller.principal, hosts=_host_rows(session, caller, now))


RangeName = Literal["1h", "6h", "24h", "7d"]
HOST_OBSERVATIONS = ("interface_address", "route", "listening_socket", "tunnel")


def _svg(chart: Chart, t: dict[str, str]) -> str:
    return line_chart(chart, no_data=t["no_data"], more=lambda n: t["more_series"].format(n=n))


@router.get("/hosts/{host_id}", response_class=HTMLResponse)
def host_page(host_id: Id, request: Request, session: DbSession, now: Now, caller: ConsoleScoped,
              range: RangeName = "1h") -> HTMLResponse:
    """A host: charts over the chosen range (embedded history), its latest addresses, routes, listening services and
    tunnels, its backups and RPO, its findings and alerts."""
    host = hosts.get_host(session, host_id=host_id, access=caller)  # another agency's host: 404
    lang = _lang(request)
    t = MESSAGES[lang]
    svgs: list[str] = []
    if request.app.state.history is None:
        charts = HostCharts(session, host_id=host_id, since=now - ranges()[range], until=now, t=t)
        svgs = [_svg(c, t) for c in charts.all()]
    seen = hosts.latest_observations(session, host_id=host_id, kinds=HOST_OBSERVATIONS, limit=1000)
    # The host's own state (netstate); the devices it polls report addresses and routes too, shown on their pages.
    latest = {kind: [o for o in records if o.source != "snmp"][:200] for kind, records in seen.items()}
    backups = [{"job": s.tags.get("job", "-"), "rpo_ok": s.fields.get("rpo_ok"), "age": _duration(s.fields.get("age_seconds"), t),
                "rpo": _duration(s.fields.get("rpo_seconds"), t), "at": _local(datetime.fromtimestamp(s.ts_ns / 1e9, UTC))}
               for s, _ in hosts.latest_of(session, access=caller, measurements=("backup",), host_id=host_id)]  # fmt: skip
    codes = codes_by_id(session)
    related = [findings.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)
               for f in findings.list_findings(session, access=caller, agency_id=host.agency_id)
               if any(e.get("host") == host.hostname for e in f.evidence)]  # fmt: skip
    alerts = [a for a in alert_service.list_alerts(session, access=caller, open_only=True) if a.labels.get("host") == host.hostname]
    return _page(request, "host.html", caller.principal, host=host, agency=codes.get(host.agency_id), charts=svgs,
                 range=range, ranges=list(ranges()), observations=latest, backups=backups, findings=related, alerts=alerts,
                 last_seen=_local(host.last_seen_at), in_tsdb=request.app.state.history is not None)  # fmt: skip


def _device_rows(session: Session, caller: access.Access) -> list[dict[str, Any]]:
    """Every SNMP device polled by a host `caller` sees: status, vendor, uptime, CPU and memory (newest values)."""
    codes = codes_by_id(session)
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    found = hosts.latest_of(session, access=caller, measurements=("snmp_device", "snmp_system", "snmp_health", "snmp_processor"))
    for series, host in found:
        if series.measurement != "snmp_device":
            continue
        name = str(series.tags.get("device", "-"))
        rows[(host.id, name)] = {"device": name, "host_id": host.id, "up": bool(series.fields.get("up")),
                                 "duration": series.fields.get("poll_duration_seconds"), "error": series.fields.get("last_error", ""),
                                 "collector": host.hostname, "agency": codes.get(host.agency_id), "vendor": "", "uptime": None,
                                 "cpu": None, "memory": None, "polled": _local(datetime.fromtimestamp(series.ts_ns / 1e9, UTC))}  # fmt: skip
    for series, host in found:
        row = rows.get((host.id, str(series.tags.get("device", "-"))))
        if row is None:
            continue
        if series.measurement == "snmp_system":
            row["uptime"] = series.fields.get("uptime_seconds")
        elif series.measurement == "snmp_health":
            row["vendor"] = row["vendor"] or str(series.tags.get("vendor", ""))
            for key, target in (("cpu_percent", "cpu"), ("memory_percent", "memory")):
                if isinstance(series.fields.get(key), (int, float)):
                    row[target] = max(row[target] or 0.0, float(series.fields[key]))
        elif series.measurement == "snmp_processor" and isinstance(series.fields.get("load_percent"), (int, float)):
            row["cpu"] = max(row["cpu"] or 0.0, float(series.fields["load_percent"]))
    return sorted(rows.values(), key=lambda d: (d["device"], d["collector"]))


def _duration(seconds: Any, t: dict[str, str]) -> str:
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
                range: RangeName = "1h") -> HTMLResponse:
    """One device as polled by one collector host: every interface, charts, LLDP neighbours, ARP and routes."""
    host = hosts.get_host(session, host_id=host_id, access=caller)  # another agency's collector: 404
    row = next((r for r in _device_rows(session, caller) if r["host_id"] == host.id and r["device"] == device), None)
    if row is None:
        raise NotFoundError("no such device", reason="not_found")
    lang = _lang(request)
    t = MESSAGES[lang]
    row["uptime_text"] = _duration(row["uptime"], t)
    interfaces = []
    for series, _ in hosts.latest_of(session, access=caller, measurements=("snmp_interface",), host_id=host.id):
        if series.tags.get("device") != device:
            continue
        f = series.fields
        interfaces.append({"index": int(series.tags.get("if_index", 0) or 0), "name": series.tags.get("if_name", ""),
                           "oper_up": f.get("oper_up"), "admin_up": f.get("admin_up"), "speed": f.get("speed_bps"),
                           "in_errors": f.get("in_errors_total"), "out_errors": f.get("out_errors_total"),
                           "in_discards": f.get("in_discards_total"), "out_discards": f.get("out_discards_total"),
                           "key": series.series_key})  # fmt: skip
    interfaces.sort(key=lambda i: i["index"])
    rates = _interface_rates(session, host_id=host.id, device=device, now=now)
    for iface in interfaces:
        iface["in_bps"], iface["out_bps"] = rates.get(iface["key"], (None, None))
    svgs = []
    if request.app.state.history is None:
        svgs = [_svg(c, t) for c in interface_charts(session, host_id=host.id, device=device, since=now - ranges()[range], until=now, t=t)]
    seen = hosts.latest_observations(session, host_id=host.id, kinds=DEVICE_OBSERVATIONS, limit=2000)
    observed = {kind: [o for o in records if o.source == "snmp" and o.attributes.get("device") == device][:300] for kind, records in seen.items()}
    return _page(request, "device.html", caller.principal, d=row, interfaces=interfaces, charts=svgs, range=range, ranges=list(ranges()),
                 observations=observed, humanize=humanize)  # fmt: skip


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
            got = rate([(ts, float(f[name])) for ts, f in pair if isinstance(f.get(name), (int, float))])
            values.append(got[-1][1] * 8 if got else None)
        out[key] = (values[0], values[1])
    return out


UNPLANNED_LISTED = 200  # the newest observations of addresses outside the plan shown on the flows page


@router.get("/flows", response_class=HTMLResponse)
def flow_page(request: Request, session: DbSession, now: Now, caller: ConsoleScoped,
              range: RangeName = "1h") -> HTMLResponse:  # `range`: the query parameter's name
    """Flow aggregates (newest window of each exporter): traffic per interface, top conversations, and traffic to
    and from internal space outside the address plan."""
    codes = codes_by_id(session)
    exporters: dict[tuple[int, str], dict[str, Any]] = {}
    found = hosts.latest_of(session, access=caller, measurements=("flow", "flow_interface", "flow_top", "flow_unplanned"))
    for series, host in found:
        name = str(series.tags.get("exporter", "-"))
        entry = exporters.setdefault((host.id, name), {"exporter": name, "collector": host.hostname, "agency": codes.get(host.agency_id),
                                                        "total": None, "interfaces": [], "top": [], "unplanned": []})  # fmt: skip
        f, tags = series.fields, series.tags
        at = _local(datetime.fromtimestamp(series.ts_ns / 1e9, UTC))
        if series.measurement == "flow":
            entry["total"] = {"bytes": f.get("bytes"), "packets": f.get("packets"), "flows": f.get("flows"), "at": at}
        elif series.measurement == "flow_interface":
            entry["interfaces"].append({"interface": tags.get("interface_name") or tags.get("interface"), "direction": tags.get("direction"),
                                        "bytes": f.get("bytes", 0), "packets": f.get("packets", 0), "flows": f.get("flows", 0)})  # fmt: skip
        elif series.measurement == "flow_top":
            entry["top"].append({"rank": int(tags.get("rank", 0) or 0), "src": tags.get("src_prefix"), "dst": tags.get("dst_prefix"),
                                 "protocol": tags.get("protocol"), "port": tags.get("dst_port"), "bytes": f.get("bytes", 0),
                                 "packets": f.get("packets", 0), "flows": f.get("flows", 0), "ts": series.ts_ns})  # fmt: skip
        else:
            entry["unplanned"].append({"direction": tags.get("direction"), "bytes": f.get("bytes", 0), "flows": f.get("flows", 0)})
    for entry in exporters.values():
        newest = max((r["ts"] for r in entry["top"]), default=0)
        entry["top"] = sorted((r for r in entry["top"] if r["ts"] == newest), key=lambda r: r["rank"])  # the newest window's ranking
        entry["interfaces"].sort(key=lambda r: -r["bytes"])
    query = (select(ObservationRecord).join(Host, Host.id == ObservationRecord.host_id)
             .where(ObservationRecord.kind == "flow_unplanned_address").order_by(ObservationRecord.id.desc()).limit(UNPLANNED_LISTED))
    unplanned_subjects = list({o.subject: o for o in reversed(list(session.scalars(access.scoped(Host, access=caller, query=query))))}.values())[::-1]
    svgs = []
    if request.app.state.history is None:
        t = MESSAGES[_lang(request)]
        collectors = sorted({host.id for _, host in found})
        svgs = [_svg(c, t) for c in flow_charts(session, host_ids=collectors, since=now - ranges()[range], until=now, t=t)]
    return _page(request, "flows.html", caller.principal, charts=svgs, range=range, ranges=list(ranges()), exporters=sorted(exporters.values(), key=lambda e: (e["exporter"], e["collector"])),
                 unplanned=unplanned_subjects, unplanned_capped=len(unplanned_subjects) >= UNPLANNED_LISTED, humanize=humanize)  # fmt: skip


@router.get("/findings", response_class=HTMLResponse)
def finding_list(request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    codes = codes_by_id(session)
    lang = _lang(request)
    rows = [findings.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)
            for f in findings.list_findings(session, access=caller)]  # fmt: skip
    shared = findings.shared_subjects(session, language=lang) if not caller.scoped else None  # platform roles only
    return _page(request, "findings.html", caller.principal, findings=rows, shared=shared)


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def finding_page(finding_id: Id, request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    """One finding; another agency's answers 404 as in the API. Platform roles also see the same subject elsewhere."""
    found = access.get(session, Finding, finding_id, access=caller, what="finding")
    links = findings.related(session, [found]).get(found.id) if not caller.scoped else None
    row = findings.read(found, agency_code=codes_by_id(session).get(found.agency_id or -1), language=_lang(request), related=links)
    return _page(request, "finding.html", caller.principal, f=row)


@router.get("/alerts", response_class=HTMLResponse)
def alert_list(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    lang = _lang(request)
    rows = []
    alerts = alert_service.list_alerts(session, access=caller, open_only=True)
    deliveries = alert_service.latest_deliveries(session, {a.fingerprint for a in alerts})
    for a in alerts:
        summary = a.annotations.get("summary_zh" if lang == "zh" else "summary_en") or a.alertname
        matchers = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k in ("alertname", "host", "device", "check", "job"))
        rows.append({"fingerprint": a.fingerprint, "summary": summary, "severity": a.severity, "agency": a.agency_code,
                     "fired_at": a.fired_at, "active_since": a.active_since, "status": a.status, "matchers": matchers,
                     "acknowledged_by": a.acknowledged_by, "lacking_data": a.lacking_data,
                     "deliveries": [{"receiver": n.receiver, "status": n.status, "attempts": n.attempts, "last_error": n.last_error}
                                    for n in deliveries.get(a.fingerprint, [])]})  # fmt: skip
    silences = alert_service.list_silences(session, access=caller, now=now)
    return _page(request, "alerts.html", caller.principal, alerts=rows, silences=silences)


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
