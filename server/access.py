"""Article 25 in one place: each route's policy, and the only way to read or write agency-owned rows.

Every route declares who may call it with one dependency, `policy(Policy.X)` (API, bearer credential) or
`policy(Policy.X, console=True)` (console, session cookie); `route_policies(app)` lists the policy of every
route the app serves, so a test can assert that none lacks one. The dependency authenticates the caller and
answers with an `Access`: the caller and the one agency it is limited to (None: every agency).

Agency-owned rows are reached only through the functions below, which take that `Access` as a required
keyword argument: `scoped()` narrows a query, `get()` loads one row. The scoping key is the agency id; the
tables that carry the agency's code instead (alerts and silences, whose labels are what the alerting
engine matches on) are mapped once here, from the code resolved when the caller was authenticated.
Deny by default: a model without a declared owner raises `TypeError`, and a row of another agency is
indistinguishable from a row that does not exist (`NotFoundError`, 404, in the API and the console alike).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, TypeVar, TypeVarTuple, overload

from fastapi import Depends, FastAPI, Path, Request
from fastapi.dependencies.models import Dependant
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from starlette.concurrency import run_in_threadpool

from server.agencies.models import Agency
from server.agents.models import Agent
from server.alerting.models import AlertRecord, SilenceRecord
from server.auth import service as auth
from server.auth.models import Role
from server.auth.principal import Principal
from server.database import MAX_ID, Base
from server.deps import bearer, get_session
from server.duties.models import Drill, Duty
from server.errors import ForbiddenError, NotFoundError, OverloadedError, UnauthorizedError
from server.findings.models import Finding
from server.hosts.models import Host
from server.incidents.models import Incident
from server.inventory.models import (
    AllotmentEntry,
    DeclarationRequest,
    DeclaredSite,
    ExemptionEntry,
    HostEntry,
    PlanEntry,
    SystemEntry,
    WebsiteEntry,
)

T = TypeVar("T", bound=Base)
Row = TypeVarTuple("Row")
CONSOLE_COOKIE = "egovmon_session"


# A path id: a row id in the database's range. A path that names nothing answers 404 (see the app's handler).
Id = Annotated[int, Path(ge=1, le=MAX_ID)]


class Policy(StrEnum):
    """Who may call a route."""

    PUBLIC = "public"  # no credential: health, enrolment, the login form
    AGENT = "agent"  # agent credentials only: ingest
    USER = "user"  # any user, about itself: its tokens, /users/me
    AGENCY_SCOPED = "agency_scoped"  # any user; an agency user only its own agency's objects (others: 404)
    PLATFORM = "platform"  # the platform roles (admin, noc, security): cross-agency views
    SECURITY = "security"  # admins and the security team: the audit log, approvals
    ADMIN = "admin"  # admins only


# Routes the framework adds (OpenAPI document and its viewers): public, declared here once.
FRAMEWORK_PUBLIC = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


class LoginRequiredError(UnauthorizedError):
    """No console session: the page sends the browser to the login form."""


@dataclass(frozen=True, slots=True)
class Access:
    """The authenticated caller of one request and the agency it is limited to (None: every agency)."""

    principal: Principal
    agency_id: int | None
    agency_code: str | None

    @property
    def scoped(self) -> bool:
        return self.agency_id is not None

    @property
    def actor(self) -> str:
        return self.principal.actor


@dataclass(frozen=True, slots=True)
class Owner:
    """How a table names its agency: the column, whether it holds the code rather than the id, and whether rows
    without an agency are shared reading for everybody (declared sites)."""

    column: InstrumentedAttribute[int | str | None]
    by_code: bool = False
    shared_when_null: bool = False


OWNERS: dict[type, Owner] = {
    Agency: Owner(Agency.id),
    Host: Owner(Host.agency_id),
    Agent: Owner(Agent.agency_id),
    Finding: Owner(Finding.agency_id),
    Incident: Owner(Incident.agency_id),
    Duty: Owner(Duty.agency_id),
    Drill: Owner(Drill.agency_id),
    AlertRecord: Owner(AlertRecord.agency_code, by_code=True),
    SilenceRecord: Owner(SilenceRecord.agency_code, by_code=True),
    DeclaredSite: Owner(DeclaredSite.agency_id, shared_when_null=True),
    PlanEntry: Owner(PlanEntry.agency_id),
    ExemptionEntry: Owner(ExemptionEntry.agency_id),
    SystemEntry: Owner(SystemEntry.agency_id),
    WebsiteEntry: Owner(WebsiteEntry.agency_id),
    HostEntry: Owner(HostEntry.agency_id),
    AllotmentEntry: Owner(AllotmentEntry.agency_id),
    DeclarationRequest: Owner(DeclarationRequest.agency_id),
}


def _owner(model: type) -> Owner:
    owner = OWNERS.get(model)
    if owner is None:
        raise TypeError(f"{model.__name__} has no declared agency owner; add it to server.access.OWNERS")
    return owner


def _key(access: Access, owner: Owner) -> int | str | None:
    return access.agency_code if owner.by_code else access.agency_id


@overload
def scoped(model: type[T], *, access: Access, query: None = None) -> Select[T]: ...
@overload
def scoped(model: type[Base], *, access: Access, query: Select[*Row]) -> Select[*Row]: ...
def scoped(model: type[Base], *, access: Access, query: Select[*Row] | None = None) -> Select[*Row] | Select[Base]:
    """`query` (default: every row of `model`) narrowed to what `access` may see."""
    owner = _owner(model)
    if query is None:
        return _narrowed(select(model), owner, access)
    return _narrowed(query, owner, access)


def _narrowed(query: Select[*Row], owner: Owner, access: Access) -> Select[*Row]:
    if not access.scoped:
        return query
    condition = owner.column == _key(access, owner)
    if owner.shared_when_null:
        condition = or_(condition, owner.column.is_(None))
    return query.where(condition)


def visible(row: Base, *, access: Access) -> bool:
    """Whether `access` may read `row`."""
    owner = _owner(type(row))
    if not access.scoped:
        return True
    value = getattr(row, owner.column.key)
    return value == _key(access, owner) or (owner.shared_when_null and value is None)


def owns(row: Base, *, access: Access) -> bool:
    """Whether `access` may change `row`: its own agency's rows (shared rows only for unscoped callers)."""
    owner = _owner(type(row))
    return not access.scoped or getattr(row, owner.column.key) == _key(access, owner)


