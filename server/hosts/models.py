"""Hosts, their latest values and the embedded bounded history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.database import Base


class Host(Base):
    """A machine an agent reports for; belongs to one agency. Host names are unique platform-wide."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    hostname: Mapped[str] = mapped_column(String(253), unique=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]


class LatestSeries(Base):
    """The newest fields of one series of one host (measurement + tag set)."""

    __tablename__ = "latest_series"

    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), primary_key=True)
    series_key: Mapped[str] = mapped_column(String(2048), primary_key=True, comment="measurement,k=v,... sorted")
    measurement: Mapped[str] = mapped_column(String(128))
    tags: Mapped[dict[str, Any]]
    fields: Mapped[dict[str, Any]]
    ts_ns: Mapped[int] = mapped_column(BigInteger, comment="Sample time, ns since the epoch")


class HistoryPoint(Base):
    """One point of the embedded history, kept only when no TSDB is configured (bounded)."""

    __tablename__ = "history_points"
    __table_args__ = (Index("ix_history_host_measurement_ts", "host_id", "measurement", "ts_ns"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"))
    measurement: Mapped[str] = mapped_column(String(128))
    series_key: Mapped[str] = mapped_column(String(2048))
    tags: Mapped[dict[str, Any]]
    fields: Mapped[dict[str, Any]]
    ts_ns: Mapped[int] = mapped_column(BigInteger, index=True)
