"""Declared inventory (sites, address plan, exemptions, systems, websites, hosts) and observed facts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from core.jsontypes import JsonObject
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
    # Two agencies' machine rooms may both use 192.168.1.0/24: a prefix is unique per agency, not platform-wide.
    __table_args__ = (UniqueConstraint("prefix", "agency_id", name="uq_plan_prefix_agency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64), comment="An approved e-gov extranet prefix")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    site: Mapped[str | None] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(200), default="")
    vlan: Mapped[int | None]
    shared: Mapped[bool] = mapped_column(default=False, server_default=false(),
                                         comment="Platform-wide (admins only): counts as declared for every agency")


class ExemptionEntry(Base):
    __tablename__ = "inventory_exemptions"
    __table_args__ = (UniqueConstraint("prefix", "agency_id", name="uq_exemption_prefix_agency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64), comment="An approved private network (Article 9)")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    approval_ref: Mapped[str] = mapped_column(String(200), comment="The approval document, e.g. 市政务办〔2026〕12号")
    classification: Mapped[str] = mapped_column(String(32), comment="to_be_merged, merged, exempt")
    expires_at: Mapped[datetime | None]


class SystemEntry(Base):
    __tablename__ = "inventory_systems"
    # Each agency's registry is its own namespace (Article 25): a key another agency holds is as free as any other.
    __table_args__ = (UniqueConstraint("code", "agency_id", name="uq_system_code_agency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    accepted: Mapped[bool] = mapped_column(default=False, comment="Acceptance recorded (Article 17)")
    on_platform: Mapped[bool] = mapped_column(default=True, comment="Deployed on the city platform (Article 30(3))")


class WebsiteEntry(Base):
    __tablename__ = "inventory_websites"
    __table_args__ = (UniqueConstraint("host", "agency_id", name="uq_website_host_agency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(253))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    shared: Mapped[bool] = mapped_column(default=False, server_default=false(),
                                         comment="Platform-wide (admins only): registered for every agency")


class HostEntry(Base):
    __tablename__ = "inventory_hosts"
    __table_args__ = (UniqueConstraint("name", "agency_id", name="uq_host_name_agency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(253))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(64))
    system: Mapped[str | None] = mapped_column(String(64))


class AllotmentEntry(Base):
    """A prefix the e-gov office allots to an agency: inside it the agency declares without a request (Article 9)."""

    __tablename__ = "inventory_allotments"
    __table_args__ = (UniqueConstraint("prefix", "agency_id", name="uq_allotment_prefix_agency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(64), comment="The allotted prefix")
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    approval_ref: Mapped[str | None] = mapped_column(String(200), comment="The document that allots it")
    note: Mapped[str] = mapped_column(String(500), default="")


# The table row of one declaration, of any kind (server/inventory/service.py KINDS maps each to its kind).
DeclarationRow = DeclaredSite | PlanEntry | ExemptionEntry | SystemEntry | WebsiteEntry | HostEntry | AllotmentEntry


class DeclarationRequest(Base):
    """A declaration an agency may not make alone (too wide, outside its allotment, shared): pending until decided."""

    __tablename__ = "inventory_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), comment="address_plan or exemptions")
    prefix: Mapped[str] = mapped_column(String(64))
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), index=True)
    entry: Mapped[JsonObject] = mapped_column(JSON, comment="The declaration as requested")
    reason: Mapped[str] = mapped_column(String(32), comment="too_wide, outside_allotment, shared, requested")
    status: Mapped[str] = mapped_column(String(16), index=True, comment="pending, approved, rejected")
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(String(1000), default="")
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    approval_ref: Mapped[str | None] = mapped_column(String(200), comment="The approval reference (批准文号) when approved")
    decision_note: Mapped[str] = mapped_column(String(1000), default="")
    entry_id: Mapped[int | None] = mapped_column(comment="The declaration created on approval")


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
    detail: Mapped[JsonObject] = mapped_column(JSON)


class InventoryRevision(Base):
    """One row counting changes to the declarations (server/inventory/revision.py): a cached registry is
    reused while the count is unchanged, in every worker and replica sharing the database."""

    __tablename__ = "inventory_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(default=0)
