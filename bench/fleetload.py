"""The simulated fleet: enrolment through the real API, then one batch per agent every 15 s ± 1 s, and the anchor.

`enroll` creates the agencies and exchanges one-time enrolment tokens for agent
credentials, many at once (10,000 agents take two requests each). `FleetLoad`
runs the schedule on one asyncio loop: every agent sends its batch (fresh
batch_id and timestamps, gzip) to `POST /api/v1/ingest` and, in the same tick,
the same samples as gzip line protocol to the anchor VictoriaMetrics
(`/api/v2/write`, one request per batch). A request waits at most `timeout`
seconds and is never retried (the next tick sends a new batch, as a real agent
re-sends later); a 503 is "shed", not an error.

Outcomes are tallied by the time a send was due, so "offered in the window" and
"acknowledged of those" are the same batches; acknowledgements are also counted
by the time they arrived (`acked_done_in_window`), which is what the server's CPU
over the window paid for.
"""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import json
import os
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.fleetbatch import BatchTemplate, LineTemplate, netstate_reading
from bench.http11 import ConnectionFailedError, Pool, RequestTimeoutError
from core.models import Sample

INGEST = "/api/v1/ingest"
ANCHOR_WRITE = "/api/v2/write?org=egovmon&bucket=egovmon"
UNDECLARED_NETWORK = "undeclared_network"
BATCH_SECONDS = 0.002


class EnrollError(RuntimeError):
    """The server refused to create an agency, an enrolment token or an agent."""


@dataclass(frozen=True, slots=True)
class Agent:
    """One simulated agent: its host, agency, request headers and the batch it sends."""

    index: int
    hostname: str
    agency: str
    headers: dict[str, str]
    template: BatchTemplate

    @classmethod
    def make(cls, index: int, hostname: str, agency: str, credential: str, template: BatchTemplate) -> Agent:
        headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json", "Content-Encoding": "gzip"}
        return cls(index, hostname, agency, headers, template)


def hostname(index: int) -> str:
    return f"fleet-{index:05d}"


async def _json(pool: Pool, method: str, target: str, headers: dict[str, str], payload: object, ok: int) -> dict:
    body = json.dumps(payload).encode() if payload is not None else b""
    sent = {**headers, "Content-Type": "application/json"} if payload is not None else headers
    response = await pool.request(method, target, headers=sent, body=body, timeout=60)
    if response.status != ok:
        raise EnrollError(f"{method} {target} answered {response.status}: {response.body[:300]!r}")
    return json.loads(response.body)


async def enroll(
    pool: Pool, admin: dict[str, str], count: int, *, agencies: int = 50, cache: Path | None = None, concurrency: int = 32
) -> list[tuple[str, str, str]]:
    """(hostname, agency code, credential) of `count` agents spread over `agencies` agencies, enrolled through the API.

    Credentials already in `cache` (a JSON file this function writes) are reused;
    only the missing agents are enrolled. Raises EnrollError.
    """
    cached: dict[str, dict[str, str]] = {}
    if cache is not None and cache.exists():
        cached = json.loads(cache.read_text())["hosts"]
    existing = {a["code"]: a["id"] for a in await _json(pool, "GET", "/api/v1/agencies", admin, None, 200)}
    codes = [f"fleet-{k:02d}" for k in range(agencies)]
    for k, code in enumerate(codes):
        if code not in existing:
            created = await _json(pool, "POST", "/api/v1/agencies", admin, {"code": code, "name": f"基准测试单位 {k:02d}"}, 201)
            existing[code] = created["id"]
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> tuple[str, str, str]:
        name, code = hostname(index), codes[index % agencies]
        known = cached.get(name)
        if known is not None and known["agency"] == code:
            return name, code, known["credential"]
        async with limit:
            token = await _json(pool, "POST", "/api/v1/enrollment-tokens", admin, {"agency_id": existing[code]}, 201)
            agent = await _json(pool, "POST", "/api/v1/agents/enroll", {}, {"token": token["token"], "hostname": name}, 201)
        return name, code, agent["credential"]

    enrolled = await asyncio.gather(*(one(i) for i in range(count)))
    if cache is not None:
        cached.update({name: {"agency": code, "credential": credential} for name, code, credential in enrolled})
        cache.write_text(json.dumps({"hosts": cached}))
    return list(enrolled)


@dataclass
class Tally:
    """Outcomes of the sends due inside the measuring window, and acknowledgements that arrived inside it."""

    offered: int = 0
    acked: int = 0
    shed: int = 0
    shed_with_retry_after: int = 0
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, of acknowledged sends
    waits: list[float] = field(default_factory=list)  # seconds of those the client waited for a free connection
    acked_done_in_window: int = 0
    done_in_window: int = 0  # requests that ended inside the window, whatever the outcome (the client's work)
    timeline: Counter[int] = field(default_factory=Counter)  # acknowledgements per `interval` bucket of the window

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of `values` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


