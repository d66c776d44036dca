"""Runs each collector on its own interval with jitter and a timeout, isolated from the others.

Every collector has its own task: a slow or hanging one only delays itself.
Its failures are counted in the health metrics and logged when its state
flips (ok → failing, failing → ok), not on every run. A collector that is also
a `ChangeWatcher` runs again as soon as its source reports a change, and its
reading is flushed to the queue at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.metrics import AgentMetrics
from agent.settings import ScheduleSettings
from core.collect import LOCAL, ChangeWatcher, Collector, Reading, Target
from core.supervise import supervised_task

log = logging.getLogger(__name__)

MIN_SECONDS_BETWEEN_CHANGE_RUNS = 0.2


@dataclass
class Job:
    """One collector, what it collects from and when."""

    collector: Collector
    schedule: ScheduleSettings
    target: Target = LOCAL
    failing: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def name(self) -> str:
        return self.collector.name


class Scheduler:
    """Runs jobs until cancelled; hands every reading to `on_reading(name, reading, urgent)`."""

    def __init__(
        self,
        jobs: list[Job],
        *,
        on_reading: Callable[[str, Reading, bool], None],
        metrics: AgentMetrics,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.jobs = jobs
        self._on_reading = on_reading
        self._metrics = metrics
        self._jitter = jitter

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for job in self.jobs:  # supervised: one job's bug restarts that job, never the others
                name = f"collector-{job.name}"
                group.create_task(supervised_task(name, functools.partial(self._every_interval, job)), name=name)
                if isinstance(job.collector, ChangeWatcher):
                    group.create_task(self._on_change(job), name=f"watch-{job.name}")

    async def run_once(self, job: Job, *, urgent: bool = False) -> Reading | None:
        """Collect once now; returns the reading, or None when the run failed (which is counted)."""
        async with job.lock:
            started = time.perf_counter()
            timeout = job.schedule.timeout_seconds
            try:
                reading = await asyncio.wait_for(job.collector.collect(job.target, timeout=timeout), timeout)
            except TimeoutError:
                self._failed(job, "timeout", f"did not finish within {timeout:g} s")
                return None
            except Exception as exc:  # noqa: BLE001 - isolation of one collector from the others: the one place for this
                self._failed(job, "error", f"{type(exc).__name__}: {exc}")
                return None
            finally:
                self._metrics.collector_duration.labels(job.name).set(time.perf_counter() - started)
            self._metrics.collector_runs.labels(job.name, "ok").inc()
            self._metrics.collector_up.labels(job.name).set(1)
            self._metrics.collector_last_success.labels(job.name).set(time.time())
            if job.failing:
                log.info("collector %s recovered", job.name)
                job.failing = False
            self._on_reading(job.name, reading, urgent)
            return reading

    def _failed(self, job: Job, result: str, reason: str) -> None:
        self._metrics.collector_runs.labels(job.name, result).inc()
        self._metrics.collector_up.labels(job.name).set(0)
        if not job.failing:
            log.warning("collector %s failed: %s", job.name, reason)
            job.failing = True

    async def _every_interval(self, job: Job) -> None:
        schedule = job.schedule
        await asyncio.sleep(self._jitter() * schedule.jitter_seconds)
        loop = asyncio.get_running_loop()
        next_run = loop.time()
        while True:
            await self.run_once(job)
            next_run += schedule.interval_seconds
            now = loop.time()
            if next_run < now:  # the run overran its interval: start again from now
                next_run = now
            await asyncio.sleep(next_run - now + self._jitter() * schedule.jitter_seconds)

    async def _on_change(self, job: Job) -> None:
        watcher = job.collector
        assert isinstance(watcher, ChangeWatcher)
        try:
            async for _ in watcher.changes():
                await self.run_once(job, urgent=True)
                await asyncio.sleep(MIN_SECONDS_BETWEEN_CHANGE_RUNS)
        except Exception as exc:  # noqa: BLE001 - no change source (e.g. no netlink): the interval schedule goes on alone
            log.warning("collector %s cannot watch for changes (%s); it runs on its interval only", job.name, exc)
