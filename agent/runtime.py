"""Builds and runs an agent: collectors → scheduler → batcher → disk queue → shipper, plus /metrics.

`build(settings)` wires everything and does no I/O; `Agent.run()` opens the
queue, starts the local /metrics endpoint and runs until cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, start_http_server

from agent.metrics import AgentMetrics, FlowListenerStats, LatestReadings, SnmpCollectorStats
from agent.queue import DiskQueue
from agent.scheduler import Job, Scheduler
from agent.settings import AgentSettings, ShipperSettings
from agent.shipping import Batcher, Shipper
from agent.transport import check_server_url, tls_context
from core.collect import Collector, Reading
from core.filemodes import make_private
from core.supervise import supervised_task
from core.version import UNKNOWN as UNKNOWN_VERSION
from core.version import version as egovmon_version

log = logging.getLogger(__name__)


class EnrollmentError(Exception):
    """The server refused the enrolment, or could not be reached; the message says which."""


class NotEnrolledError(Exception):
    """No credential in the state directory: run `egovmon agent enroll` first."""


@dataclass(frozen=True)
class Credential:
    """What enrolment gave this agent; stored in `<state_dir>/credential.json`, mode 0600."""

    server_url: str
    agent_id: int
    agency_id: int
    host_id: int
    hostname: str
    credential: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(self.__dict__, handle, indent=2)
        os.chmod(path, 0o600)

    @classmethod
    def load(cls, path: Path) -> Credential:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise NotEnrolledError(f"no agent credential at {path}; run `egovmon agent enroll` first") from exc
        return cls(**data)


def enroll(
    server_url: str, token: str, *, hostname: str, state_dir: Path, version: str | None = None,
    shipper: ShipperSettings | None = None, insecure: bool = False,
) -> Credential:
    """Exchange a one-time enrolment token for this agent's credential and store it (mode 0600).

    The connection follows `shipper`'s TLS settings (CA file, pin); cleartext http:// to another
    host is refused unless `insecure` (or `shipper.insecure_http`).

    Raises:
        EnrollmentError: the server refused (its message is kept) or was unreachable.
        TransportError: the URL would send the token in the clear, or the TLS settings are unusable.
    """
    shipper = shipper or ShipperSettings()
    check_server_url(server_url, insecure=insecure or shipper.insecure_http)
    verify = tls_context(ca_file=shipper.ca_file, pin_sha256=shipper.pin_sha256)
    url = server_url.rstrip("/") + "/api/v1/agents/enroll"
    try:
        body = {"token": token, "hostname": hostname, "version": egovmon_version() if version is None else version}
        response = httpx.post(url, json=body, timeout=30, verify=verify)
    except httpx.HTTPError as exc:
        raise EnrollmentError(f"cannot reach {server_url}: {exc}") from exc
    if response.status_code != 201:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise EnrollmentError(f"enrolment refused ({response.status_code}): {detail}")
    body = response.json()
    credential = Credential(
        server_url=server_url.rstrip("/"), agent_id=body["agent_id"], agency_id=body["agency_id"],
        host_id=body["host_id"], hostname=body["hostname"], credential=body["credential"],
    )
    make_private(state_dir, log=log)
    credential.save(state_dir / "credential.json")
    return credential


def _host(settings: AgentSettings) -> Collector:
    from collectors.host import HostCollector  # noqa: PLC0415 - only the collectors the agent's configuration enables are imported

    return HostCollector()


def _netstate(settings: AgentSettings) -> Collector:
    from collectors.netstate import NetstateCollector  # noqa: PLC0415 - only the collectors the agent's configuration enables are imported

    return NetstateCollector()


def _backup(settings: AgentSettings) -> Collector:
    from collectors.backup import BackupCollector  # noqa: PLC0415 - only the collectors the agent's configuration enables are imported

    return BackupCollector(settings.backup_jobs)


def _flow(settings: AgentSettings) -> Collector:
    from collectors.flow.collector import FlowCollector  # noqa: PLC0415 - only the collectors the agent's configuration enables are imported

    return FlowCollector(settings.flow)


def _snmp(settings: AgentSettings) -> Collector:
    from collectors.snmp.collector import SnmpCollector  # noqa: PLC0415 - only the collectors the agent's configuration enables are imported

    return SnmpCollector(settings.snmp)


def _probes(settings: AgentSettings) -> Collector:
    from probes.collector import ProbesCollector  # noqa: PLC0415 - only the collectors the agent's configuration enables are imported

    return ProbesCollector(settings.probes)


# Which collectors an agent can run, by the name used in its configuration.
COLLECTORS: dict[str, Callable[[AgentSettings], Collector]] = {
    "host": _host, "netstate": _netstate, "backup": _backup, "flow": _flow, "snmp": _snmp, "probes": _probes,
}


def default_jobs(settings: AgentSettings) -> list[Job]:
    """A job per enabled collector of the configuration (backup only when jobs are declared)."""
    jobs = []
    for name, factory in COLLECTORS.items():
        schedule = getattr(settings.collectors, name)
        if not schedule.enabled or (name == "backup" and not settings.backup_jobs):
            continue
        jobs.append(Job(factory(settings), schedule))
    return jobs


class Agent:
    """One running agent."""

    def __init__(self, settings: AgentSettings, credential: Credential, jobs: list[Job], *, insecure: bool = False) -> None:
        server_url = settings.server_url or credential.server_url
        check_server_url(server_url, insecure=insecure or settings.shipper.insecure_http)
        self.settings = settings
        self.credential = credential
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics = AgentMetrics(self.registry)
        self.latest = LatestReadings()
        self.registry.register(self.latest)
        self.queue = DiskQueue(settings.queue_dir, settings.shipper.queue_max_bytes)
        self.metrics.watch_queue(self.registry, self.queue)
        self.metrics.watch_workers(self.registry)
        for job in jobs:
            listener = getattr(job.collector, "listener", None)
            if listener is not None and isinstance(listener, FlowListenerStats):  # the flow collector's FlowListener
                self.metrics.watch_flow_listener(self.registry, listener)
            if job.collector.name == "snmp" and isinstance(job.collector, SnmpCollectorStats):  # the SnmpCollector
                self.metrics.watch_snmp(self.registry, job.collector)
        self._wake = asyncio.Event()
        self.batcher = Batcher(
            self.queue, hostname=credential.hostname, settings=settings.shipper, wake=self._wake, metrics=self.metrics
        )
        self.shipper = Shipper(
            self.queue, server_url=server_url, credential=credential.credential,
            settings=settings.shipper, wake=self._wake, metrics=self.metrics,
            verify=tls_context(ca_file=settings.shipper.ca_file, pin_sha256=settings.shipper.pin_sha256),
        )
        self.scheduler = Scheduler(jobs, on_reading=self._on_reading, metrics=self.metrics)
        self.metrics_server: Any = None
        self.server_url = server_url.rstrip("/")
        self.verify = tls_context(ca_file=settings.shipper.ca_file, pin_sha256=settings.shipper.pin_sha256)

    def _on_reading(self, name: str, reading: Reading, urgent: bool) -> None:
        self.latest.update(name, reading)
        self.batcher.add(reading)
        if urgent:
            self.batcher.flush()

    async def report_version(self) -> None:
        """Report this agent's egovmon version to the server once per start (retried while it is unreachable)."""
        version = egovmon_version()
        if version != UNKNOWN_VERSION:  # a checkout never installed with pip has nothing to report
            await report_version(self.server_url, self.credential.credential, version, verify=self.verify)

    def start_metrics_server(self) -> tuple[str, int] | None:
        """Serve /metrics on settings.metrics.listen (port 0: any free port); returns the bound address."""
        listen = self.settings.metrics.listen
        if not listen:
            return None
        host, _, port = listen.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=self.registry)
        self.metrics_server = server
        bound_host, bound_port = server.server_address[:2]
        return str(bound_host), bound_port

    async def run(self) -> None:
        """Run until cancelled; flushes what is pending into the queue on the way out."""
        make_private(self.settings.state_dir, log=log)  # it holds the credential: owner only, warned when it was not
        self.queue.open()
        self._wake.set()
        # Best effort and finished once the server has it: outside the task group (a failure there must not stop the
        # agent) and not a supervised worker (it would show as a worker that is down once done).
        version_report = asyncio.create_task(self.report_version(), name="version")
        try:
            async with asyncio.TaskGroup() as group:  # each supervised: a bug in one restarts it, not the agent
                group.create_task(self.scheduler.run(), name="scheduler")
                group.create_task(supervised_task("batcher", self.batcher.run), name="batcher")
                group.create_task(supervised_task("shipper", self.shipper.run), name="shipper")
        finally:
            version_report.cancel()
            self.batcher.flush()
            if self.metrics_server is not None:
                self.metrics_server.shutdown()


