"""API shapes of duties, their records, the scorecard and drills."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12

from server.database import MAX_ID

Kind = Literal["level_evaluation", "risk_assessment", "security_inspection", "emergency_drill", "restore_test"]
MAX_FREQUENCY_DAYS = 10 * 366  # a duty recurs at least every ten years
MAX_MEASURED_SECONDS = 366 * 86400.0


class DutyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency: str = Field(min_length=1, max_length=64, description="The agency's code, e.g. health")
    kind: Kind
    system: str | None = Field(None, min_length=1, max_length=64, description="A registered system's code; none: the agency")
    frequency_days: int | None = Field(None, ge=1, le=MAX_FREQUENCY_DAYS, description="Default: the kind's usual frequency")


class DutyRecordCreate(BaseModel):
    """The duty was done. `done_at` (default: now) may not lie in the future."""

    model_config = ConfigDict(extra="forbid")

    done_at: AwareDatetime | None = Field(None, description="ISO 8601 with a time zone, not in the future")
    note: str = Field("", max_length=2000)
    report_ref: str = Field("", max_length=200, description="The report or document number")
    time_to_acknowledge_seconds: float | None = Field(None, ge=0, le=MAX_MEASURED_SECONDS, description="Drills: measured")
    time_to_resolve_seconds: float | None = Field(None, ge=0, le=MAX_MEASURED_SECONDS, description="Drills: measured")


# The response shapes are TypedDicts, the single definition of each: the service builds them as plain dicts
# (the console reads them with row["key"]) and FastAPI validates and documents them as the response model.


class DutyRead(TypedDict):
    """A recurring duty of an agency (or of one of its systems) and when it is next due."""

    id: int
    agency: str | None
    system: str | None
    kind: str
    name_zh: str
    name_en: str
    frequency_days: int
    last_done_at: datetime | None
    due_at: datetime
    overdue: bool
    overdue_seconds: float


class ScorecardRow(TypedDict):
    """One agency's compliance figures; a ratio is None when there is nothing to count."""

    agency: str
    name: str
    duties: int
    duties_overdue: int
    duties_on_time_ratio: float | None
    hosts_expected: int
    hosts_reporting: int
    monitoring_coverage_ratio: float | None
    backup_jobs: int
    backup_jobs_within_rpo: int
    backup_rpo_ratio: float | None
    open_findings: int


class DrillCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency: str = Field(min_length=1, max_length=64, description="The agency's code")
    scenario: str = Field(min_length=1, max_length=300, description="e.g. 核心数据库宕机")
    receiver: str = Field(min_length=1, max_length=64, description="A configured receiver for the participants")
    duty_id: int | None = Field(None, ge=1, le=MAX_ID, description="An emergency_drill duty of this agency")


class DrillRead(TypedDict):
    """A drill with the measured times in seconds (None until known)."""

    id: int
    scenario: str
    receiver: str
    fingerprint: str
    started_at: datetime
    ended_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    time_to_acknowledge_seconds: float | None
    time_to_resolve_seconds: float | None
