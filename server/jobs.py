"""The jobs process: with several HTTP workers, the platform-wide periodic jobs run in one process of their own.

Retention, the full reconciliation pass, alert evaluation, notification delivery and the
state export read and write the whole platform's state; on a fleet of thousands of hosts
an alert cycle or a state export takes seconds of CPU. In an HTTP worker that time holds
the interpreter lock the worker's ingest requests need, so `egovmon server` with
`workers > 1` serves HTTP from workers that run none of these jobs (role `http`) and
starts this process (role `jobs`) beside them. Across replicas the alert evaluation still
goes to the one holder of the evaluation lease (server/alerting/engine.py).

`JobsProcess` is the parent's handle: it starts `python -m server.jobs` with the parent's
environment, restarts it (logged, after a pause that grows to a minute) when it dies, and
stops it with the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

STOP_TIMEOUT_SECONDS = 30.0
MAX_RESTART_PAUSE_SECONDS = 60.0


def main() -> None:
    """Entry point of the jobs process: settings from the environment (as server/asgi.py), run until SIGTERM/SIGINT."""
    from server.app import create_app  # noqa: PLC0415
    from server.settings import load_settings  # noqa: PLC0415 - the child imports the server only here

    path = os.environ.get("EGOVMON_CONFIG_FILE") or None
    settings = load_settings(Path(path) if path else None)
    logging.basicConfig(level=settings.log.level, format="%(asctime)s %(levelname)s jobs %(name)s: %(message)s")
    app = create_app(settings, role="jobs")
    asyncio.run(_run(app))


async def _run(app: object) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with app.router.lifespan_context(app):  # type: ignore[attr-defined]
        log.info("egovmon jobs process running (pid %d)", os.getpid())
        await stop.wait()


def _forget_metrics_of(pid: int) -> None:
    """A dead jobs process's live gauges stop counting in the workers' combined /metrics (multiprocess mode)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess  # noqa: PLC0415

        multiprocess.mark_process_dead(pid, directory)


class JobsProcess:
    """Runs `main` in a child process and keeps it running until `stop`."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="jobs-watcher", daemon=True)
        self.restarts = 0

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "EGOVMON_ROLE"}
        package_root = str(Path(__file__).resolve().parent.parent)  # importable however the parent was started
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
        self._process = subprocess.Popen([sys.executable, "-m", "server.jobs"], env=env)

    def _watch(self) -> None:
        pause = 1.0
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            try:
                code = process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                continue
            if self._stopping.is_set():
                return
            self.restarts += 1
            _forget_metrics_of(process.pid)
            log.error("the jobs process exited with code %s; restarting it in %.0f s (restart %d)", code, pause, self.restarts)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, MAX_RESTART_PAUSE_SECONDS)
            self._spawn()

    def stop(self) -> None:
        """SIGTERM, wait for the jobs to finish their round, then kill if it does not."""
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("the jobs process did not stop within %.0f s; killing it", STOP_TIMEOUT_SECONDS)
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
