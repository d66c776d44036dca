"""The version is written once, in pyproject.toml; the code reads it from the installed metadata."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from core.version import version

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "collectors", "probes", "agent", "inventory", "alerting", "dashboards", "server", "cli")


def _declared() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"])


def test_version_is_pyprojects() -> None:
    assert version() == _declared()


def test_version_string_is_written_nowhere_else() -> None:
    literal = re.compile(r"""["']""" + re.escape(_declared()) + r"""["']""")
    copies = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert copies == []


def test_openapi_document_carries_it(tmp_path: Path) -> None:
    from server.app import create_app
    from server.settings import Settings

    settings = Settings(data_dir=tmp_path)
    assert create_app(settings).openapi()["info"]["version"] == _declared()
