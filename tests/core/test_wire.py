"""core.wire: the dict validator of the ingest hot path gives the same verdicts and values as core.models.

Both are fed the same JSON bytes. Accepted documents are compared value by value
(the model gives objects, the adapter dicts); refused ones must be refused at the
same locations with the same messages.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from core.models import TAG_VALUE_PATTERN, Batch, Observation, Sample
from core.wire import batch_adapter

TS = "2024-05-01T12:00:00Z"


def sample(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"measurement": "cpu", "tags": {"host": "web-01"}, "fields": {"v": 1.5}, "timestamp": TS}
    doc.update(changes)
    return doc


def observation(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "arp_entry",
        "subject": "10.0.0.7",
        "attributes": {"mac": "00:11:22:33:44:55", "interface": "eth0"},
        "source": "snmp",
        "observed_at": TS,
    }
    doc.update(changes)
    return doc


def batch(*samples: dict[str, Any], **changes: Any) -> str:
    doc: dict[str, Any] = {"batch_id": "agent-1:42", "samples": list(samples)}
    doc.update(changes)
    return json.dumps(doc, ensure_ascii=False)


ACCEPTED: list[tuple[str, str]] = [
    ("minimal", '{"batch_id": "b1"}'),
    ("empty-lists", '{"batch_id": "b1", "agent": null, "host": null, "samples": [], "observations": []}'),
    ("one-sample", batch(sample())),
    ("no-tags-key", batch({"measurement": "m", "fields": {"v": 1}, "timestamp": TS})),
    ("types", batch(sample(fields={"i": 5, "f": 5.0, "b": True, "s": "up", "neg": -7, "small": 1e-05}))),
    ("int64-edges", batch(sample(fields={"max": 2**63 - 1, "min": -(2**63)}))),
    ("unicode", batch(sample(tags={"city": "北京", "dept": "政务服务"}, fields={"note": "正常"}))),
    ("offset-time", batch(sample(timestamp="2024-05-01T20:00:00.123456+08:00"))),
    ("unix-time", batch(sample(timestamp=1714564800))),
    ("old-time-no-window", batch(sample(timestamp="1970-01-01T00:00:00Z"))),
    ("limits-at-edge", batch(sample(
        tags={f"t{i}": "v" * 256 for i in range(32)},
        fields={f"f{i}": "x" * 4096 if i == 0 else i for i in range(64)},
    ))),
    ("observation", batch(observations=[observation(attributes={"vlans": [10, 20], "up": True, "w": 0.5})])),
    ("agent-host", batch(sample(), agent="agent-1", host="web-01.example.gov.cn")),
    ("duplicate-key-last-wins", '{"batch_id": "first", "batch_id": "second"}'),
]

REFUSED: list[tuple[str, str]] = [
    ("not-json", "not json"),
    ("truncated", '{"batch_id": "b1", "samples": ['),
    ("trailing-comma", '{"batch_id": "b1",}'),
    ("empty-body", ""),
    ("null", "null"),
    ("list", "[]"),
    ("missing-batch-id", "{}"),
    ("batch-id-int", '{"batch_id": 1}'),
    ("extra-batch-key", batch(sample(), agency="x")),
    ("extra-sample-key", batch(sample(unit="s"))),
    ("fields-string", batch(sample(fields="x"))),
    ("tags-list", batch(sample(tags=[1]))),
    ("tag-value-int", batch(sample(tags={"t": 1}))),
    ("tag-value-trailing-newline", batch(sample(tags={"t": "a\n"}))),
    ("tag-value-newline", batch(sample(tags={"t": "a\nb"}))),
    ("tag-value-tab", batch(sample(tags={"t": "a\tb"}))),
    ("tag-value-nul", batch(sample(tags={"t": "a\u0000b"}))),
    ("tag-value-trailing-backslash", batch(sample(tags={"t": "a\\"}))),
    ("tag-value-empty", batch(sample(tags={"t": ""}))),
    ("tag-value-257", batch(sample(tags={"t": "v" * 257}))),
    ("33-tags", batch(sample(tags={f"t{i}": "v" for i in range(33)}))),
    ("65-fields", batch(sample(fields={f"f{i}": i for i in range(65)}))),
    ("no-fields", batch(sample(fields={}))),
    ("string-4097", batch(sample(fields={"s": "x" * 4097}))),
    ("nan", batch(sample(fields={"v": float("nan")}))),
    ("infinity", batch(sample(fields={"v": float("inf")}))),
    ("int64-overflow", batch(sample(fields={"v": 2**63}))),
    ("int64-underflow", batch(sample(fields={"v": -(2**63) - 1}))),
    ("field-null", batch(sample(fields={"v": None}))),
    ("field-object", batch(sample(fields={"v": {"a": 1}}))),
    ("bad-measurement", batch(sample(measurement="cpu load"))),
    ("bad-tag-key", batch(sample(tags={"host-name": "x"}))),
    ("bad-field-key", batch(sample(fields={"a.b": 1}))),
    ("naive-time", batch(sample(timestamp="2024-05-01T12:00:00"))),
    ("not-a-time", batch(sample(timestamp="yesterday"))),
    ("bad-host", batch(host="-web")),
    ("bad-observation-kind", batch(observations=[observation(kind="ARP")])),
    ("observation-subject-newline", batch(observations=[observation(subject="10.0.0.7\n")])),
    ("observation-extra-key", batch(observations=[observation(seen=1)])),
    ("samples-object", '{"batch_id": "b1", "samples": {}}'),
]


def verdict(validate: Any, body: str) -> tuple[str, Any]:
    try:
        return "accepted", validate(body)
    except ValidationError as exc:
        return "refused", [(e["loc"], e["msg"]) for e in exc.errors()]


def assert_same_sample(model: Sample, record: dict[str, Any]) -> None:
    assert record["measurement"] == model.measurement
    assert record.get("tags", {}) == model.tags
    assert [(k, type(v), v) for k, v in record["fields"].items()] == [
        (k, type(v), v) for k, v in model.fields.items()
    ]
    assert record["timestamp"] == model.timestamp
    assert record["timestamp"].utcoffset() == model.timestamp.utcoffset()


def assert_same_observation(model: Observation, record: dict[str, Any]) -> None:
    assert record["kind"] == model.kind
    assert record["subject"] == model.subject
    assert record.get("attributes", {}) == model.attributes
    assert record["source"] == model.source
    assert record["observed_at"] == model.observed_at


@pytest.mark.parametrize("body", [body for _, body in ACCEPTED], ids=[name for name, _ in ACCEPTED])
def test_accepted_documents_give_the_same_values(body: str) -> None:
    model = Batch.model_validate_json(body)
    record = batch_adapter().validate_json(body)

    assert record["batch_id"] == model.batch_id
    assert record.get("agent") == model.agent
    assert record.get("host") == model.host
    assert len(record.get("samples", [])) == len(model.samples)
    for sample_model, sample_record in zip(model.samples, record.get("samples", []), strict=True):
        assert_same_sample(sample_model, sample_record)
    assert len(record.get("observations", [])) == len(model.observations)
    for obs_model, obs_record in zip(model.observations, record.get("observations", []), strict=True):
        assert_same_observation(obs_model, obs_record)


@pytest.mark.parametrize("body", [body for _, body in REFUSED], ids=[name for name, _ in REFUSED])
def test_refused_documents_refused_by_both_at_the_same_place(body: str) -> None:
    model_verdict, model_errors = verdict(Batch.model_validate_json, body)
    record_verdict, record_errors = verdict(batch_adapter().validate_json, body)

    assert (model_verdict, record_verdict) == ("refused", "refused")
    assert record_errors == model_errors


def test_accepted_values_are_exact() -> None:
    body = batch(
        sample(
            tags={"city": "北京"},
            fields={"i": 5, "f": 5.0, "b": True, "s": "up"},
            timestamp="2024-05-01T20:00:00.123456+08:00",
        ),
        agent="agent-1",
    )

    assert batch_adapter().validate_json(body) == {
        "batch_id": "agent-1:42",
        "agent": "agent-1",
        "samples": [
            {
                "measurement": "cpu",
                "tags": {"city": "北京"},
                "fields": {"i": 5, "f": 5.0, "b": True, "s": "up"},
                "timestamp": datetime(2024, 5, 1, 20, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8))),
            }
        ],
    }


def test_unix_time_is_utc() -> None:
    record = batch_adapter().validate_json(batch(sample(timestamp=1714564800)))

    assert record["samples"][0]["timestamp"] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_trailing_newline_is_refused_although_python_re_would_accept_it() -> None:
    # Python's `$` also matches just before a final "\n"; pydantic's Rust regex does not.
    assert re.match(TAG_VALUE_PATTERN, "a\n") is not None
    body = batch(sample(tags={"t": "a\n"}))

    for validate in (Batch.model_validate_json, batch_adapter().validate_json):
        with pytest.raises(ValidationError) as caught:
            validate(body)
        assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [
            (("samples", 0, "tags", "t"), "string_pattern_mismatch")
        ]


def test_sample_limit_is_the_same() -> None:
    one = sample()
    full = json.dumps({"batch_id": "b1", "samples": [one] * 50_000})
    over = json.dumps({"batch_id": "b1", "samples": [one] * 50_001})

    assert len(batch_adapter().validate_json(full)["samples"]) == 50_000
    assert len(Batch.model_validate_json(full).samples) == 50_000
    assert verdict(batch_adapter().validate_json, over) == verdict(Batch.model_validate_json, over) == (
        "refused",
        [(("samples",), "List should have at most 50000 items after validation, not 50001")],
    )


def test_adapter_is_built_once() -> None:
    assert batch_adapter() is batch_adapter()


def test_window_is_not_applied_by_the_adapter() -> None:
    """The adapter has no clock: an 8-day-old sample passes it, while the model refuses it with a context."""
    body = batch(sample(timestamp="2024-04-23T12:00:00Z"))
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    record = batch_adapter().validate_json(body, context={"now": now})
    assert record["samples"][0]["timestamp"] == datetime(2024, 4, 23, 12, 0, tzinfo=UTC)
    with pytest.raises(ValidationError) as caught:
        Batch.model_validate_json(body, context={"now": now})
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
        (("samples", 0), "Value error, timestamp 2024-04-23T12:00:00+00:00 is more than 7 days in the past")
    ]
