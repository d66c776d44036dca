"""FastAPI dependencies: the database session, the clock, the bearer credential and where the call came from.

The caller is authenticated by the route's policy (`server.access.policy`), so no route can skip declaring one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from server.errors import UnauthorizedError


def get_session(request: Request) -> Iterator[Session]:
    """A session per request; the view commits explicitly with `session.commit()` or `begin()`."""
    with request.app.state.sessions() as session:
        yield session


def get_clock(request: Request) -> Callable[[], datetime]:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock


def get_now(request: Request) -> datetime:
    """The time of this request, from the app's clock."""
    now: datetime = request.app.state.clock()
    return now


def remote_addr(request: Request) -> str | None:
    """The client address, taking X-Forwarded-For only from configured trusted proxies."""
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded and peer in request.app.state.settings.server.trusted_proxies:
        return forwarded.split(",")[0].strip()
    return peer


def bearer(request: Request) -> str:
    """The bearer credential of the request. Raises UnauthorizedError."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise UnauthorizedError("missing bearer credential (Authorization: Bearer <token>)", reason="missing_credential")
    return credential.strip()


DbSession = Annotated[Session, Depends(get_session)]
Now = Annotated[datetime, Depends(get_now)]
RemoteAddr = Annotated[str | None, Depends(remote_addr)]
