"""Real SNMP agents for these tests: a net-snmp snmpd (v2c + v3 authPriv users) and snmpsim serving the
recordings. A missing program skips the tests that need it, except with CI=true, where it fails them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.collectors.snmp.snmprec import SHARED, recordings
from tests.services import BinaryMissingError, Snmpd, Snmpsim, start_snmpd, start_snmpsim

S = TypeVar("S")


def _start_or_skip(start: Callable[[], S]) -> S:
    try:
        return start()
    except BinaryMissingError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (required when CI=true)", pytrace=False)
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """snmpd on a free loopback port: community egovmon-ro, users egovmon-sha (SHA/AES) and egovmon-sha256
    (SHA-256/AES-256)."""
    server = _start_or_skip(lambda: start_snmpd(tmp_path_factory.mktemp("snmpd")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpsim]:
    """snmpsim serving every recording (repaired copies); community = file name without .snmprec."""
    if not SHARED.is_dir() and os.environ.get("CI") == "true":
        pytest.fail(f"{SHARED} is missing (required when CI=true)", pytrace=False)
    server = _start_or_skip(lambda: start_snmpsim(tmp_path_factory.mktemp("snmpsim"), recordings()))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def served(snmpsim: Snmpsim) -> dict[str, Path]:
    """Recording name (community) -> the repaired copy snmpsim serves."""
    return {path.stem: path for path in sorted(snmpsim.data_dir.glob("*.snmprec"))}
