"""Every table, imported in one place so metadata and Alembic see them all."""

from server.agencies.models import Agency
from server.agents.models import Agent, EnrollmentToken
from server.audit.models import AuditEvent
from server.auth.models import ApiToken, User
from server.database import Base
from server.hosts.models import HistoryPoint, Host, LatestSeries
from server.ingest.models import IngestedBatch, ObservationRecord

__all__ = [
    "Agency", "Agent", "ApiToken", "AuditEvent", "Base", "EnrollmentToken", "HistoryPoint",
    "Host", "IngestedBatch", "LatestSeries", "ObservationRecord", "User",
]
