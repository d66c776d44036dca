"""Recurring security duties per agency and system (Articles 26(4), 27(3), 27(4)) and their records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.database import Base

# kind → (Chinese name, English name, default frequency in days)
KINDS: dict[str, tuple[str, str, int]] = {
    "level_evaluation": ("等级测评", "Security level evaluation", 365),
    "risk_assessment": ("风险评估", "Risk assessment", 365),
    "security_inspection": ("安全检查", "Security inspection", 90),
    "emergency_drill": ("应急演练", "Emergency drill", 180),
    "restore_test": ("备份恢复测试", "Backup restore test", 90),
}


class Duty(Base):
    __tablename__ = "duties"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    system: Mapped[str | None] = mapped_column(String(64), comment="A registered system's code, or none for the agency")
    kind: Mapped[str] = mapped_column(String(32))
    frequency_days: Mapped[int]
    created_at: Mapped[datetime]
    last_done_at: Mapped[datetime | None]


class DutyRecord(Base):
    __tablename__ = "duty_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    duty_id: Mapped[int] = mapped_column(ForeignKey("duties.id"), index=True)
    done_at: Mapped[datetime]
    recorded_by: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(String(2000), default="")
    report_ref: Mapped[str] = mapped_column(String(200), default="", comment="The report or document number")
    time_to_acknowledge_seconds: Mapped[float | None] = mapped_column(Float, comment="Drills: measured")
    time_to_resolve_seconds: Mapped[float | None] = mapped_column(Float, comment="Drills: measured")


class Drill(Base):
    """An emergency drill: a drill alert sent to its participants; acknowledging and ending it are timed."""

    __tablename__ = "drills"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    duty_id: Mapped[int | None] = mapped_column(ForeignKey("duties.id"))
    scenario: Mapped[str] = mapped_column(String(300))
    receiver: Mapped[str] = mapped_column(String(64), comment="The participants' receiver")
    fingerprint: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    started_by: Mapped[str] = mapped_column(String(100))
    ended_at: Mapped[datetime | None]
