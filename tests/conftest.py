"""Session-wide real servers: VictoriaMetrics, InfluxDB 1.x and PostgreSQL (see tests/services.py).

A missing server program skips the tests that need it, except in CI
(`CI=true`), where it fails them: CI must have every server installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.services import (
    BinaryMissingError,
    InfluxDB1,
    Postgres,
    VictoriaMetrics,
    start_influxdb1,
    start_postgres,
    start_victoriametrics,
)

S = TypeVar("S", VictoriaMetrics, InfluxDB1, Postgres)


def _start_or_skip(start: Callable[[Path], S], tmpdir: Path) -> S:
    """Start a server; skip (fail in CI) when its program is not installed."""
    try:
        return start(tmpdir)
    except BinaryMissingError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (required when CI=true)", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def victoriametrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetrics]:
    """A VictoriaMetrics server for the whole session."""
    server = _start_or_skip(start_victoriametrics, tmp_path_factory.mktemp("victoriametrics"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def influxdb1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB1]:
    """An InfluxDB 1.x server with database egovmon, for the whole session."""
    server = _start_or_skip(start_influxdb1, tmp_path_factory.mktemp("influxdb1"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A PostgreSQL server for the whole session; `postgres.create_database(name)` gives a SQLAlchemy URL."""
    server = _start_or_skip(start_postgres, tmp_path_factory.mktemp("postgres"))
    yield server
    server.stop()
