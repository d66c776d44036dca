"""Session-wide real servers: VictoriaMetrics, InfluxDB 1.x and PostgreSQL (see tests/services.py).

A missing server program skips the tests that need it, except in CI
(`CI=true`), where it fails them: CI must have every server installed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# --- `slow`: tests that start real programs or the server stack -------------------------------------
# `pytest -m "not slow"` runs the pure tests (decoders, rules, reconciliation, settings...) in seconds;
# see README, "Running the tests". A test is slow when it is in a directory below, or uses one of
# these fixtures (directly or through another fixture), or starts a process itself: an unmarked test
# that starts one fails with a message saying so, so the marker cannot silently drift.
SLOW_DIRECTORIES = ("server", "fuzz")  # server: the app with its database; fuzz: the campaign through real processes
SLOW_FIXTURES = frozenset({
    "victoriametrics", "influxdb1", "postgres",  # this file
    "snmpd", "snmpsim", "served",  # tests/collectors/snmp
    "https_server", "http_server", "dns_server",  # tests/probes
})
TESTS = Path(__file__).resolve().parent


# Modules whose tests start programs (snmpd, softflowd, tshark, an agent or a server process, network
# namespaces) without one of the fixtures above.
SLOW_MODULES = frozenset({
    "agent/test_agent.py", "agent/test_agent_process.py", "agent/test_flow_agent.py", "agent/test_netstate_live.py",
    "collectors/flow/test_softflowd.py", "collectors/flow/test_tshark.py", "probes/test_netns.py",
    "agent/test_agent_tls.py",  # the server stack behind TLS
    "deploy/test_offline_install.py",  # builds bundles with pip, installs in a network namespace
    "core/test_catalog.py",  # runs every real collector and probe against real programs
    "alerting/test_notify.py",  # real SMTP, HTTP and syslog servers on loopback
    "dashboards/test_queries.py",  # every panel query against a real InfluxDB and VictoriaMetrics
})
# Single tests that start a program, in modules whose other tests are pure (module::test name).
SLOW_TESTS = frozenset({
    "agent/test_queue.py::test_a_full_file_system_drops_the_oldest_batches_first_counts_them_and_leaves_no_temporary_files",
    "collectors/flow/test_hostile.py::test_a_real_listener_survives_the_attack_and_decodes_the_next_1000_datagrams_exactly",
    "collectors/flow/test_hostile.py::test_flow_decode_on_the_crafted_file_counts_it_and_exits_0",
    "collectors/snmp/test_collector.py::test_cli_traps_prints_one_json_line_per_trap",
    "collectors/snmp/test_collector.py::test_a_dead_trap_receiver_is_restarted_on_its_port_and_counted_in_metrics",
    "collectors/snmp/test_poll_live.py::test_net_snmp_bulk_request_decodes_and_reencodes_byte_for_byte",
    "collectors/snmp/test_traps.py::test_traps_and_informs_from_net_snmp",
    "collectors/test_backup.py::test_a_command_past_its_timeout_is_killed_with_its_children",
    "collectors/test_backup.py::test_real_commands",
    "collectors/test_backup.py::test_the_collection_timeout_bounds_every_job",
    "collectors/test_netstate.py::test_changes_yields_within_two_seconds_of_each_change_and_coalesces_bursts",
    "collectors/test_netstate.py::test_collect_inside_a_namespace_with_veth_bridge_vxlan_routes_and_listeners",
    "collectors/test_netstate.py::test_getifaddrs_fallback_finds_what_iproute2_finds",
    "collectors/test_netstate.py::test_iproute2_failure_is_a_typed_error",
    "collectors/test_netstate.py::test_legacy_iptables_masquerade_is_seen_though_nft_shows_nothing",
    "collectors/test_netstate.py::test_listening_sockets_from_real_psutil_connections",
    "collectors/test_netstate.py::test_source_nat_in_a_namespace_by_nft_and_by_conntrack",
    "dashboards/test_datasource_auth.py::test_influxql_datasource_user_and_password_read_the_agency_view",
    "probes/test_checks_live.py::test_cli_text_is_chinese_by_default",
    "probes/test_checks_live.py::test_icmp_without_cap_net_raw_says_so",
    "core/test_version.py::test_openapi_document_carries_it",  # builds the server app
    "core/test_layering.py::test_importing_all_of_core_loads_no_outer_project_package",  # a fresh interpreter
    "probes/test_kind_smtp.py::test_the_scheduler_and_the_cli_run_the_kind",
    "probes/test_kinds.py::test_cli_lists_the_kinds_and_runs_any_kind_as_configured",
    # pure but seconds of CPU each: batches of the maximum size, many generated examples
    "core/test_wire.py::test_sample_limit_is_the_same",
    "core/test_lineprotocol.py::test_encoder_matches_encode_line",
    "core/test_models.py::test_batch_holds_the_maximum_number_of_samples",
    "core/test_models.py::test_batch_with_too_many_samples_refused",
    "agent/test_batcher.py::test_a_reading_with_more_observations_than_a_batch_holds_is_split",
    "collectors/flow/test_batch.py::test_fuzz_batches_of_mutated_fixtures",
    "collectors/flow/test_decode.py::test_fuzz_mutated_fixtures",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `slow` the tests that need real programs or the server stack (see above)."""
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(TESTS)
        top_level_module = len(relative.parts) == 1  # tests/test_*.py: end-to-end tests of whole processes
        test = f"{relative.as_posix()}::{getattr(item, 'originalname', item.name)}"
        if (top_level_module or relative.parts[0] in SLOW_DIRECTORIES or relative.as_posix() in SLOW_MODULES
                or test in SLOW_TESTS or SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.slow)


def _guarded(item: pytest.Item) -> bool:
    """In a `-m "not slow"` run, a test (its fixtures included) that starts a process fails and says how to mark it.

    Only then: a full run is never changed by this, so a new test elsewhere cannot break the suite.
    """
    return "not slow" in (item.config.getoption("markexpr") or "") and item.get_closest_marker("slow") is None


@contextmanager
def _processes_refused(item: pytest.Item) -> Iterator[None]:
    """While open, starting a process fails (when `item` is guarded)."""
    if not _guarded(item):
        yield
        return

    def refuse(self: subprocess.Popen[bytes], args: object, *more: object, **options: object) -> None:
        raise AssertionError(f"{item.nodeid} starts a process ({args!r}) but is not marked slow: add it to "
                             "SLOW_TESTS or SLOW_MODULES in tests/conftest.py (or use a fixture of SLOW_FIXTURES)")

    original = subprocess.Popen.__init__
    subprocess.Popen.__init__ = refuse  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _processes_refused(item):
        yield