VERSION_RETRY_SECONDS = (5, 30, 300)  # then every 300 s until the server has it


async def report_version(
    server_url: str, credential: str, version: str, *, verify: ssl.SSLContext | bool = True,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Tell the server which egovmon version this agent runs (PUT /api/v1/agents/me/version), so it can show who
    needs the upgrade. Retried while the server cannot be reached or answers 5xx/429; False when it refuses (an older
    server without the route answers 404; a revoked credential 401)."""
    url = server_url.rstrip("/") + "/api/v1/agents/me/version"
    headers = {"Authorization": f"Bearer {credential}"}
    attempt = 0
    async with httpx.AsyncClient(verify=verify, timeout=30) as client:
        while True:
            try:
                response = await client.put(url, json={"version": version}, headers=headers)
            except httpx.HTTPError as exc:
                log.debug("cannot report the version yet: %s", exc)
            else:
                if response.status_code == 200:
                    return True
                if response.status_code < 500 and response.status_code != 429:
                    log.info("the server did not take this agent's version (%s); not reporting it", response.status_code)
                    return False
            await sleep(VERSION_RETRY_SECONDS[min(attempt, len(VERSION_RETRY_SECONDS) - 1)])
            attempt += 1


def build(settings: AgentSettings, *, jobs: list[Job] | None = None, insecure: bool = False) -> Agent:
    """An agent for `settings`, with the configured collectors unless `jobs` are given.

    Raises:
        NotEnrolledError: no credential in the state directory.
        TransportError: the server URL would send the credential in the clear (without `insecure`), or the TLS
            settings are unusable.
    """
    credential = Credential.load(settings.credential_file)
    return Agent(settings, credential, jobs if jobs is not None else default_jobs(settings), insecure=insecure)
