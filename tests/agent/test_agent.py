"""The agent against a real `egovmon server` process: outages, restarts, a full queue, broken collectors."""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from agent.runtime import Agent, build, enroll
from agent.scheduler import Job
from agent.settings import AgentSettings, ScheduleSettings, load_agent_settings
from core.collect import Reading, Target
from core.models import Sample
from tests.serverproc import RunningServer, start_server
from tests.services import wait_until

FAST = ScheduleSettings(interval_seconds=1, jitter_seconds=0, timeout_seconds=0.5)


class CountingCollector:
    """A collector made for these tests: run n yields the value n, so a lost or doubled sample shows."""

    name: ClassVar[str] = "counter"

    def __init__(self, limit: int, padding: int = 0) -> None:
        self.limit = limit
        self.padding = padding  # extra random samples per run, to fill batches fast
        self.value = 0

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        if self.value >= self.limit:
            return Reading()
        self.value += 1
        now = datetime.now(UTC)
        samples = [Sample(measurement="test_counter", fields={"value": self.value}, timestamp=now)]
        samples += [
            Sample(measurement="test_padding", tags={"i": str(i)}, fields={"noise": random.random()}, timestamp=now)
            for i in range(self.padding)
        ]
        return Reading(samples=tuple(samples))


class FailingCollector:
    """A collector made for these tests that always raises."""

    name: ClassVar[str] = "failing"

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        raise OSError("sensor went away")


class HangingCollector:
    """A collector made for these tests that never returns (until the test releases it)."""

    name: ClassVar[str] = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        await asyncio.to_thread(self.release.wait, 30)  # a blocked thread, like a hung NFS stat()
        return Reading()


@contextmanager
def running(agent: Agent) -> Iterator[Agent]:
    """Run the agent's event loop in a thread; cancel it on exit."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(agent.run())

    def run() -> None:
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass  # the way the test stops it

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(60)  # a loaded machine (CI with servers starting) can take a while to wind the agent down
        if not loop.is_running():
            loop.close()


def agent_settings(state_dir: Path, **overrides: object) -> AgentSettings:
    return load_agent_settings(
        None,
        state_dir=state_dir,
        metrics={"listen": "127.0.0.1:0"},
        shipper={"flush_interval_seconds": 0.2, "backoff_initial_seconds": 0.1, "backoff_max_seconds": 0.5, "timeout_seconds": 5},
        **overrides,
    )


def counter_values(server: RunningServer, host_id: int) -> list[int]:
    response = httpx.get(
        f"{server.url}/api/v1/hosts/{host_id}/history", params={"measurement": "test_counter"}, headers=server.admin
    )
    return [p["fields"]["value"] for p in response.json()] if response.status_code == 200 else []


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running_server = start_server(tmp_path / "server")
    yield running_server
    running_server.stop()


def test_every_sample_arrives_exactly_once_across_a_server_outage(tmp_path, server):
    credential = enroll(server.url, server.enrollment_token("health"), hostname="agent-host", state_dir=tmp_path / "agent")
    counter = CountingCollector(limit=30)
    schedule = ScheduleSettings(interval_seconds=0.1, jitter_seconds=0, timeout_seconds=1)
    agent = build(agent_settings(tmp_path / "agent"), jobs=[Job(counter, schedule)])
    port = int(server.url.rsplit(":", 1)[1])
    with running(agent):
        agent.start_metrics_server()
        wait_until(lambda: len(counter_values(server, credential.host_id)) >= 3, 20, "the first samples")
        server.stop()
        wait_until(lambda: len(agent.queue) >= 3, 20, "batches to queue up while the server is down")
        assert agent.queue.dropped_batches_total == 0
        restarted = start_server(tmp_path / "server", port=port)
        try:
            wait_until(lambda: counter_values(restarted, credential.host_id) == list(range(1, 31)), 30, "all 30 values, once each")
            wait_until(lambda: len(agent.queue) == 0, 10, "the queue to drain")
            assert re.search(r"egovmon_agent_ship_errors_total [1-9]", _scrape(agent))
        finally:
            restarted.stop()


def test_full_queue_drops_the_oldest_and_the_agent_keeps_running(tmp_path, server):
    enroll(server.url, server.enrollment_token("health"), hostname="agent-host", state_dir=tmp_path / "agent")
    server.stop()  # nothing can be shipped: the queue fills up
    counter = CountingCollector(limit=10_000, padding=200)
    settings = agent_settings(tmp_path / "agent")
    settings.shipper.queue_max_bytes = 1 << 16
    settings.shipper.gzip_level = 1
    agent = build(settings, jobs=[Job(counter, ScheduleSettings(interval_seconds=0.02, jitter_seconds=0))])
    with running(agent):
        agent.start_metrics_server()
        wait_until(lambda: agent.queue.dropped_batches_total > 0, 60, "the queue bound to be reached")
        before = counter.value
        wait_until(lambda: counter.value > before + 5, 10, "collection to go on")
        exposition = _scrape(agent)
    assert agent.queue.bytes <= 1 << 16
    dropped = float(re.search(r"^egovmon_agent_queue_dropped_batches_total (\S+)$", exposition, re.MULTILINE).group(1))
    assert dropped >= 1


def test_a_broken_collector_is_reported_and_the_others_go_on(tmp_path, server):
    credential = enroll(server.url, server.enrollment_token("health"), hostname="agent-host", state_dir=tmp_path / "agent")
    counter = CountingCollector(limit=5)
    hanging = HangingCollector()
    jobs = [
        Job(counter, ScheduleSettings(interval_seconds=0.1, jitter_seconds=0)),
        Job(FailingCollector(), FAST),
        Job(hanging, FAST),
    ]
    agent = build(agent_settings(tmp_path / "agent"), jobs=jobs)
    try:
        with running(agent):
            agent.start_metrics_server()
            wait_until(lambda: counter_values(server, credential.host_id) == [1, 2, 3, 4, 5], 20, "the healthy collector's values")
            wait_until(lambda: 'egovmon_agent_collector_runs_total{collector="hanging",result="timeout"}' in _scrape(agent), 10, "the timeout")
            exposition = _scrape(agent)
    finally:
        hanging.release.set()
    assert 'egovmon_agent_collector_up{collector="failing"} 0.0' in exposition
    assert 'egovmon_agent_collector_up{collector="hanging"} 0.0' in exposition
    assert 'egovmon_agent_collector_up{collector="counter"} 1.0' in exposition
    assert re.search(r'egovmon_agent_collector_runs_total\{collector="failing",result="error"\} [1-9]', exposition)


def test_a_collector_task_that_dies_is_restarted_and_its_liveness_is_in_metrics(tmp_path, server):
    """A bug past the collector's own isolation (here the hand-over of a reading to the batcher) used to end the
    scheduler's task group, and with it every collector; now that one task restarts (core.supervise), the restart
    shows in the agent's /metrics, and the next readings reach the server."""
    credential = enroll(server.url, server.enrollment_token("health"), hostname="agent-host", state_dir=tmp_path / "agent")
    counter = CountingCollector(limit=4)
    agent = build(agent_settings(tmp_path / "agent"), jobs=[Job(counter, ScheduleSettings(interval_seconds=0.1, jitter_seconds=0))])
    real_add, calls = agent.batcher.add, []

    def add_broken_once(reading: Reading) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the hand-over")
        real_add(reading)

    agent.batcher.add = add_broken_once
    with running(agent):
        agent.start_metrics_server()
        wait_until(lambda: counter_values(server, credential.host_id) == [2, 3, 4], 20, "the readings after the restart")
        exposition = _scrape(agent)
    assert re.search(r'^egovmon_agent_worker_restarts_total\{worker="collector-counter"\} 1\.0$', exposition, re.MULTILINE)
    assert re.search(r'^egovmon_agent_worker_up\{worker="collector-counter"\} 1\.0$', exposition, re.MULTILINE)
    assert re.search(r'^egovmon_agent_worker_up\{worker="shipper"\} 1\.0$', exposition, re.MULTILINE)


