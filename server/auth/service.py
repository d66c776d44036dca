"""Users, API tokens, authentication of bearer credentials, and the first admin."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.jsontypes import JsonValue
from server.agencies.models import Agency
from server.agents.models import Agent
from server.audit import service as audit
from server.auth import throttle
from server.auth.models import ApiToken, Role, User
from server.auth.principal import Principal
from server.auth.secrets import hash_password, new_token, password_problem, token_display_prefix, token_hash
from server.errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError, UnprocessableError

log = logging.getLogger(__name__)

INITIAL_TOKEN_FILE = "initial-admin-token"
_LAST_USED_GRANULARITY = timedelta(minutes=1)


def authenticate(session: Session, credential: str, *, now: datetime) -> Principal:
    """The principal behind a bearer credential (user API token or agent credential).

    Looked up by hash on every request, so a revocation takes effect at once on
    every server replica.

    Raises:
        UnauthorizedError: unknown, revoked or expired credential, or a disabled user.
    """
    digest = token_hash(credential)
    if credential.startswith("egva_"):
        return _agent_principal(session, digest)
    return _user_principal(session, digest, now=now)


def _agent_principal(session: Session, digest: str) -> Principal:
    """The agent whose credential hashes to `digest`. Raises UnauthorizedError: unknown or revoked."""
    agent = session.scalar(select(Agent).where(Agent.credential_hash == digest))
    if agent is None:
        raise UnauthorizedError("unknown credential", reason="unknown_credential")
    if agent.revoked_at is not None:
        raise UnauthorizedError("this agent credential has been revoked", reason="revoked_credential")
    return Principal("agent", agent.id, str(agent.id), "agent", agent.agency_id, agent.host_id)


def _user_principal(session: Session, digest: str, *, now: datetime) -> Principal:
    """The user whose API token hashes to `digest`; notes the token's use at most once per minute.

    Raises:
        UnauthorizedError: unknown, revoked or expired token, or a disabled user.
    """
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == digest)
    ).first()
    if row is None:
        raise UnauthorizedError("unknown credential", reason="unknown_credential")
    token, user = row
    if token.revoked_at is not None:
        raise UnauthorizedError("this token has been revoked", reason="revoked_credential")
    if token.expires_at is not None and token.expires_at <= now:
        raise UnauthorizedError("this token has expired", reason="expired_credential")
    if user.disabled:
        raise UnauthorizedError("this user is disabled", reason="disabled_user")
    if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
        token.last_used_at = now
    return Principal("user", user.id, user.username, user.role, user.agency_id)


class WeakPasswordError(UnprocessableError):
    """A password that breaks the policy (`secrets.password_problem`); nothing was stored."""

    reason = "weak_password"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errors = [{"loc": "password", "msg": message, "type": self.reason}]


def check_password_policy(password: str) -> None:
    """The one place every password that is set goes through (API create and PATCH, CLI create and passwd).

    Raises:
        WeakPasswordError: too short or too long.
    """
    problem = password_problem(password)
    if problem is not None:
        raise WeakPasswordError(problem)


def _check_role_and_agency(session: Session, *, role: str, agency_id: int | None) -> None:
    """A known role; an existing agency for an `agency` user, and none for the other roles.

    Raises:
        BadRequestError: unknown role, or agency given/missing against the role.
        NotFoundError: the agency does not exist.
    """
    if role not in Role.ALL:
        raise BadRequestError(f"unknown role {role!r}; choose one of {', '.join(Role.ALL)}", reason="bad_role")
    if role == Role.AGENCY and agency_id is None:
        raise BadRequestError("an agency user needs agency_id", reason="agency_required")
    if role != Role.AGENCY and agency_id is not None:
        raise BadRequestError(f"role {role} is not bound to an agency; omit agency_id", reason="agency_not_allowed")
    if agency_id is not None and session.get(Agency, agency_id) is None:
        raise NotFoundError(f"agency {agency_id} does not exist")


def create_user(
    session: Session,
    *,
    actor: str,
    username: str,
    role: str,
    agency_id: int | None = None,
    display_name: str = "",
    password: str | None = None,
    remote_addr: str | None = None,
    now: datetime,
) -> User:
    """Add a user; an `agency` user must name its agency, other roles must not.

    Raises:
        WeakPasswordError: the password breaks the policy.
        BadRequestError: unknown role, or agency given/missing against the role.
        NotFoundError: the agency does not exist.
        ConflictError: the username is taken.
    """
    if password is not None:
        check_password_policy(password)
    _check_role_and_agency(session, role=role, agency_id=agency_id)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise ConflictError(f"user {username!r} already exists", reason="duplicate_user")
    user = User(
        username=username,
        role=role,
        agency_id=agency_id,
        display_name=display_name,
        password_hash=hash_password(password) if password else None,
        disabled=False,
        created_at=now,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, actor=actor, action="user.create", target_type="user", target_id=user.id,
        details={"username": username, "role": role, "agency_id": agency_id}, remote_addr=remote_addr, at=now,
    )
    return user


def update_user(
    session: Session,
    *,
    actor: str,
    user_id: int,
    disabled: bool | None = None,
    display_name: str | None = None,
    password: str | None = None,
    remote_addr: str | None = None,
    now: datetime,
) -> User:
    """Change a user's display name, password or disabled flag; a new password also lifts the user's login lockout.

    Raises:
        WeakPasswordError: the password breaks the policy (nothing is changed).
        NotFoundError: no such user.
    """
    if password is not None:
        check_password_policy(password)
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"user {user_id} does not exist")
    changes: dict[str, JsonValue] = {}
    if disabled is not None and disabled != user.disabled:
        user.disabled = disabled
        changes["disabled"] = disabled
    if display_name is not None and display_name != user.display_name:
        user.display_name = display_name
        changes["display_name"] = display_name
    if password is not None:
        user.password_hash = hash_password(password)
        throttle.reset(session, scope=throttle.USER, key=throttle.user_key(user.username))
        changes["password"] = "changed"
    if changes:
        audit.record(
            session, actor=actor, action="user.update", target_type="user", target_id=user.id,
            details=changes, remote_addr=remote_addr, at=now,
        )
    return user


def create_api_token(
    session: Session,
    *,
    actor: str,
    user_id: int,
    name: str,
    ttl: timedelta | None = None,
    remote_addr: str | None = None,
    now: datetime,
) -> tuple[ApiToken, str]:
    """A new API token for a user; returns the row and the secret, which is shown only now.

    Raises:
        NotFoundError: no such user.
    """
    if session.get(User, user_id) is None:
        raise NotFoundError(f"user {user_id} does not exist")
    secret = new_token("user")
    token = ApiToken(
        user_id=user_id,
        name=name,
        token_hash=token_hash(secret),
        prefix=token_display_prefix(secret),
        created_at=now,
        expires_at=now + ttl if ttl else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session, actor=actor, action="token.create", target_type="api_token", target_id=token.id,
        details={"user_id": user_id, "name": name, "expires_at": token.expires_at.isoformat() if token.expires_at else None},
        remote_addr=remote_addr, at=now,
    )
    return token, secret


def revoke_api_token(
    session: Session, *, actor: str, token_id: int, remote_addr: str | None = None, now: datetime
) -> ApiToken:
    """Revoke a token at once (idempotent).

    Raises:
        NotFoundError: no such token.
    """
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"token {token_id} does not exist")
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(
            session, actor=actor, action="token.revoke", target_type="api_token", target_id=token.id,
            details={"user_id": token.user_id}, remote_addr=remote_addr, at=now,
        )
    return token


def list_api_tokens(session: Session, *, user_id: int | None = None) -> list[ApiToken]:
    """Tokens (without secrets), all or one user's."""
    query = select(ApiToken).order_by(ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return list(session.scalars(query))


def bootstrap_admin(session: Session, *, now: datetime) -> str | None:
    """On first start (no users), create user `admin` and return its new token's secret.

    Returns None when users exist. The caller commits, then writes the secret
    with `write_initial_token`; with several replicas starting at once the
    unique username lets only one commit win.
    """
    if session.scalar(select(User.id).limit(1)) is not None:
        return None
    user = create_user(session, actor="system", username="admin", role=Role.ADMIN, display_name="Administrator", now=now)
    _, secret = create_api_token(session, actor="system", user_id=user.id, name="initial admin token", now=now)
    return secret


def write_initial_token(data_dir: Path, secret: str) -> Path:
    """Write the first admin token to `<data_dir>/initial-admin-token`, mode 0600 from creation."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / INITIAL_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)
    return path


def utcnow() -> datetime:
    """The wall clock in UTC (the default clock of the services)."""
    return datetime.now(UTC)
