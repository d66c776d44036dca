"""The built agent bundles in the configured directory: which exist, what they hold, whether an agent is behind.

The directory is written by `egovmon agent bundle build --output DIR` (see core.agentbundle for the files) and only
read here. A description that is missing, too large or malformed makes its bundle absent (logged once per change).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from core.agentbundle import (
    ARCHES,
    MAX_INFO_BYTES,
    Arch,
    BundleInfo,
    info_name,
    newer,
    version_key,
)
from server.settings import Settings

log = logging.getLogger(__name__)


def bundle_dir(settings: Settings) -> Path:
    """The directory the server serves agent bundles from."""
    return settings.server.agent_bundle_dir or settings.data_dir / "agent-bundles"


@dataclass(frozen=True, slots=True)
class Bundle:
    """A built bundle ready to serve: its description and its tarball's path."""

    info: BundleInfo
    tarball: Path


_reported: dict[Path, str] = {}  # description file → the problem last logged, so a broken file is logged once


def find(directory: Path, arch: Arch) -> Bundle | None:
    """The bundle for `arch` in `directory`, or None when there is none (or its description is unusable)."""
    path = directory / info_name(arch)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_INFO_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _unusable(path, f"unreadable: {exc.strerror}")
        return None
    if len(raw) > MAX_INFO_BYTES:
        _unusable(path, f"larger than {MAX_INFO_BYTES} bytes")
        return None
    try:
        info = BundleInfo.model_validate_json(raw)
    except ValidationError as exc:
        _unusable(path, f"not a bundle description ({exc.error_count()} errors)")
        return None
    tarball = directory / info.tarball
    if info.arch != arch or not tarball.is_file():
        _unusable(path, "its architecture or tarball does not match")
        return None
    _reported.pop(path, None)
    return Bundle(info, tarball)


def _unusable(path: Path, problem: str) -> None:
    if _reported.get(path) != problem:
        _reported[path] = problem
        log.warning("agent bundle description %s is %s; that bundle is not served", path, problem)


def available(directory: Path) -> list[Bundle]:
    """Every architecture's bundle present in `directory`."""
    return [bundle for arch in ARCHES if (bundle := find(directory, arch)) is not None]


def latest_version(directory: Path) -> str | None:
    """The newest egovmon version any bundle in `directory` installs, or None without bundles."""
    versions = [bundle.info.version for bundle in available(directory)]
    return max(versions, key=version_key) if versions else None


def upgrade_available(agent_version: str, latest: str | None) -> bool:
    """Whether an agent at `agent_version` is behind the served bundles' `latest` version."""
    return latest is not None and newer(latest, agent_version)