def test_enrolment_stores_the_credential_owner_only_and_refuses_a_used_token(tmp_path, server):
    token = server.enrollment_token("health")
    credential = enroll(server.url, token, hostname="web-01", state_dir=tmp_path / "agent")
    path = tmp_path / "agent" / "credential.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert credential.credential.startswith("egva_") and credential.hostname == "web-01"
    from agent.runtime import EnrollmentError

    with pytest.raises(EnrollmentError, match="already been used"):
        enroll(server.url, token, hostname="web-02", state_dir=tmp_path / "other")


def _scrape(agent: Agent) -> str:
    host, port = agent.metrics_server.server_address[:2]
    return httpx.get(f"http://{host}:{port}/metrics").text


def test_a_shipped_batch_is_logged_at_debug_only(tmp_path, server, caplog):
    """At the default INFO level a healthy agent logs nothing per batch (httpx's line per POST is silenced by the
    agent's logging setup); at DEBUG the shipper names each batch."""
    import logging

    from cli.agent import configure_logging

    caplog.set_level("INFO")  # the root logger at the default level of `egovmon agent run`
    caplog.set_level("DEBUG", logger="agent.shipping")
    before = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    configure_logging("INFO")
    enroll(server.url, server.enrollment_token("health"), hostname="quiet-host", state_dir=tmp_path / "agent")
    counter = CountingCollector(limit=5)
    agent = build(agent_settings(tmp_path / "agent"), jobs=[Job(counter, ScheduleSettings(interval_seconds=0.1, jitter_seconds=0))])
    with running(agent):
        sent = lambda: (agent.registry.get_sample_value("egovmon_agent_shipped_batches_total", {"result": "sent"}) or 0) >= 2  # noqa: E731
        wait_until(sent, 20, "two shipped batches")
    for name, level in before.items():
        logging.getLogger(name).setLevel(level)
    # INFO lines per batch are the noise; errors (another test's agent whose directory is gone) are not this test's
    noisy = [r for r in caplog.records if r.levelno == logging.INFO and r.name in ("httpx", "httpcore", "agent.shipping")]
    assert noisy == []
    assert [r.levelname for r in caplog.records if r.getMessage().startswith("shipped batch")][:2] == ["DEBUG", "DEBUG"]
