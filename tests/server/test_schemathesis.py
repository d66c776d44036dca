"""schemathesis against `/openapi.json` of a real `egovmon server` process (SQLite and PostgreSQL), as admin and as an
agency user.

Two agencies with real objects are made first (tests/server/world.py), so the generated requests meet data.
Every operation gets a bounded number of generated requests, valid ones and ones that break the schema; the
checks: no server error, and every answer conforms to the documented schema. Requests go out with httpx:
this environment's urllib3-future replaces the urllib3 that schemathesis' own requests transport expects.
Operations that would end the caller's own session (revoking tokens, disabling users) are left out.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.server import world as w
from tests.serverproc import RunningServer, start_server
from tests.services import wait_until

EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 4}
SKIPPED = {("DELETE", "/api/v1/tokens/{token_id}"), ("PATCH", "/api/v1/users/{user_id}")}


@dataclass
class Running:
    server: RunningServer
    world: w.World
    database: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The server on SQLite (its default) or on a fresh database of the real PostgreSQL server."""
    workdir = tmp_path_factory.mktemp("schemathesis")
    environment = pytest.MonkeyPatch()
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database(f"egovmon_schemathesis_{os.getpid()}")
        environment.setenv("EGOVMON_SERVER__DATABASE_URL", url)  # the child process reads it at start
    (workdir / "rules.yaml").write_text(w.ALERTING, encoding="utf-8")
    alerting = {"rules_files": [str(workdir / "rules.yaml")], "evaluation_interval_seconds": 1, "dispatch_interval_seconds": 3600,
                "receivers": [{"name": "soc", "kind": "webhook", "url": "http://127.0.0.1:9/soc"}],
                "route": {"receiver": "soc", "group_by": ["alertname", "agency"]}}  # fmt: skip
    server = start_server(workdir, extra=f"alerting: {json.dumps(alerting)}\n")
    environment.undo()
    assert (workdir / "data" / "egovmon.db").exists() == (request.param == "sqlite")  # PostgreSQL really is the store
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:

            def evaluated() -> None:  # the server's own evaluation loop, every second
                def fired() -> bool:
                    alerts = client.get("/api/v1/alerts", params={"status": "firing"}, headers=server.admin).json()
                    return sum(a["alertname"] == "HostMemoryLow" for a in alerts) >= 2

                wait_until(fired, 30, "both agencies' alerts")

                def found() -> bool:  # reconciliation runs off the request path
                    return len(client.get("/api/v1/findings", headers=server.admin).json()) >= 2

                wait_until(found, 30, "both agencies' findings")

            world = w.build(client, server.admin, datetime.now(UTC), evaluated)
        yield Running(server, world, request.param)
    finally:
        server.stop()


@pytest.mark.parametrize("who", ["admin", "agency"])
def test_no_server_error_and_every_answer_matches_the_schema(running: Running, who: str):
    url = running.server.url
    headers = running.server.admin if who == "admin" else running.world.a_user.headers
    schema = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json").json())
    operations = [result.ok() for result in schema.get_all_operations()]
    failures: list[str] = []
    cases = 0
    started = time.monotonic()
    # A fresh connection per request: a keep-alive connection the server closes while idle would reset the next one.
    with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for operation in operations:
            if (operation.method.upper(), operation.path) in SKIPPED:
                continue
            inputs = len(operation.path_parameters) + len(operation.query) + len(operation.headers) + len(operation.body)
            for mode, examples in EXAMPLES.items():
                if mode is GenerationMode.NEGATIVE and not inputs:
                    continue  # nothing to break

                @hypothesis.settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                                     phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                                     suppress_health_check=list(hypothesis.HealthCheck))  # fmt: skip
                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                def exercise(case: schemathesis.Case) -> None:
                    nonlocal cases
                    kwargs = case.as_transport_kwargs(base_url=url, headers=headers)
                    kwargs.pop("cookies", None)
                    if "data" in kwargs:
                        kwargs["content"] = kwargs.pop("data")
                    response = client.request(**kwargs)
                    cases += 1
                    try:
                        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
                    except (Failure, FailureGroup) as exc:
                        failures.append(f"{mode.value} {operation.method.upper()} {operation.path} -> {response.status_code}: "  # noqa: B023 - run within this iteration
                                        f"{str(exc)[:300]}\n    {kwargs.get('json') or kwargs.get('params') or ''}")  # fmt: skip

                exercise()
    print(f"\nschemathesis as {who} on {running.database}: {len(operations)} operations, {cases} cases in {time.monotonic() - started:.1f} s")
    assert cases >= len(operations) * 2
    assert failures == [], "\n".join(failures[:30])
