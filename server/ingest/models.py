"""Ingest bookkeeping: batch ids already stored, and raw observations awaiting the inventory."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.jsontypes import JsonObject
from server.database import Base


class IngestedBatch(Base):
    """A batch id seen from one agent; its primary key makes a re-sent batch a no-op."""

    __tablename__ = "ingested_batches"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    samples: Mapped[int]
    observations: Mapped[int]


class ObservationRecord(Base):
    """One observation as received, with agency and host taken from the agent's credential."""

    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_kind_subject", "kind", "subject"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(64))
    attributes: Mapped[JsonObject]
    observed_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(index=True)