class FleetLoad:
    """Every agent sends its batch each `interval` ± `jitter` seconds until the window ends; also to the anchor."""

    def __init__(
        self, agents: list[Agent], pool: Pool, anchor: Pool | None, lines: LineTemplate, *,
        interval: float, jitter: float, timeout: float, window: tuple[float, float], seed: int = 17, gzip_level: int = 6,
    ) -> None:
        self.agents = agents
        self.pool = pool
        self.anchor = anchor
        self.lines = lines
        self.interval = interval
        self.jitter = jitter
        self.timeout = timeout
        self.window = window
        self.gzip_level = gzip_level
        self.egovmon = Tally()
        self.vm = Tally()
        self.lags: list[float] = []  # how late the client started sends due in the window (its own overload)
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Send until the window ends, then wait for the requests still in flight (at most `timeout`)."""
        loop = asyncio.get_running_loop()
        start, end = loop.time(), self.window[1]
        heap = [(start + self._rng.uniform(0, self.interval), i) for i in range(len(self.agents))]
        heapq.heapify(heap)
        while heap and heap[0][0] < end:
            delay = heap[0][0] - loop.time()
            if delay > BATCH_SECONDS:
                await asyncio.sleep(delay)
            now = loop.time() + BATCH_SECONDS  # sends due this soon go now: fewer wake-ups of the client
            while heap and heap[0][0] <= now and heap[0][0] < end:
                due, index = heapq.heappop(heap)
                self._spawn(self._send(self.agents[index], due))
                step = self.interval + self._rng.uniform(-self.jitter, self.jitter)
                heapq.heappush(heap, (due + step, index))
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _in_window(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]

    async def _send(self, agent: Agent, due: float) -> None:
        loop = asyncio.get_running_loop()
        at = datetime.now(UTC)
        counted = self._in_window(due)
        if counted:
            self.lags.append(loop.time() - due)
        if self.anchor is not None:
            self._spawn(self._send_anchor(agent, at, counted))
        body = agent.template.body(os.urandom(16).hex(), agent.hostname, at, self.gzip_level)
        await self._post(self.pool, INGEST, agent.headers, body, self.egovmon, counted, ok=200)

    async def _send_anchor(self, agent: Agent, at: datetime, counted: bool) -> None:
        body = self.lines.body(agent.hostname, agent.agency, at, self.gzip_level)
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"}
        await self._post(self.anchor, ANCHOR_WRITE, headers, body, self.vm, counted, ok=204)

    async def _post(self, pool: Pool, target: str, headers: dict[str, str], body: bytes, tally: Tally, counted: bool, *, ok: int) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        response, failure = None, None
        try:
            response = await pool.request("POST", target, headers=headers, body=body, timeout=self.timeout)
        except RequestTimeoutError:
            failure = "timeout"
        except ConnectionFailedError as exc:
            failure = f"connection: {type(exc.__cause__).__name__}"
        done = loop.time()
        acked = response is not None and (response.status == ok or (ok == 204 and response.status == 200))
        if self._in_window(done):
            tally.done_in_window += 1
            if acked:
                tally.acked_done_in_window += 1
                tally.timeline[int((done - self.window[0]) // self.interval)] += 1
        if not counted:
            return
        tally.offered += 1
        if failure == "timeout":
            tally.timeouts += 1
        elif failure is not None:
            tally.errors[failure] += 1
        elif acked:
            tally.acked += 1
            tally.latencies.append(done - started)
            tally.waits.append(response.waited_seconds)
        elif response.status == 503:
            tally.shed += 1
            tally.shed_with_retry_after += "retry-after" in response.headers
        else:
            tally.errors[f"HTTP {response.status}"] += 1


def rogue_network(seed: int | None = None) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    """A /24 in 172.16.0.0/12 and a /64 no simulated host uses, new on every call (random)."""
    rng = random.Random(seed)
    v4 = ipaddress.IPv4Network(f"172.{rng.randrange(16, 32)}.{rng.randrange(256)}.0/24")
    v6 = ipaddress.IPv6Network(f"2001:db8:ffff:{rng.randrange(1, 1 << 16):x}::/64")
    return v4, v6


@dataclass(frozen=True, slots=True)
class RogueResult:
    subnet: str
    ack_seconds: float | None  # the batch's acknowledgement
    finding_seconds: float | None  # from sending the batch to the finding in GET /api/v1/findings; None: not seen
    error: str | None = None


async def rogue_subnet(
    pool: Pool, admin_pool: Pool, admin: dict[str, str], agent: Agent, samples: tuple[Sample, ...], *,
    timeout: float, give_up_after: float, poll_every: float = 0.5,
) -> RogueResult:
    """Send one batch from `agent` with a netstate set on a new /24, then poll the findings until it is one."""
    v4, v6 = rogue_network()
    extra_samples, observations = netstate_reading(v4, v6)
    template = BatchTemplate.build(samples + extra_samples, observations)
    loop = asyncio.get_running_loop()
    body = template.body(os.urandom(16).hex(), agent.hostname, datetime.now(UTC))
    started = loop.time()
    ack, error = None, None
    shed = 0
    while True:  # as the real agent does: a 503 is retried after its Retry-After (capped here at 5 s)
        try:
            response = await pool.request("POST", INGEST, headers=agent.headers, body=body, timeout=timeout)
        except (RequestTimeoutError, ConnectionFailedError) as exc:
            error = f"batch not acknowledged: {exc}"  # a server still working on it may store it anyway: keep looking
            break
        if response.status == 503 and loop.time() - started < give_up_after / 2:
            shed += 1
            retry_after = float(response.headers.get("retry-after", "1") or 1)
            await asyncio.sleep(min(max(retry_after, 0.5), 5.0))
            continue
        ack = loop.time() - started
        if response.status != 200:
            error = f"batch answered {response.status}"
        elif shed:
            error = f"acknowledged after {shed} answer(s) 503 and retries"
        break
    target = f"/api/v1/findings?rule_id={UNDECLARED_NETWORK}&limit=200&lang=en"
    while loop.time() - started < give_up_after:
        try:
            found = await admin_pool.request("GET", target, headers=admin, timeout=timeout)
        except (RequestTimeoutError, ConnectionFailedError):
            found = None
        if found is not None and found.status == 200 and any(f["subject"] == str(v4) for f in json.loads(found.body)):
            return RogueResult(str(v4), ack, loop.time() - started, error)
        await asyncio.sleep(poll_every)
    return RogueResult(str(v4), ack, None, "; ".join(filter(None, [error, f"no finding within {give_up_after:g} s"])))
