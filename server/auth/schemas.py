"""API shapes of users and tokens. Secrets appear only in the *Created responses, once."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from server.auth.secrets import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from server.database import MAX_ID

# The length policy is enforced by the service (one message for the API and the CLI);
# the schema only documents it.
_PASSWORD_DOC: JsonDict = {"minLength": PASSWORD_MIN_LENGTH, "maxLength": PASSWORD_MAX_LENGTH}


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    role: str = Field(description="admin, noc, security or agency")
    agency_id: int | None = Field(None, ge=1, le=MAX_ID, description="Required for role agency, forbidden otherwise")
    display_name: str = Field("", max_length=200)
    password: str | None = Field(
        None, json_schema_extra=_PASSWORD_DOC, description=f"For console login; at least {PASSWORD_MIN_LENGTH} characters"
    )


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, max_length=200)
    disabled: bool | None = None
    password: str | None = Field(
        None, json_schema_extra=_PASSWORD_DOC, description=f"New console password; at least {PASSWORD_MIN_LENGTH} characters"
    )


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: str
    agency_id: int | None
    disabled: bool
    created_at: datetime


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    user_id: int | None = Field(None, ge=1, le=MAX_ID, description="Admins may create tokens for other users; default: yourself")
    ttl_days: float | None = Field(None, gt=0, le=3650, description="Expiry in days; none: no expiry")


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenRead):
    token: str = Field(description="The secret; shown only in this response")
