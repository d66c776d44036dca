"""Users and their API tokens. Secrets are stored only as hashes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from server.database import Base


class Role:
    """Named roles; `agency` users are bound to exactly one agency."""

    ADMIN = "admin"
    NOC = "noc"
    SECURITY = "security"
    AGENCY = "agency"
    ALL = (ADMIN, NOC, SECURITY, AGENCY)


class User(Base):
    """A person (or service account) who uses the API and console."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), comment="admin, noc, security or agency")
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), comment="Set for role agency only")
    password_hash: Mapped[str | None] = mapped_column(String(255), comment="scrypt hash for console login")
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class ApiToken(Base):
    """A bearer token of one user; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), comment="First characters, to recognise a token in lists")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class LoginFailure(Base):
    """One failed password login, kept per user name and per source address for the lockout (server/auth/throttle).

    Rows live in the database, not in a process, so the budget holds across
    workers and replicas; rows older than the throttle's horizon are deleted.
    """

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_scope_key_at", "scope", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(8), comment="user or address")
    key: Mapped[str] = mapped_column(String(64), comment="Lower-cased user name, or source address (IPv6: its /64)")
    at: Mapped[datetime] = mapped_column(index=True)
