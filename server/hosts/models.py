"""Hosts, their latest values and the embedded bounded history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from core.jsontypes import JsonObject
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
    tags: Mapped[dict[str, str]] = mapped_column(JSON)  # tag values are text (checked at ingest)
    fields: Mapped[JsonObject]
    ts_ns: Mapped[int] = mapped_column(BigInteger, comment="Sample time, ns since the epoch")


class HistoryChunk(Base):
    """Embedded history (kept only when no TSDB is configured, bounded): the points of one host's measurement from
    one minute at most, in one row (server/hosts/chunks.py encodes them). One agent batch of 31 points becomes
    about 9 rows instead of 31, and the row holds compressed JSON instead of three JSON columns and a key."""

    __tablename__ = "history_chunks"
    __table_args__ = (Index("ix_history_chunks_host_measurement_ts", "host_id", "measurement", "ts_ns"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"))
    measurement: Mapped[str] = mapped_column(String(128))
    ts_ns: Mapped[int] = mapped_column(BigInteger, comment="The oldest point's time, ns since the epoch")
    ts_max_ns: Mapped[int] = mapped_column(BigInteger, index=True, comment="The newest point's time (retention goes by it)")
    points: Mapped[int] = mapped_column(Integer, comment="Points in the payload (the cap counts them)")
    payload: Mapped[bytes] = mapped_column(LargeBinary, comment="chunks.encode(): version byte, zlib of JSON")
