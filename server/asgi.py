"""ASGI factory for multi-process serving (`uvicorn --factory server.asgi:app_from_environment`).

Settings come from the file named by EGOVMON_CONFIG_FILE (optional) and the
EGOVMON_* environment, so every worker process builds the same app; EGOVMON_ROLE
(`http` for the workers `egovmon server` starts, see server/jobs.py) picks its role.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from server.app import create_app
from server.settings import load_settings


def app_from_environment() -> FastAPI:
    """An app built from EGOVMON_CONFIG_FILE and the environment."""
    path = os.environ.get("EGOVMON_CONFIG_FILE") or None
    role = os.environ.get("EGOVMON_ROLE", "all")
    return create_app(load_settings(Path(path) if path else None), role=role)  # type: ignore[arg-type]  # checked there
