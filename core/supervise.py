"""Long-running workers that never stay dead: a worker that raises is logged, counted and started again.

Hostile input must not stop a collector (issue 14). Each worker catches what it
expects per datagram or per batch; this is the net under that: if a worker thread
or task raises anyway (a bug, an exhausted resource), it is restarted after a
backoff (0.1 s doubling to 5 s, back to 0.1 s after a minute of health), the
restart is counted and logged with its traceback, and its liveness is visible
in the agent's /metrics (`egovmon_agent_worker_up`, `egovmon_agent_worker_restarts_total`).

A worker that returns normally has finished (stopping) and is not restarted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 5.0
HEALTHY_AFTER_SECONDS = 60.0  # a worker that ran this long before failing restarts at the first delay again


@dataclass(frozen=True, slots=True)
class WorkerState:
    """One worker as /metrics shows it."""

    name: str
    up: bool
    restarts: int
    last_error: str | None


class Workers:
    """Liveness and restart counts of a process's workers; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._up: dict[str, int] = {}  # name → instances running (a name may run more than once, e.g. in tests)
        self._restarts: dict[str, int] = {}
        self._errors: dict[str, str] = {}

    def up(self, name: str) -> None:
        with self._lock:
            self._up[name] = self._up.get(name, 0) + 1
            self._restarts.setdefault(name, 0)

    def down(self, name: str) -> None:
        with self._lock:
            self._up[name] = max(self._up.get(name, 0) - 1, 0)

    def restarted(self, name: str, error: BaseException) -> None:
        with self._lock:
            self._restarts[name] = self._restarts.get(name, 0) + 1
            self._errors[name] = f"{type(error).__name__}: {error}"[:500]

    def snapshot(self) -> list[WorkerState]:
        with self._lock:
            return [
                WorkerState(name, self._up.get(name, 0) > 0, restarts, self._errors.get(name))
                for name, restarts in sorted(self._restarts.items())
            ]

    def restarts(self, name: str) -> int:
        with self._lock:
            return self._restarts.get(name, 0)


WORKERS = Workers()  # the process's workers; the agent's /metrics reads it


class _Backoff:
    def __init__(self) -> None:
        self.delay = FIRST_DELAY_SECONDS
        self.started = time.monotonic()

    def next(self) -> float:
        if time.monotonic() - self.started >= HEALTHY_AFTER_SECONDS:
            self.delay = FIRST_DELAY_SECONDS
        delay, self.delay = self.delay, min(self.delay * 2, MAX_DELAY_SECONDS)
        return delay

    def restarted(self) -> None:
        self.started = time.monotonic()


def supervised_thread(
    name: str, target: Callable[[], None], *, stopping: threading.Event, workers: Workers = WORKERS
) -> threading.Thread:
    """A daemon thread (not started) that runs `target` and runs it again whenever it raises, until `stopping` is
    set or `target` returns."""

    def run() -> None:
        backoff = _Backoff()
        workers.up(name)
        try:
            while True:
                try:
                    target()
                    return
                except Exception as exc:
                    if stopping.is_set():
                        return
                    delay = backoff.next()
                    workers.restarted(name, exc)
                    log.exception("worker %s died; restarting it in %.1f s", name, delay)
                    if stopping.wait(delay):
                        return
                    backoff.restarted()
        finally:
            workers.down(name)

    return threading.Thread(target=run, name=name, daemon=True)


async def supervised_task(name: str, factory: Callable[[], Awaitable[None]], *, workers: Workers = WORKERS) -> None:
    """Await `factory()` and again whenever it raises (not when cancelled), until it returns."""
    backoff = _Backoff()
    workers.up(name)
    try:
        while True:
            try:
                await factory()
                return
            except Exception as exc:
                delay = backoff.next()
                workers.restarted(name, exc)
                log.exception("worker %s died; restarting it in %.1f s", name, delay)
                await asyncio.sleep(delay)
                backoff.restarted()
    finally:
        workers.down(name)
