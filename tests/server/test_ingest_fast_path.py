"""The ingest fast path (core.wire.fast_batch_adapter + checks in the encoder) answers exactly like the strict path.

The fast path skips pydantic's per-string regexes and per-float Python validator
and checks names, tag values and timestamps once per distinct string while
encoding. Whatever it cannot vouch for goes through the batch model's adapter.
These tests feed the same bytes to the pipeline as it runs (fast path first) and
to a pipeline that only has the strict path, and require the same lines, latest
values and observations, or the same error with the same status, reason and
message.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

import server.app  # noqa: F401 - every model registered on Base.metadata
from server.database import Base
from server.errors import ApiError
from server.ingest.hooks import IngestHooks, Origin
from server.ingest.pipeline import HostClaimError, IngestPipeline, PreparedBatch
from tests.core.test_wire import ACCEPTED, REFUSED, batch, observation, sample

NOW = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)  # test_wire's documents are at 12:00, inside the window
ORIGIN = Origin(agency_id=1, agency_code="health", host_id=1, hostname="web-01", agent_id=1)


class StrictOnly(IngestPipeline):
    """The pipeline without its fast path: what every batch cost before."""

    def _prepare_fast(self, origin: Origin, payload: bytes, now: datetime) -> PreparedBatch | None:
        return None


def make(cls: type[IngestPipeline], now: datetime = NOW) -> IngestPipeline:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    return cls(sessions=sessionmaker(engine), history=None, hooks=IngestHooks(), clock=lambda: now)


@pytest.fixture(scope="module")
def pipelines() -> tuple[IngestPipeline, IngestPipeline]:
    return make(IngestPipeline), make(StrictOnly)


def outcome(pipeline: IngestPipeline, body: str | bytes) -> tuple[Any, ...]:
    payload = body.encode() if isinstance(body, str) else body
    try:
        prepared = pipeline.prepare(ORIGIN, payload)
    except ApiError as exc:
        return ("refused", type(exc).__name__, exc.status_code, exc.reason, str(exc), getattr(exc, "errors", None))
    except HostClaimError as exc:
        return ("claim", exc.claimed)
    latest = {key: (s.ns, [(k, type(v), v) for k, v in s.fields.items()], dict(s.tags)) for key, s in prepared.latest.items()}
    points = [(p.measurement, dict(p.tags), [(k, type(v), v) for k, v in p.fields.items()], p.ns) for p in prepared.encoded.points]
    return ("accepted", prepared.batch_id, prepared.encoded.lines, points, latest, prepared.observations, prepared.samples)


def assert_same(pipelines: tuple[IngestPipeline, IngestPipeline], body: str | bytes) -> tuple[Any, ...]:
    fast, strict = pipelines
    got = outcome(fast, body)
    assert got == outcome(strict, body)
    return got


def doc(*samples: dict[str, Any], **changes: Any) -> str:
    return batch(*samples, **changes)


EXTRA: list[tuple[str, str]] = [
    ("floats", doc(sample(fields={"a": 0.5, "b": -1e-300, "c": 1.7976931348623157e308, "d": 9.2e18}))),
    ("float-at-int64", doc(sample(fields={"v": 9223372036854775807.0}))),
    ("float-beyond-int64", doc(sample(fields={"v": 1e19}))),
    ("int-beyond-int64-in-a-float-field", '{"batch_id": "b", "samples": [{"measurement": "m", "fields": {"v": 9223372036854775808},'
     ' "timestamp": "2024-05-01T12:00:00Z"}]}'),
    ("negative-int-beyond-int64", '{"batch_id": "b", "samples": [{"measurement": "m", "fields": {"v": -9223372036854775809},'
     ' "timestamp": "2024-05-01T12:00:00Z"}]}'),
    ("server-tags-dropped", doc(sample(tags={"host": "spoofed", "agency": "x", "site": "y", "cpu": "0"}))),
    ("server-tag-with-bad-value", doc(sample(tags={"host": "a\nb", "cpu": "0"}))),
    ("server-tag-trailing-backslash", doc(sample(tags={"site": "a\\"}))),
    ("tag-value-256", doc(sample(tags={"t": "v" * 256}))),
    ("tag-value-255-then-newline", doc(sample(tags={"t": "v" * 255 + "\n"}))),
    ("tag-key-128", doc(sample(tags={"t" * 128: "v"}))),
    ("tag-key-129", doc(sample(tags={"t" * 129: "v"}))),
    ("field-name-trailing-newline", doc(sample(fields={"v\n": 1}))),
    ("measurement-trailing-newline", doc(sample(measurement="cpu\n"))),
    ("measurement-unicode", doc(sample(measurement="负载"))),
    ("tag-value-escapes", doc(sample(tags={"path": "C:\\temp dir,=x", "q": '"quoted"'}))),
    ("string-field-escapes", doc(sample(fields={"s": 'say "hi" \\ there\nnext'}))),
    ("space-time", doc(sample(timestamp="2024-05-01 12:00:00Z"))),
    ("lowercase-time", doc(sample(timestamp="2024-05-01t12:00:00z"))),
    ("nanosecond-time", doc(sample(timestamp="2024-05-01T12:00:00.123456789Z"))),
    ("date-only", doc(sample(timestamp="2024-05-01"))),
    ("float-time", doc(sample(timestamp=1714564800.5))),
    ("time-outside-window", doc(sample(timestamp="2024-04-01T12:00:00Z"))),
    ("bad-name-and-time-outside-window", doc(sample(timestamp="2024-04-01T12:00:00Z"), sample(measurement="a b"))),
    ("time-outside-window-then-bad-name", doc(sample(measurement="a b"), sample(timestamp="2024-04-01T12:00:00Z"))),
    ("same-series-twice-same-time", doc(sample(fields={"a": 1}), sample(fields={"b": 2.5}))),
    ("older-point-after-newer", doc(sample(timestamp="2024-05-01T12:01:00Z"), sample(fields={"v": 9}))),
    ("claims-another-host", doc(sample(), host="db-01")),
    ("claims-another-host-and-bad-tag", doc(sample(tags={"t": "a\tb"}), host="db-01")),
    ("claims-another-host-and-old-time", doc(sample(timestamp="2024-04-01T12:00:00Z"), host="db-01")),
    ("claims-own-host", doc(sample(), host="web-01")),
    ("observation-float-attribute", doc(observations=[observation(attributes={"w": 0.25, "n": 3})])),
    ("observation-outside-window", doc(observations=[observation(observed_at="2024-04-01T12:00:00Z")])),
    ("long-timestamp-text", doc(sample(timestamp="2024-05-01T12:00:00" + "0" * 80 + "Z"))),
]


@pytest.mark.parametrize("body", [b for _, b in ACCEPTED + REFUSED + EXTRA], ids=[n for n, _ in ACCEPTED + REFUSED + EXTRA])
def test_fast_path_answers_like_the_strict_path(pipelines, body):
    assert_same(pipelines, body)


def test_the_agents_usual_batch_takes_the_fast_path(pipelines):
    fast, _ = pipelines
    body = doc(*(sample(tags={"cpu": str(i)}, fields={"usage": i + 0.5, "count": i, "ok": True, "state": "up"}) for i in range(30)))

    before = fast.strict_batches

    prepared = fast.prepare(ORIGIN, body.encode())

    assert fast.strict_batches == before  # a strict pass would mean every batch pays both paths
    assert prepared.samples == 30
    assert prepared.encoded.lines[0] == 'cpu,agency=health,cpu=0,host=web-01 usage=0.5,count=0i,ok=true,state="up" 1714564800000000000'


def test_the_real_agents_batch_takes_the_fast_path_with_the_same_result():
    """What the real HostCollector read on this machine, as the agent encodes it (agent.shipping.encode_body)."""
    from agent.shipping import encode_body
    from collectors.host import HostCollector
    from core.collect import LOCAL
    from core.models import Observation

    now = datetime.now(UTC)
    reading = asyncio.run(HostCollector().collect(LOCAL, timeout=30))
    samples = [s.model_copy(update={"timestamp": now}) for s in reading.samples]
    observations = [Observation(kind="interface_address", subject="10.30.8.5/22", source="netstate",
                                attributes={"interface": "eth0", "up": True, "mtu": 1500, "weight": 0.5}, observed_at=now)]
    body = gzip.decompress(encode_body("agent-1:7", "web-01", samples, observations, 1))
    fast = make(IngestPipeline, now)

    got = assert_same((fast, make(StrictOnly, now)), body)

    assert got[0] == "accepted"
    assert got[-1] == len(samples) > 10
    assert fast.strict_batches == 0


def test_a_bad_name_after_the_series_was_seen_is_still_refused(pipelines):
    """The checks are remembered per string, never per series text: a new bad tag on a known series is refused."""
    fast, _ = pipelines
    first = assert_same(pipelines, doc(sample(tags={"t": "ok"})))
    before = fast.strict_batches
    again = assert_same(pipelines, doc(sample(tags={"t": "ok", "u": "bad\x00"})))

    assert first[0] == "accepted"
    assert again[0] == "refused"
    assert again[3] == "validation"
    assert fast.strict_batches == before + 1


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=260) | st.sampled_from(
    ["cpu", "a\n", "a\\", "\\a", "_x1", "1x", "a b", "a,b", "a=b", "北京", "x" * 128, "x" * 129, "v" * 256, "v" * 257, "", " ", "\x7f"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(measurement=texts, tag_key=texts, tag_value=texts, field=texts, value=st.one_of(
    st.booleans(), st.integers(min_value=-(2**64), max_value=2**64), st.floats(allow_nan=False, allow_infinity=False), texts,
))
def test_any_names_and_values_get_the_strict_paths_answer(pipelines, measurement, tag_key, tag_value, field, value):
    body = json.dumps({"batch_id": "b", "samples": [
        {"measurement": measurement, "tags": {tag_key: tag_value}, "fields": {field: value}, "timestamp": "2024-05-01T12:00:00Z"}
    ]}, ensure_ascii=False)

    assert_same(pipelines, body)