def get(session: Session, model: type[T], ident: int | str, *, access: Access, what: str | None = None) -> T:
    """One row of `model` that `access` may see. Raises NotFoundError — also for another agency's row and for
    ids outside the database's range (a path id of 2^63 names nothing; it is not a server error)."""
    name = what or model.__name__.lower()
    if isinstance(ident, int) and not 0 < ident <= MAX_ID:
        raise NotFoundError(f"no {name} {ident}", reason="not_found")
    row = session.get(model, ident)
    if row is None or not visible(row, access=access):
        raise NotFoundError(f"no {name} {ident}", reason="not_found")
    return row


def get_owned(session: Session, model: type[T], ident: int | str, *, access: Access, what: str | None = None) -> T:
    """Like `get`, for a change: a shared row (a site without an agency) is read-only to agency users."""
    row = get(session, model, ident, access=access, what=what)
    if not owns(row, access=access):
        raise ForbiddenError("shared declarations are changed by admins", reason="shared_declaration")
    return row


def agency_id_of(session: Session, code: str, *, access: Access) -> int:
    """The id of the agency with `code`; for an agency user any other agency is unknown. Raises NotFoundError."""
    found: int | None = session.scalar(scoped(Agency, access=access, query=select(Agency.id).where(Agency.code == code)))
    if found is None:
        raise NotFoundError(f"no agency {code!r}", reason="unknown_agency")
    return found


def operator(name: str = "operator") -> Access:
    """The local operator (the `egovmon admin` command, run on the server as its user): every agency."""
    return Access(Principal(kind="user", id=0, name=name, role=Role.ADMIN), None, None)


# Authentication and the route policy -------------------------------------------------------------------


NO_AGENCY_CODE = "<no agency>"  # matches no row: not a valid agency code, and not the empty code of platform alerts


def access_for(session: Session, principal: Principal) -> Access:
    """The `Access` of an authenticated principal (the agency's code is looked up once here). A limited caller whose
    agency cannot be found sees nothing, never everything."""
    if principal.sees_all_agencies:
        return Access(principal, None, None)
    scope = principal.agency_id if principal.agency_id is not None else -1
    code = session.scalar(select(Agency.code).where(Agency.id == scope))
    return Access(principal, scope, code if code is not None else NO_AGENCY_CODE)


# What a user needs beyond being a user, per policy: (test, message, reason) of the 403 otherwise.
_ROLE_NEEDED: dict[Policy, tuple[Callable[[Principal], bool], str, str]] = {
    Policy.ADMIN: (lambda p: p.is_admin, "this action needs the admin role", "admin_required"),
    Policy.SECURITY: (lambda p: p.role in (Role.ADMIN, Role.SECURITY), "this needs the admin role or the security team",
                      "security_role_required"),
    Policy.PLATFORM: (lambda p: p.sees_all_agencies, "this is for the admin, security and noc roles", "platform_role_required"),
}  # fmt: skip


def _check(policy: Policy, principal: Principal) -> None:
    if policy is Policy.AGENT:
        if principal.kind != "agent" or principal.host_id is None:
            raise ForbiddenError("only agent credentials can send data", reason="not_an_agent")
        return
    if principal.kind != "user":
        raise ForbiddenError("agent credentials can only send data", reason="agent_cannot_read")
    needed = _ROLE_NEEDED.get(policy)
    if needed is not None and not needed[0](principal):
        raise ForbiddenError(needed[1], reason=needed[2])


