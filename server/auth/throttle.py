"""Throttling of password logins: a temporary lockout per user name and per source address.

A key (a user name, or a source address) is locked when `limit` failures fall
within `window`; the lock lasts `lockout` from the failure that tripped it. While
locked, attempts are refused without checking the password and are not counted,
so the lock ends on time. Failures are rows in the state database, so the budget
holds across server workers and replicas; concurrent attempts may overshoot a
limit by the number of attempts in flight, never more.

Unknown user names are counted like known ones, so a lockout answer does not tell
whether a user exists. IPv6 sources are keyed by their /64, which one host
usually controls whole.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.auth.models import LoginFailure
from server.database import rows_affected

USER = "user"
ADDRESS = "address"
_KEY_LENGTH = 64


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How many failures within `window` lock a key, and for how long."""

    limit: int
    window: timedelta
    lockout: timedelta

    @property
    def horizon(self) -> timedelta:
        """How far back failures still matter; older rows can be deleted."""
        return self.window + self.lockout


@dataclass(frozen=True, slots=True)
class LoginPolicies:
    """The budgets of one deployment: tight per user name, wider per source address (NAT, shared desks)."""

    user: ThrottlePolicy = ThrottlePolicy(limit=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15))
    address: ThrottlePolicy = ThrottlePolicy(limit=20, window=timedelta(minutes=15), lockout=timedelta(minutes=15))

    def of(self, scope: str) -> ThrottlePolicy:
        return self.user if scope == USER else self.address

    @property
    def horizon(self) -> timedelta:
        return max(self.user.horizon, self.address.horizon)


def lockout_end(failures_newest_first: Sequence[datetime], policy: ThrottlePolicy) -> datetime | None:
    """When the lock ends that the newest failures put on a key, or None when they put none.

    `failures_newest_first` are the key's most recent failure times, newest first
    (at least the newest `policy.limit` of them). The key is locked when the newest
    `limit` failures span no more than `window`; the lock runs `lockout` from the newest.
    """
    if policy.limit < 1 or len(failures_newest_first) < policy.limit:
        return None
    newest, oldest = failures_newest_first[0], failures_newest_first[policy.limit - 1]
    if newest - oldest > policy.window:
        return None
    return newest + policy.lockout


def user_key(username: str) -> str:
    """The throttle key of a user name as typed: trimmed, lower-cased, bounded."""
    return username.strip().lower()[:_KEY_LENGTH]


def address_key(remote_addr: str | None) -> str:
    """The throttle key of a source address: the address itself, an IPv6 address's /64, `-` when unknown."""
    if not remote_addr:
        return "-"
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return remote_addr[:_KEY_LENGTH]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def locked_until(session: Session, *, scope: str, key: str, policy: ThrottlePolicy, now: datetime) -> datetime | None:
    """The end of the lock on `key` if it is locked at `now`, else None."""
    recent = list(
        session.scalars(
            select(LoginFailure.at)
            .where(LoginFailure.scope == scope, LoginFailure.key == key, LoginFailure.at > now - policy.horizon)
            .order_by(LoginFailure.at.desc())
            .limit(policy.limit)
        )
    )
    end = lockout_end(recent, policy)
    return end if end is not None and end > now else None


def record_failure(session: Session, *, scope: str, key: str, now: datetime) -> None:
    """Count one failure against `key` (committed with the caller's transaction)."""
    session.add(LoginFailure(scope=scope, key=key, at=now))
    session.flush()


def reset(session: Session, *, scope: str, key: str) -> int:
    """Forget the failures of `key` (after a successful login, or a new password); returns rows deleted."""
    return rows_affected(session.execute(delete(LoginFailure).where(LoginFailure.scope == scope, LoginFailure.key == key)))


def prune(session: Session, *, older_than: datetime) -> int:
    """Delete failures that can no longer lock anything; returns rows deleted."""
    return rows_affected(session.execute(delete(LoginFailure).where(LoginFailure.at < older_than)))
