"""Errors the services raise, each with the HTTP status and reason code the API answers with.

Views never build error responses by hand: a service raises one of these and the
app's handler turns it into `{"detail": message, "reason": reason}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from pydantic_core import ErrorDetails
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12


class FieldError(TypedDict):
    """One invalid field of a request: where (a dotted path), what is wrong, and pydantic's error type."""

    loc: str
    msg: str
    type: str


def field_errors(errors: Sequence[ErrorDetails], *, limit: int) -> list[FieldError]:
    """The first `limit` of pydantic's errors, as the API reports them."""
    return [{"loc": ".".join(str(part) for part in e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors[:limit]]


class ErrorBody(BaseModel):
    """What every error answer carries (documented for /docs and checked by schemathesis)."""

    detail: str = Field(description="What went wrong, in English")
    reason: str = Field(description="A stable code, e.g. not_found, validation, admin_required")
    errors: list[FieldError] | dict[str, str] | None = Field(
        None, description="Validation errors: a list of fields, or (inventory documents) `section[i].field` → message"
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in ((401, "No valid credential"), (403, "Not allowed for this caller"),
                         (404, "No such thing; an object outside the caller's agency answers the same (Article 25)"),
                         (409, "Conflict"), (422, "Invalid request"))
}  # fmt: skip


class ApiError(Exception):
    """Root of errors that become an HTTP response."""

    status_code = 400
    reason = "bad_request"
    errors: list[FieldError] | dict[str, str] | None = None  # per-field details, answered as `errors`

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class BadRequestError(ApiError):
    status_code = 400
    reason = "bad_request"


class UnauthorizedError(ApiError):
    status_code = 401
    reason = "unauthorized"


class ForbiddenError(ApiError):
    status_code = 403
    reason = "forbidden"


class NotFoundError(ApiError):
    status_code = 404
    reason = "not_found"


class ConflictError(ApiError):
    status_code = 409
    reason = "conflict"


class PayloadTooLargeError(ApiError):
    status_code = 413
    reason = "too_large"


class UnsupportedMediaError(ApiError):
    status_code = 415
    reason = "unsupported_media_type"


class UnprocessableError(ApiError):
    status_code = 422
    reason = "validation"


class UnavailableError(ApiError):
    """503; `retry_after_seconds`, when set, becomes the Retry-After header that agents honour."""

    status_code = 503
    reason = "unavailable"
    retry_after_seconds: int | None = None


class OverloadedError(UnavailableError):
    """The server is past capacity and sheds this request before doing any work for it."""

    reason = "overloaded"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
