"""/api/v1/users, /api/v1/tokens"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import select

from server.access import AdminAccess, Id, UserAccess
from server.auth import service
from server.auth.models import ApiToken, User
from server.auth.schemas import TokenCreate, TokenCreated, TokenRead, UserCreate, UserRead, UserUpdate
from server.deps import DbSession, Now, RemoteAddr
from server.errors import NotFoundError

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.get("/users/me", response_model=UserRead)
def me(caller: UserAccess, session: DbSession) -> UserRead:
    return UserRead.model_validate(session.get(User, caller.principal.id))


@router.post("/users", status_code=201, response_model=UserRead)
def create_user(body: UserCreate, caller: AdminAccess, session: DbSession, now: Now, addr: RemoteAddr) -> UserRead:
    user = service.create_user(
        session, actor=caller.actor, username=body.username, role=body.role, agency_id=body.agency_id,
        display_name=body.display_name, password=body.password, remote_addr=addr, now=now,
    )
    session.commit()
    return UserRead.model_validate(user)


@router.get("/users", response_model=list[UserRead])
def list_users(caller: AdminAccess, session: DbSession) -> list[UserRead]:
    return [UserRead.model_validate(u) for u in session.scalars(select(User).order_by(User.id))]


@router.patch("/users/{user_id}", response_model=UserRead)
def update_user(user_id: Id, body: UserUpdate, caller: AdminAccess, session: DbSession, now: Now, addr: RemoteAddr) -> UserRead:
    user = service.update_user(
        session, actor=caller.actor, user_id=user_id, disabled=body.disabled,
        display_name=body.display_name, password=body.password, remote_addr=addr, now=now,
    )
    session.commit()
    return UserRead.model_validate(user)


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, caller: UserAccess, session: DbSession, now: Now, addr: RemoteAddr) -> TokenCreated:
    user_id = body.user_id if body.user_id is not None else caller.principal.id
    if user_id != caller.principal.id:
        caller.principal.require_admin()
    ttl = timedelta(days=body.ttl_days) if body.ttl_days else None
    token, secret = service.create_api_token(
        session, actor=caller.actor, user_id=user_id, name=body.name, ttl=ttl, remote_addr=addr, now=now
    )
    session.commit()
    return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=secret)


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(caller: UserAccess, session: DbSession) -> list[TokenRead]:
    user_id = None if caller.principal.is_admin else caller.principal.id
    return [TokenRead.model_validate(t) for t in service.list_api_tokens(session, user_id=user_id)]


@router.delete("/tokens/{token_id}", response_model=TokenRead)
def revoke_token(token_id: Id, caller: UserAccess, session: DbSession, now: Now, addr: RemoteAddr) -> TokenRead:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != caller.principal.id and not caller.principal.is_admin):
        raise NotFoundError(f"token {token_id} does not exist")
    token = service.revoke_api_token(session, actor=caller.actor, token_id=token_id, remote_addr=addr, now=now)
    session.commit()
    return TokenRead.model_validate(token)
