"""API shapes of the offline agent bundles."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from core.agentbundle import Arch


class BundleRead(BaseModel):
    """A bundle the server offers: install it with /agent/install.sh, or fetch /agent/bundle/<arch> by hand."""

    arch: Arch
    version: str
    python_versions: tuple[str, ...]
    platform: str
    built_at: datetime
    tarball_sha256: str
    tarball_bytes: int
    wheels: int
    url: str
