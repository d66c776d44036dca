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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.documents import DocumentError
from inventory.rules import RULES
from server import access
from server.access import CONSOLE_COOKIE, ConsoleScoped, ConsoleSecurity, Id, Public
from server.agencies.service import codes_by_id
from server.alerting import service as alert_service
from server.audit import service as audit
from server.auth import service as auth
from server.auth.login import LoginError, LoginLockedError, password_login
from server.auth.models import ApiToken
from server.auth.principal import Principal
from server.auth.secrets import token_hash
from server.deps import DbSession, Now, RemoteAddr
from server.duties import service as duties
from server.errors import BadRequestError, ForbiddenError
from server.findings import service as findings
from server.findings.models import Finding
from server.hosts import service as hosts
from server.incidents import service as incidents
from server.inventory import governance
from server.inventory.models import DeclarationRequest, HostEntry
from server.ui import format as ui_format
from server.ui.i18n import MESSAGES
from server.ui.redirect import CONSOLE_HOME, console_return_path

router = APIRouter(prefix="/ui", include_in_schema=False)
root_router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
ui_format.register(templates.env)
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
    tz = ui_format.zone(request.app.state.settings.timezone)
    return templates.TemplateResponse(request, name, {"t": MESSAGES[lang], "lang": lang, "tz": tz, "user": principal,
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
        {"id": h.id, "hostname": h.hostname, "agency": codes.get(h.agency_id), "last_seen": h.last_seen_at,
         "reporting": h.last_seen_at is not None and now - h.last_seen_at <= REPORTING_WINDOW}
        for h in hosts.list_hosts(session, access=caller)
    ]  # fmt: skip


@router.get("", response_class=HTMLResponse)
def overview(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    rows = _host_rows(session, caller, now)
    by_agency: dict[str, list[int]] = {}
    for row in rows:
        counts = by_agency.setdefault(row["agency"] or "-", [0, 0])
        counts[0] += 1
        counts[1] += int(row["reporting"])
    open_findings = [f for f in findings.list_findings(session, access=caller) if f.status in ("open", "acknowledged")]
    firing = alert_service.list_alerts(session, access=caller, status="firing")
    return _page(request, "overview.html", caller.principal, hosts=rows, reporting=sum(r["reporting"] for r in rows),
                 by_agency=by_agency, open_findings=len(open_findings), firing=len(firing))  # fmt: skip


@router.get("/hosts", response_class=HTMLResponse)
def host_list(request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    return _page(request, "hosts.html", caller.principal, hosts=_host_rows(session, caller, now))


def sparkline(values: list[float], width: int = 320, height: int = 48) -> str:
    """An inline SVG polyline of `values` (oldest first)."""
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in enumerate(values))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<polyline fill="none" stroke="#1f6fb2" stroke-width="2" points="{points}"/></svg>')  # fmt: skip


@router.get("/hosts/{host_id}", response_class=HTMLResponse)
def host_page(host_id: Id, request: Request, session: DbSession, now: Now, caller: ConsoleScoped) -> HTMLResponse:
    host = hosts.get_host(session, host_id=host_id, access=caller)  # another agency's host: 404
    line = ""
    if request.app.state.history is None:
        points = hosts.history(session, host_id=host_id, measurement="host_load", since=now - timedelta(hours=1), until=now, limit=2000)
        line = sparkline([float(p.fields["load1"]) for p in sorted(points, key=lambda p: p.ts_ns) if "load1" in p.fields])
    codes = codes_by_id(session)
    lang = _lang(request)
    related = [findings.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)
               for f in findings.list_findings(session, access=caller, agency_id=host.agency_id)
               if any(e.get("host") == host.hostname for e in f.evidence)]  # fmt: skip
    return _page(request, "host.html", caller.principal, host=host, agency=codes.get(host.agency_id), sparkline=line, findings=related)


# Findings triage -------------------------------------------------------------------------------------

OPEN_TAB = ("open", "acknowledged")  # still to be handled
CLOSED_TAB = ("exempted", "remediated", "false_positive")  # handled one way or another
FindingTab = Literal["open", "closed"]
FindingStatus = Literal["", "open", "acknowledged", "exempted", "remediated", "false_positive"]
FindingAction = Literal["acknowledge", "exempt", "declare", "incident"]
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
    return {(h.agency_id, h.name): h.site for h in session.scalars(query)}


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
    agency_id = next((i for i, code in codes.items() if code == agency), -1) if agency and not caller.scoped else None
    rows = []
    for f in findings.list_findings(session, access=caller, agency_id=agency_id, status=status or None, rule_id=rule or None,
                                    statuses=OPEN_TAB if tab == "open" else CLOSED_TAB, limit=MAX_LISTED):  # fmt: skip
        if f.confidence < min_confidence:
            continue
        row = findings.read(f, agency_code=codes.get(f.agency_id or -1), language=lang)
        if article and row["article"] != article:
            continue
        if q and q.lower() not in f"{row['subject']} {row['title']}".lower():
            continue
        if site and not any(sites.get((f.agency_id, str(e.get("host")))) == site for e in f.evidence):
            continue
        rows.append(row)
    shared = findings.shared_subjects(session, language=lang) if not caller.scoped else None  # platform roles only
    agencies = sorted(codes.values()) if not caller.scoped else []
    chosen = {"tab": tab, "status": status, "agency": agency, "rule": rule, "article": article, "q": q, "site": site,
              "min_confidence": min_confidence}  # fmt: skip
    return _page(request, "findings.html", caller.principal, findings=rows, shared=shared, chosen=chosen, agencies=agencies,
                 rules=_rule_choices(lang), articles=_article_choices(lang), sites=sorted(set(sites.values())),
                 statuses=OPEN_TAB if tab == "open" else CLOSED_TAB)  # fmt: skip


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
    role = caller.principal.role
    actions = [name for name in ("acknowledge", "exempt")
               if role in findings.TRANSITIONS[name][2] and found.status in findings.TRANSITIONS[name][0]]  # fmt: skip
    if role in DECLARERS and found.rule_id in DECLARABLE_RULES and found.agency_id is not None and found.status in OPEN_TAB:
        actions.append("declare")
    if found.status in OPEN_TAB:
        actions.append("incident")
    history = [e for e in audit.list_events(session, target_type="finding", target_id=str(found.id), limit=100)]
    return _page(request, "finding.html", caller.principal, f=row, evidence=_evidence_by_source(found.evidence), actions=actions,
                 history=history, error=error if error in TRIAGE_ERRORS else "", done=done if done in FindingAction.__args__ else "")


@router.post("/findings/{finding_id}/{action}")
def finding_action(finding_id: Id, action: FindingAction, request: Request, session: DbSession, now: Now, remote: RemoteAddr,
                   caller: ConsoleScoped, csrf: str = Form(""), approval_ref: str = Form("", max_length=200),
                   note: str = Form("", max_length=2000)) -> Response:
    """The API's actions on a finding (same roles, same audit events), from the finding page's confirmed forms:
    acknowledge and exempt (POST /api/v1/findings/{id}/{action}), declare (POST /api/v1/inventory/requests for the
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
        matchers = " ".join(f"{k}={v}" for k, v in sorted(a.labels.items())
                            if k in SILENCE_LABELS and v and not any(c.isspace() for c in str(v)))
        rows.append({"fingerprint": a.fingerprint, "summary": summary, "severity": a.severity, "agency": a.agency_code,
                     "fired_at": a.fired_at, "active_since": a.active_since, "status": a.status, "matchers": matchers,
                     "acknowledged_by": a.acknowledged_by, "lacking_data": a.lacking_data,
                     "deliveries": [{"receiver": n.receiver, "status": n.status, "attempts": n.attempts, "last_error": n.last_error}
                                    for n in deliveries.get(a.fingerprint, [])]})  # fmt: skip
    silences = alert_service.list_silences(session, access=caller, now=now)
    return _page(request, "alerts.html", caller.principal, alerts=rows, silences=silences, presets=SILENCE_PRESETS)


@router.post("/silences")
def create_silence(request: Request, session: DbSession, now: Now, remote: RemoteAddr, caller: ConsoleScoped, csrf: str = Form(""),
                   matchers: str = Form(""), minutes: float = Form(60), comment: str = Form("")) -> Response:
    """The API's silence, from the alerts page (an agency user's silence is limited to its agency there)."""
    _check_csrf(request, csrf)
    alert_service.create_silence(session, access=caller, matchers=matchers.split(), minutes=minutes, comment=comment, now=now,
                                 remote_addr=remote)  # fmt: skip
    session.commit()
    return RedirectResponse("/ui/alerts", status_code=303)


@router.get("/devices", response_class=HTMLResponse)
def device_list(request: Request, session: DbSession, caller: ConsoleScoped) -> HTMLResponse:
    """Network devices polled over SNMP: the newest `snmp_device` status of each, with the collector host."""
    codes = codes_by_id(session)
    devices = [
        {"device": series.tags.get("device", "-"), "up": bool(series.fields.get("up")), "duration": series.fields.get("poll_duration_seconds"),
         "error": series.fields.get("last_error", ""), "collector": host.hostname, "agency": codes.get(host.agency_id)}
        for series, host in hosts.snmp_devices(session, access=caller)
    ]  # fmt: skip
    return _page(request, "devices.html", caller.principal, devices=sorted(devices, key=lambda d: d["device"]))


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
