"""Who is calling: a user with a role, or an agent bound to one host of one agency.

What the caller may see and change is decided in `server.access`, not here."""

from __future__ import annotations

from dataclasses import dataclass

from server.auth.models import Role
from server.errors import ForbiddenError


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of one request."""

    kind: str  # "user" or "agent"
    id: int
    name: str
    role: str  # a Role value, or "agent"
    agency_id: int | None = None
    host_id: int | None = None

    @property
    def actor(self) -> str:
        """How the audit log names this caller: `user:alice`, `agent:7`."""
        return f"{self.kind}:{self.name}"

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == Role.ADMIN

    @property
    def sees_all_agencies(self) -> bool:
        """Admins, NOC and security staff see every agency; agency users only their own."""
        return self.kind == "user" and self.role in (Role.ADMIN, Role.NOC, Role.SECURITY)

    def require_admin(self) -> None:
        """Raises ForbiddenError unless the caller is an admin user."""
        if not self.is_admin:
            raise ForbiddenError("this action needs the admin role", reason="admin_required")

    def require_user(self) -> None:
        """Raises ForbiddenError for agents."""
        if self.kind != "user":
            raise ForbiddenError("agent credentials can only send data", reason="agent_cannot_read")
