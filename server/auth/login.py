"""Password login: one scrypt check per attempt whoever is named, under a lockout per user name and per address.

The only password login today is the console's (`POST /ui/login`); any other
password path must call `password_login` too, so the throttle and the timing
guarantee hold for all of them. The caller commits in every outcome: a failure's
rows and audit events must be kept although an error is raised.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.audit import service as audit
from server.auth import throttle
from server.auth.models import User
from server.auth.secrets import DUMMY_PASSWORD_HASH, verify_password
from server.errors import UnauthorizedError
from server.metrics import ServerMetrics


class LoginError(UnauthorizedError):
    """Root of refused password logins; the message never tells whether the user exists."""


class LoginFailedError(LoginError):
    """Wrong user name or password, a user without a password, or a disabled user."""

    reason = "bad_login"


class LoginLockedError(LoginError):
    """Too many failures for this user name or from this address; retry after `retry_after_seconds`."""

    status_code = 429
    reason = "login_locked"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


def password_login(
    session: Session,
    *,
    username: str,
    password: str,
    remote_addr: str | None,
    now: datetime,
    metrics: ServerMetrics,
    policies: throttle.LoginPolicies = throttle.LoginPolicies(),
) -> User:
    """The user that `username` and `password` log in as.

    Every attempt not refused by a lockout verifies exactly one scrypt hash (the
    user's, or `DUMMY_PASSWORD_HASH` when there is no usable account), counted in
    `egovmon_password_verifications_total`. Failures are counted against the user
    name and the source address, audited as `login.failure`, and a lock that starts
    is audited as `login.lockout`; a success forgets the user name's failures.

    Raises:
        LoginLockedError: the user name or the address is locked; the password was not checked.
        LoginFailedError: wrong credentials, no password set, or a disabled user.
    """
    keys = {throttle.USER: throttle.user_key(username), throttle.ADDRESS: throttle.address_key(remote_addr)}
    _refuse_if_locked(session, keys=keys, now=now, metrics=metrics, policies=policies)

    user = session.scalar(select(User).where(User.username == username))
    usable = user is not None and user.password_hash is not None and not user.disabled
    metrics.password_verifications.inc()
    stored = user.password_hash if user is not None and usable else None
    matches = verify_password(password, stored or DUMMY_PASSWORD_HASH)
    if usable and matches and user is not None:
        throttle.reset(session, scope=throttle.USER, key=keys[throttle.USER])
        metrics.logins.labels("success").inc()
        return user

    throttle.prune(session, older_than=now - policies.horizon)
    audit.record(
        session, actor="anonymous", action="login.failure", target_type="login", target_id=keys[throttle.USER],
        details={"reason": _failure_reason(user)}, remote_addr=remote_addr, at=now,
    )
    for scope, key in keys.items():
        _count_failure(session, scope=scope, key=key, remote_addr=remote_addr, now=now, metrics=metrics, policies=policies)
    metrics.logins.labels("failure").inc()
    raise LoginFailedError("wrong user name or password")


def _refuse_if_locked(session: Session, *, keys: dict[str, str], now: datetime, metrics: ServerMetrics,
                      policies: throttle.LoginPolicies) -> None:  # fmt: skip
    """Raise LoginLockedError, counted as a "locked" login, if any of `keys` (scope -> key) is locked at `now`;
    the retry delay is the latest lock end, in whole seconds and at least 1."""
    ends = [
        end
        for scope, key in keys.items()
        if (end := throttle.locked_until(session, scope=scope, key=key, policy=policies.of(scope), now=now)) is not None
    ]
    if ends:
        metrics.logins.labels("locked").inc()
        retry = max(1, math.ceil((max(ends) - now).total_seconds()))
        raise LoginLockedError("too many failed logins; try again later", retry_after_seconds=retry)


def _failure_reason(user: User | None) -> str:
    """Why a login failed, for the audit log only (the caller is never told)."""
    if user is None:
        return "unknown_user"
    if user.disabled:
        return "disabled_user"
    if not user.password_hash:
        return "no_password"
    return "wrong_password"


def _count_failure(session: Session, *, scope: str, key: str, remote_addr: str | None, now: datetime,
                   metrics: ServerMetrics, policies: throttle.LoginPolicies) -> None:  # fmt: skip
    """Record one failure against `key` in `scope`; if that locks it, audit `login.lockout` and count the lockout."""
    throttle.record_failure(session, scope=scope, key=key, now=now)
    policy = policies.of(scope)
    if throttle.locked_until(session, scope=scope, key=key, policy=policy, now=now) is None:
        return
    audit.record(
        session, actor="system", action="login.lockout", target_type=f"login_{scope}", target_id=key,
        details={"failures": policy.limit, "window_seconds": policy.window.total_seconds(),
                 "lockout_seconds": policy.lockout.total_seconds()},
        remote_addr=remote_addr, at=now,
    )  # fmt: skip
    metrics.lockouts.labels(scope).inc()