def _console_principal(request: Request, session: Session) -> Principal:
    token = request.cookies.get(CONSOLE_COOKIE)
    if not token:
        raise LoginRequiredError("log in first", reason="login_required")
    try:
        return auth.authenticate(session, token, now=request.app.state.clock())
    except UnauthorizedError as exc:
        raise LoginRequiredError("session expired", reason="login_required") from exc


@cache
def policy(declared: Policy, *, console: bool = False) -> Callable[..., Access | None]:
    """The dependency that enforces `declared` (bearer credential, or the console's cookie) and yields the
    caller's `Access` (None for PUBLIC). One function per policy, so `route_policies` can read it back."""

    def dependency(request: Request, session: Session = Depends(get_session)) -> Access | None:
        if declared is Policy.PUBLIC:
            return None
        if console:
            principal = _console_principal(request, session)
            if principal.kind != "user":
                raise ForbiddenError("agents have no console", reason="agent_cannot_read")
        else:
            principal = auth.authenticate(session, bearer(request), now=request.app.state.clock())
        session.commit()  # persists last_used_at when it moved
        _check(declared, principal)
        return access_for(session, principal)

    dependency.policy = declared  # type: ignore[attr-defined]
    dependency.console = console  # type: ignore[attr-defined]
    dependency.__name__ = f"policy_{declared.value}{'_console' if console else ''}"
    return dependency


def _declared(dependant: Dependant) -> Iterator[Policy]:
    for sub in dependant.dependencies:
        found = getattr(sub.call, "policy", None)
        if isinstance(found, Policy):
            yield found
        yield from _declared(sub)


def _flat_routes(app: FastAPI) -> list[Any]:
    """Every route the app serves, with its full path (FastAPI ≥ 0.165 keeps included routers nested)."""
    try:
        from fastapi.routing import iter_route_contexts  # noqa: PLC0415 - newer FastAPI only
    except ImportError:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def route_policies(app: FastAPI) -> dict[tuple[str, str], Policy | None]:
    """(path, method) → the declared policy of every route the app serves; None where a route declares none
    (or more than one)."""
    out: dict[tuple[str, str], Policy | None] = {}
    for route in _flat_routes(app):
        path = route.path or ""
        methods = sorted(route.methods or ["GET"])
        dependant = getattr(route, "dependant", None)
        if dependant is not None:
            found = set(_declared(dependant))
            declared = found.pop() if len(found) == 1 else None
        else:
            declared = Policy.PUBLIC if path in FRAMEWORK_PUBLIC else None
        for method in methods:
            if method != "HEAD":
                out[(path, method)] = declared
    return out


class UndeclaredPolicyError(RuntimeError):
    """A route of the app declares no policy (or more than one)."""


def require_policies(app: FastAPI) -> None:
    """Raises UndeclaredPolicyError naming every route without exactly one declared policy."""
    undeclared = sorted(key for key, declared in route_policies(app).items() if declared is None)
    if undeclared:
        raise UndeclaredPolicyError(f"routes without a declared policy (server/access.py): {undeclared}")


async def _agent_from_memory(request: Request) -> Any:
    """Policy AGENT on the ingest hot path: the credential checked against the in-memory cache of
    `server.ingest.credentials` (revocations honoured within seconds across workers), not a database read per batch.
    Yields the `Sender` (principal and origin). Raises UnauthorizedError, ForbiddenError (not an agent)."""
    credentials = request.app.state.ingest.credentials
    credential = bearer(request)
    sender = credentials.cached(credential)
    if sender is None:
        # A database read per unknown or unchecked credential: bounded, so a burst of them (a restart under the whole
        # fleet, or someone spraying made-up tokens) is shed instead of queueing every request behind them.
        if credentials.loads_in_flight >= credentials.load_slots:
            raise OverloadedError("too many agent credentials are being checked at once; retry later",
                                  retry_after_seconds=request.app.state.settings.server.ingest_retry_after_seconds)
        credentials.loads_in_flight += 1
        try:
            sender = await run_in_threadpool(credentials.load, credential)
        finally:
            credentials.loads_in_flight -= 1
    return sender


_agent_from_memory.policy = Policy.AGENT  # type: ignore[attr-defined]


# The route policies as typed dependencies: a view names its policy once, in its signature.
Public = Depends(policy(Policy.PUBLIC))
AgentAccess = Annotated[Access, Depends(policy(Policy.AGENT))]
AgentSender = Annotated[Any, Depends(_agent_from_memory)]  # server.ingest.credentials.Sender
UserAccess = Annotated[Access, Depends(policy(Policy.USER))]
Scoped = Annotated[Access, Depends(policy(Policy.AGENCY_SCOPED))]
PlatformAccess = Annotated[Access, Depends(policy(Policy.PLATFORM))]
SecurityAccess = Annotated[Access, Depends(policy(Policy.SECURITY))]
AdminAccess = Annotated[Access, Depends(policy(Policy.ADMIN))]
ConsoleScoped = Annotated[Access, Depends(policy(Policy.AGENCY_SCOPED, console=True))]
ConsoleSecurity = Annotated[Access, Depends(policy(Policy.SECURITY, console=True))]
