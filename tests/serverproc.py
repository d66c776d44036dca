"""Run `egovmon server` as a real uvicorn child process for tests, on a loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.services import wait_until


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[str]

    @property
    def admin(self) -> dict[str, str]:
        token = (self.data_dir / "initial-admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def enrollment_token(self, agency_code: str) -> str:
        """Create the agency if needed and a one-time enrolment token for it."""
        agencies = httpx.get(f"{self.url}/api/v1/agencies", headers=self.admin).json()
        ids = {a["code"]: a["id"] for a in agencies}
        if agency_code not in ids:
            created = httpx.post(f"{self.url}/api/v1/agencies", json={"code": agency_code, "name": "测试"}, headers=self.admin)
            assert created.status_code == 201, created.text
            ids[agency_code] = created.json()["id"]
        token = httpx.post(f"{self.url}/api/v1/enrollment-tokens", json={"agency_id": ids[agency_code]}, headers=self.admin)
        assert token.status_code == 201, token.text
        return str(token.json()["token"])

    def agent(self, agency_code: str, hostname: str) -> dict[str, str]:
        """Enrol an agent for `hostname` through the API; returns its request headers."""
        enrolled = httpx.post(
            f"{self.url}/api/v1/agents/enroll", json={"token": self.enrollment_token(agency_code), "hostname": hostname}
        )
        assert enrolled.status_code == 201, enrolled.text
        return {"Authorization": f"Bearer {enrolled.json()['credential']}"}

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics").text

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _kill_group(self.process.pid)  # workers or a jobs process the server left behind


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a server's process group (it leads its own session: see start_server)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_server(
    workdir: Path, *, tsdb: str = "{kind: none}", port: int = 0, wrapper: Sequence[str] = (), extra: str = "", workers: int = 1,
    host: str = "127.0.0.1",
) -> RunningServer:
    """Start `egovmon server` with data in `workdir/data`; `wrapper` prefixes the command (e.g. `ip netns exec NS`);
    `extra` is more YAML configuration (e.g. an `alerting:` section)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "egovmon.yaml"
    data_dir = workdir / "data"
    config.write_text(f"data_dir: {data_dir}\nserver: {{host: {host}, port: {port}, workers: {workers}}}\ntsdb: {tsdb}\n{extra}")
    process = subprocess.Popen(
        [*wrapper, sys.executable, "-m", "cli", "server", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,  # its own process group: stop() ends the workers and the jobs process with it
    )
    line = process.stdout.readline()
    match = re.search(rf"http://{re.escape(host)}:\d+", line)
    if not match:
        process.kill()
        _kill_group(process.pid)
        raise AssertionError(f"no URL in {line!r}; stderr: {process.stderr.read()}")
    server = RunningServer(match.group(0), data_dir, process)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read())
        try:
            return httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    if not wrapper:
        # a condition, not a sleep: returns as soon as /healthz answers; the margin is for a loaded CI machine, where
        # two workers and a jobs process importing the app took over 30 s (CI at 097819f)
        try:
            wait_until(ready, 90, "egovmon server")
        except BaseException:
            server.stop()  # a server that did not come up must not run on under later tests (it did, after CI at 097819f)
            raise
    return server


@contextmanager
def egovmon_server(workdir: Path, tsdb: str = "{kind: none}", *, port: int = 0) -> Iterator[RunningServer]:
    """`egovmon server --config` as a child process on a loopback port; stopped with SIGINT."""
    server = start_server(workdir, tsdb=tsdb, port=port)
    try:
        yield server
    finally:
        server.stop()
