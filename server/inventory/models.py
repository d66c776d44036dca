"""Declared inventory (sites, address plan, exemptions, systems, websites, hosts) and observed facts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.database import Base


class DeclaredSite(Base):
    __tablename__ = "inventory_sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), comment="platform_dc, backup_centre, exchange_centre, agency_room, other")
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"), index=True)
    approved_data_centre: Mapped[bool] = mapped_column(default=False, comment="Registered as an approved data centre")


class PlanEntry(Base):
    __tablename__ = "inventory_plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64), unique=True, comment="An approved e-gov extranet prefix")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    site: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(200), default="")
    vlan: Mapped[int | None]


class ExemptionEntry(Base):
    __tablename__ = "inventory_exemptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64), unique=True, comment="An approved private network (Article 9)")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    approval_ref: Mapped[str] = mapped_column(String(200), comment="The approval document, e.g. 市政务办〔2026〕12号")
    classification: Mapped[str] = mapped_column(String(32), comment="to_be_merged, merged, exempt")
    expires_at: Mapped[datetime | None]


class SystemEntry(Base):
    __tablename__ = "inventory_systems"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    accepted: Mapped[bool] = mapped_column(default=False, comment="Acceptance recorded (Article 17)")
    on_platform: Mapped[bool] = mapped_column(default=True, comment="Deployed on the city platform (Article 30(3))")


class WebsiteEntry(Base):
    __tablename__ = "inventory_websites"

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(253), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")


class HostEntry(Base):
    __tablename__ = "inventory_hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(64))
    system: Mapped[str | None] = mapped_column(String(64))


class ObservedFact(Base):
    """One fact about an observed asset from one observation of one host; first and last seen."""

    __tablename__ = "observed_facts"
    __table_args__ = (
        UniqueConstraint("kind", "key", "source", "observation_kind", "observation_subject", "host", name="uq_observed_fact"),
        Index("ix_observed_facts_key", "kind", "key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), comment="subnet, dhcp_server, tunnel_endpoint, web_service, host_*")
    key: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(64))
    observation_kind: Mapped[str] = mapped_column(String(64))
    observation_subject: Mapped[str] = mapped_column(String(256))
    host: Mapped[str] = mapped_column(String(253))
    agency_code: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(index=True)
    detail: Mapped[dict[str, Any]]
