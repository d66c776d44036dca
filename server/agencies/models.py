"""Agencies: the city's departments that own hosts, systems and duties (Article 25 scoping)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from server.database import Base


class Agency(Base):
    """One agency; everything an agency user or agent sees is scoped to it."""

    __tablename__ = "agencies"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True, comment="Short stable code, e.g. health-bureau")
    name: Mapped[str] = mapped_column(String(200), comment="Display name, e.g. 市卫生健康委员会")
    created_at: Mapped[datetime]
