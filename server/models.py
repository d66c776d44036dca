"""Every table, imported in one place so metadata and Alembic see them all."""

from server.agencies.models import Agency
from server.agents.models import Agent, EnrollmentToken
from server.alerting.models import AlertRecord, Notification, SilenceRecord
from server.audit.models import AuditEvent
from server.auth.models import ApiToken, LoginFailure, User
from server.database import Base
from server.duties.models import Drill, Duty, DutyRecord
from server.findings.models import Finding
from server.hosts.models import HistoryChunk, Host, LatestSeries
from server.incidents.models import Incident, TimelineEntry
from server.ingest.models import IngestedBatch, ObservationRecord
from server.inventory import revision as _revision  # noqa: F401  - registers the hooks that count declaration changes
from server.inventory.models import (
    AllotmentEntry,
    DeclarationRequest,
    DeclaredSite,
    ExemptionEntry,
    HostEntry,
    InventoryRevision,
    ObservedFact,
    PlanEntry,
    SystemEntry,
    WebsiteEntry,
)

__all__ = [
    "Agency", "Agent", "ApiToken", "AuditEvent", "Base", "EnrollmentToken", "HistoryChunk",
    "Host", "IngestedBatch", "LatestSeries", "LoginFailure", "ObservationRecord", "User",
    "AlertRecord", "Notification", "SilenceRecord", "DeclaredSite", "Drill", "Duty", "DutyRecord", "Incident",
    "TimelineEntry", "ExemptionEntry", "Finding", "HostEntry", "ObservedFact", "PlanEntry", "SystemEntry", "WebsiteEntry",
    "AllotmentEntry", "DeclarationRequest", "InventoryRevision",
]
