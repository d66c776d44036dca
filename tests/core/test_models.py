"""core.models: what a Sample, Observation and Batch accept, exactly, and what each limit refuses."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from core.models import (
    INT64_MAX,
    INT64_MIN,
    Batch,
    Observation,
    Sample,
    validation_context,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CONTEXT = {"now": NOW}
NAME_MSG = "String should match pattern '^[A-Za-z_][A-Za-z0-9_]{0,127}$'"
TAG_VALUE_MSG = "String should match pattern '^[^\\x00-\\x1f\\x7f]{0,255}[^\\x00-\\x1f\\x7f\\\\]$'"
KIND_MSG = "String should match pattern '^[a-z][a-z0-9_.]{0,63}$'"
ID_MSG = "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$'"


def sample_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "measurement": "cpu",
        "tags": {"host": "web-01"},
        "fields": {"usage_user": 12.5},
        "timestamp": NOW,
    }
    doc.update(changes)
    return doc


def observation_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "interface_address",
        "subject": "10.0.0.1/24",
        "attributes": {"interface": "eth0"},
        "source": "netstate",
        "observed_at": NOW,
    }
    doc.update(changes)
    return doc


def error_pairs(exc: ValidationError) -> list[tuple[tuple[int | str, ...], str]]:
    """(location, message) of every error, in pydantic's order."""
    return [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]


def assert_refused(exc: ValidationError, loc: tuple[int | str, ...], msg: str) -> None:
    """One error sits at `loc` (or below it, for union members) with exactly `msg`."""
    pairs = error_pairs(exc)
    assert any(found[: len(loc)] == loc and text == msg for found, text in pairs), pairs


# -- accepted -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_type"),
    [
        (0, int),
        (5, int),
        (-5, int),
        (INT64_MAX, int),
        (INT64_MIN, int),
        (5.0, float),
        (0.1, float),
        (-1e-300, float),
        (1.7976931348623157e308, float),
        (True, bool),
        (False, bool),
        ("", str),
        ("up", str),
        ("x" * 4096, str),
        ("中文 \"quoted\" \\ back", str),
    ],
)
def test_field_value_keeps_its_exact_type(value: Any, expected_type: type) -> None:
    sample = Sample.model_validate(sample_doc(fields={"v": value}))

    assert sample.fields == {"v": value}
    assert type(sample.fields["v"]) is expected_type


@pytest.mark.parametrize(
    ("json_value", "expected"),
    [("5", 5), ("5.0", 5.0), ("-0.0", -0.0), ("1e-05", 1e-05), ("true", True), ("false", False), ('"5"', "5")],
)
def test_field_value_from_json_keeps_its_exact_type(json_value: str, expected: Any) -> None:
    body = f'{{"measurement": "m", "fields": {{"v": {json_value}}}, "timestamp": "2024-05-01T12:00:00Z"}}'

    sample = Sample.model_validate_json(body)

    assert sample.fields["v"] == expected
    assert type(sample.fields["v"]) is type(expected)


def test_sample_accepted_with_exact_values() -> None:
    sample = Sample.model_validate(
        {
            "measurement": "host_network_receive_bytes_total",
            "tags": {"host": "web-01", "device": "eth0", "city": "北京", "path": "C:\\Program Files"},
            "fields": {"value": 123456789, "rate": 0.5, "up": True, "state": "running"},
            "timestamp": "2024-05-01T20:00:00.123456+08:00",
        }
    )

    assert sample.measurement == "host_network_receive_bytes_total"
    assert sample.tags == {"host": "web-01", "device": "eth0", "city": "北京", "path": "C:\\Program Files"}
    assert sample.fields == {"value": 123456789, "rate": 0.5, "up": True, "state": "running"}
    assert [type(v) for v in sample.fields.values()] == [int, float, bool, str]
    assert sample.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert sample.timestamp.utcoffset() == timedelta(hours=8)


def test_sample_tags_default_to_empty() -> None:
    sample = Sample(measurement="m", fields={"v": 1}, timestamp=NOW)

    assert sample.tags == {}


@pytest.mark.parametrize(
    "changes",
    [
        {"measurement": "a" * 128},
        {"measurement": "_private"},
        {"tags": {f"t{i}": "v" for i in range(32)}},
        {"fields": {f"f{i}": i for i in range(64)}},
        {"tags": {"t": "v" * 256}},
        {"tags": {"t": "x"}},
        {"tags": {"t": "a\\b"}},
        {"tags": {"t": " leading and trailing spaces "}},
        {"tags": {"t": "中" * 256}},
    ],
    ids=["name-128", "underscore", "32-tags", "64-fields", "tag-256", "tag-1", "inner-backslash", "spaces", "cjk-256"],
)
def test_sample_limits_accept_their_boundary(changes: dict[str, Any]) -> None:
    sample = Sample.model_validate(sample_doc(**changes))

    for key, value in changes.items():
        assert getattr(sample, key) == value


def test_observation_accepted_with_exact_values() -> None:
    observation = Observation.model_validate(
        observation_doc(
            attributes={"interface": "eth0", "prefix_len": 24, "weight": 0.5, "primary": True, "vlans": [10, 20, "trunk"]}
        )
    )

    assert observation.kind == "interface_address"
    assert observation.subject == "10.0.0.1/24"
    assert observation.attributes == {
        "interface": "eth0",
        "prefix_len": 24,
        "weight": 0.5,
        "primary": True,
        "vlans": [10, 20, "trunk"],
    }
    assert [type(v) for v in observation.attributes["vlans"]] == [int, int, str]
    assert observation.source == "netstate"
    assert observation.observed_at == NOW


def test_batch_accepted_with_exact_values() -> None:
    batch = Batch.model_validate(
        {
            "batch_id": "agent-7:000042",
            "agent": "agent-7",
            "host": "web-01.example.gov.cn",
            "samples": [sample_doc(), sample_doc(fields={"n": 3})],
            "observations": [observation_doc()],
        },
        context=CONTEXT,
    )

    assert batch.batch_id == "agent-7:000042"
    assert batch.agent == "agent-7"
    assert batch.host == "web-01.example.gov.cn"
    assert [s.fields for s in batch.samples] == [{"usage_user": 12.5}, {"n": 3}]
    assert [o.subject for o in batch.observations] == ["10.0.0.1/24"]


def test_batch_defaults() -> None:
    batch = Batch.model_validate({"batch_id": "b1"})

    assert (batch.agent, batch.host, batch.samples, batch.observations) == (None, None, [], [])


@pytest.mark.parametrize("host", ["10.0.0.1", "2001:db8::1", "fe80::1", "a", "web-01.example.gov.cn"])
def test_batch_host_accepts_names_and_addresses(host: str) -> None:
    assert Batch.model_validate({"batch_id": "b1", "host": host}).host == host


def test_batch_holds_the_maximum_number_of_samples() -> None:
    doc = sample_doc()

    batch = Batch.model_validate({"batch_id": "b1", "samples": [doc] * 50_000})

    assert len(batch.samples) == 50_000


# -- refused --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "loc", "msg"),
    [
        ({"measurement": "1cpu"}, ("measurement",), NAME_MSG),
        ({"measurement": "cpu load"}, ("measurement",), NAME_MSG),
        ({"measurement": "cpu,x"}, ("measurement",), NAME_MSG),
        ({"measurement": "cpu.load"}, ("measurement",), NAME_MSG),
        ({"measurement": "处理器"}, ("measurement",), NAME_MSG),
        ({"measurement": ""}, ("measurement",), NAME_MSG),
        ({"measurement": "a" * 129}, ("measurement",), NAME_MSG),
        ({"measurement": "cpu\n"}, ("measurement",), NAME_MSG),
        ({"tags": {"host-name": "x"}}, ("tags", "host-name", "[key]"), NAME_MSG),
        ({"tags": {"": "x"}}, ("tags", "", "[key]"), NAME_MSG),
        ({"tags": {"9lives": "x"}}, ("tags", "9lives", "[key]"), NAME_MSG),
        ({"fields": {"usage user": 1}}, ("fields", "usage user", "[key]"), NAME_MSG),
        ({"fields": {"a=b": 1}}, ("fields", "a=b", "[key]"), NAME_MSG),
        (
            {"tags": {f"t{i}": "v" for i in range(33)}},
            ("tags",),
            "Dictionary should have at most 32 items after validation, not more",
        ),
        (
            {"fields": {f"f{i}": i for i in range(65)}},
            ("fields",),
            "Dictionary should have at most 64 items after validation, not more",
        ),
        ({"tags": {"t": "v" * 257}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "中" * 257}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": ""}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "a\nb"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "a\n"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "a\rb"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "a\tb"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "a\x00b"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "a\x7fb"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "a\\"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": "\\"}}, ("tags", "t"), TAG_VALUE_MSG),
        ({"tags": {"t": 1}}, ("tags", "t"), "Input should be a valid string"),
        ({"tags": [1]}, ("tags",), "Input should be a valid dictionary"),
        ({"tags": None}, ("tags",), "Input should be a valid dictionary"),
        ({"fields": {}}, ("fields",), "Dictionary should have at least 1 item after validation, not 0"),
        ({"fields": "x"}, ("fields",), "Input should be a valid dictionary"),
        ({"fields": {"v": "x" * 4097}}, ("fields", "v"), "String should have at most 4096 characters"),
        ({"fields": {"v": math.nan}}, ("fields", "v"), "Input should be a finite number"),
        ({"fields": {"v": math.inf}}, ("fields", "v"), "Input should be a finite number"),
        ({"fields": {"v": -math.inf}}, ("fields", "v"), "Input should be a finite number"),
        (
            {"fields": {"v": INT64_MAX + 1}},
            ("fields", "v"),
            "Input should be less than or equal to 9223372036854775807",
        ),
        (
            {"fields": {"v": INT64_MIN - 1}},
            ("fields", "v"),
            "Input should be greater than or equal to -9223372036854775808",
        ),
        ({"fields": {"v": None}}, ("fields", "v"), "Input should be a valid string"),
        ({"fields": {"v": [1]}}, ("fields", "v"), "Input should be a valid string"),
        ({"fields": {"v": b"bytes"}}, ("fields", "v"), "Input should be a valid string"),
        ({"timestamp": datetime(2024, 5, 1, 12, 0)}, ("timestamp",), "Input should have timezone info"),
        ({"timestamp": "2024-05-01T12:00:00"}, ("timestamp",), "Input should have timezone info"),
        ({"timestamp": "yesterday"}, ("timestamp",), "Input should be a valid datetime or date, input is too short"),
        ({"unit": "seconds"}, ("unit",), "Extra inputs are not permitted"),
    ],
)
def test_sample_refused_naming_the_field(changes: dict[str, Any], loc: tuple[str, ...], msg: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(sample_doc(**changes))

    assert_refused(caught.value, loc, msg)


@pytest.mark.parametrize("value", [INT64_MAX + 1, INT64_MIN - 1, 2**64, 10**30])
def test_int_beyond_int64_is_not_taken_as_a_float(value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(sample_doc(fields={"v": value}))

    assert_refused(
        caught.value,
        ("fields", "v"),
        f"Value error, integer {value} is outside the int64 range [{INT64_MIN}, {INT64_MAX}]",
    )


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate({})

    assert error_pairs(caught.value) == [
        (("measurement",), "Field required"),
        (("fields",), "Field required"),
        (("timestamp",), "Field required"),
    ]


def test_sample_is_frozen() -> None:
    sample = Sample.model_validate(sample_doc())

    with pytest.raises(ValidationError) as caught:
        sample.measurement = "other"  # type: ignore[misc]

    assert error_pairs(caught.value) == [(("measurement",), "Instance is frozen")]
    assert sample.measurement == "cpu"


# -- the timestamp window -------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "msg"),
    [
        (
            NOW - timedelta(days=8),
            "Value error, timestamp 2024-04-23T12:00:00+00:00 is more than 7 days in the past",
        ),
        (
            NOW - timedelta(days=7, microseconds=1),
            "Value error, timestamp 2024-04-24T11:59:59.999999+00:00 is more than 7 days in the past",
        ),
        (
            datetime(1970, 1, 1, tzinfo=UTC),
            "Value error, timestamp 1970-01-01T00:00:00+00:00 is more than 7 days in the past",
        ),
        (
            NOW + timedelta(minutes=11),
            "Value error, timestamp 2024-05-01T12:11:00+00:00 is more than 10 minutes in the future",
        ),
        (
            NOW + timedelta(minutes=10, microseconds=1),
            "Value error, timestamp 2024-05-01T12:10:00.000001+00:00 is more than 10 minutes in the future",
        ),
        (
            datetime(2024, 5, 1, 20, 11, tzinfo=timezone(timedelta(hours=8))),
            "Value error, timestamp 2024-05-01T20:11:00+08:00 is more than 10 minutes in the future",
        ),
    ],
)
def test_sample_outside_window_refused_with_context(at: datetime, msg: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(sample_doc(timestamp=at), context=CONTEXT)

    assert error_pairs(caught.value) == [((), msg)]


@pytest.mark.parametrize(
    "at",
    [
        NOW - timedelta(days=7),
        NOW + timedelta(minutes=10),
        NOW,
        datetime(2024, 5, 1, 20, 10, tzinfo=timezone(timedelta(hours=8))),
    ],
)
def test_sample_at_window_edges_accepted_with_context(at: datetime) -> None:
    sample = Sample.model_validate(sample_doc(timestamp=at), context=CONTEXT)

    assert sample.timestamp == at


@pytest.mark.parametrize(
    "at",
    [NOW - timedelta(days=8), NOW + timedelta(minutes=11), datetime(1970, 1, 1, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC)],
)
def test_sample_outside_window_accepted_without_context(at: datetime) -> None:
    assert Sample.model_validate(sample_doc(timestamp=at)).timestamp == at
    assert Sample.model_validate(sample_doc(timestamp=at), context={}).timestamp == at
    assert Sample.model_validate(sample_doc(timestamp=at), context={"other": 1}).timestamp == at


def test_observation_outside_window_refused_with_context() -> None:
    with pytest.raises(ValidationError) as caught:
        Observation.model_validate(observation_doc(observed_at=NOW - timedelta(days=8)), context=CONTEXT)

    assert error_pairs(caught.value) == [
        ((), "Value error, observed_at 2024-04-23T12:00:00+00:00 is more than 7 days in the past")
    ]


def test_batch_applies_window_to_every_item() -> None:
    late = sample_doc(timestamp=NOW + timedelta(minutes=11))
    old = observation_doc(observed_at=NOW - timedelta(days=8))

    with pytest.raises(ValidationError) as caught:
        Batch.model_validate(
            {"batch_id": "b1", "samples": [sample_doc(), late], "observations": [old]}, context=CONTEXT
        )

    assert error_pairs(caught.value) == [
        (("samples", 1), "Value error, timestamp 2024-05-01T12:11:00+00:00 is more than 10 minutes in the future"),
        (("observations", 0), "Value error, observed_at 2024-04-23T12:00:00+00:00 is more than 7 days in the past"),
    ]


def test_batch_json_window_uses_context() -> None:
    body = '{"batch_id": "b1", "samples": [{"measurement": "m", "fields": {"v": 1}, "timestamp": "2024-04-20T00:00:00Z"}]}'

    assert Batch.model_validate_json(body).samples[0].timestamp == datetime(2024, 4, 20, tzinfo=UTC)
    with pytest.raises(ValidationError) as caught:
        Batch.model_validate_json(body, context=CONTEXT)
    assert error_pairs(caught.value) == [
        (("samples", 0), "Value error, timestamp 2024-04-20T00:00:00+00:00 is more than 7 days in the past")
    ]


def test_validation_context_uses_given_now() -> None:
    assert validation_context(NOW) == {"now": NOW}


def test_validation_context_defaults_to_wall_clock_in_utc() -> None:
    before = datetime.now(UTC)
    context = validation_context()
    after = datetime.now(UTC)

    assert list(context) == ["now"]
    assert before <= context["now"] <= after
    assert context["now"].utcoffset() == timedelta(0)


# -- observation and batch limits -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "loc", "msg"),
    [
        ({"kind": "Interface"}, ("kind",), KIND_MSG),
        ({"kind": "interface-address"}, ("kind",), KIND_MSG),
        ({"kind": "a" * 65}, ("kind",), KIND_MSG),
        ({"source": "probe dhcp"}, ("source",), KIND_MSG),
        ({"subject": ""}, ("subject",), "String should have at least 1 character"),
        ({"subject": "x" * 257}, ("subject",), "String should have at most 256 characters"),
        ({"subject": "10.0.0.1\n"}, ("subject",), TAG_VALUE_MSG),
        ({"subject": "eth0\\"}, ("subject",), TAG_VALUE_MSG),
        ({"attributes": {"bad-key": 1}}, ("attributes", "bad-key", "[key]"), NAME_MSG),
        (
            {"attributes": {f"a{i}": i for i in range(65)}},
            ("attributes",),
            "Dictionary should have at most 64 items after validation, not more",
        ),
        (
            {"attributes": {"vlans": list(range(257))}},
            ("attributes", "vlans"),
            "List should have at most 256 items after validation, not 257",
        ),
        ({"attributes": {"note": "x" * 1025}}, ("attributes", "note"), "String should have at most 1024 characters"),
        ({"attributes": {"w": math.nan}}, ("attributes", "w"), "Input should be a finite number"),
        ({"attributes": {"n": INT64_MAX + 1}}, ("attributes", "n"), "Input should be less than or equal to 9223372036854775807"),
        ({"attributes": {"nested": {"a": 1}}}, ("attributes", "nested"), "Input should be a valid list"),
        ({"observed_at": datetime(2024, 5, 1)}, ("observed_at",), "Input should have timezone info"),
        ({"seen_by": "x"}, ("seen_by",), "Extra inputs are not permitted"),
    ],
)
def test_observation_refused_naming_the_field(changes: dict[str, Any], loc: tuple[str, ...], msg: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Observation.model_validate(observation_doc(**changes))

    assert_refused(caught.value, loc, msg)


@pytest.mark.parametrize(
    ("doc", "loc", "msg"),
    [
        ({"batch_id": ""}, ("batch_id",), ID_MSG),
        ({"batch_id": "-b1"}, ("batch_id",), ID_MSG),
        ({"batch_id": "b 1"}, ("batch_id",), ID_MSG),
        ({"batch_id": "b" * 129}, ("batch_id",), ID_MSG),
        ({"batch_id": 1}, ("batch_id",), "Input should be a valid string"),
        ({"batch_id": "b1", "agent": "agent/7"}, ("agent",), ID_MSG),
        ({"batch_id": "b1", "host": "-web"}, ("host",), "String should match pattern '^[A-Za-z0-9]([A-Za-z0-9_.:-]{0,251}[A-Za-z0-9])?$'"),
        ({"batch_id": "b1", "host": "web."}, ("host",), "String should match pattern '^[A-Za-z0-9]([A-Za-z0-9_.:-]{0,251}[A-Za-z0-9])?$'"),
        ({"batch_id": "b1", "host": "web 01"}, ("host",), "String should match pattern '^[A-Za-z0-9]([A-Za-z0-9_.:-]{0,251}[A-Za-z0-9])?$'"),
        ({"batch_id": "b1", "agency": "x"}, ("agency",), "Extra inputs are not permitted"),
        ({"batch_id": "b1", "samples": {}}, ("samples",), "Input should be a valid list"),
        ({"batch_id": "b1", "samples": [sample_doc(measurement="a b")]}, ("samples", 0, "measurement"), NAME_MSG),
        ({"batch_id": "b1", "samples": [sample_doc(), sample_doc(extra=1)]}, ("samples", 1, "extra"), "Extra inputs are not permitted"),
        ({}, ("batch_id",), "Field required"),
    ],
)
def test_batch_refused_naming_the_field(doc: dict[str, Any], loc: tuple[str | int, ...], msg: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Batch.model_validate(doc)

    assert_refused(caught.value, loc, msg)


def test_batch_with_too_many_samples_refused() -> None:
    doc = sample_doc()

    with pytest.raises(ValidationError) as caught:
        Batch.model_validate({"batch_id": "b1", "samples": [doc] * 50_001})

    assert error_pairs(caught.value) == [
        (("samples",), "List should have at most 50000 items after validation, not 50001")
    ]


def test_batch_with_too_many_observations_refused() -> None:
    doc = observation_doc()

    with pytest.raises(ValidationError) as caught:
        Batch.model_validate({"batch_id": "b1", "observations": [doc] * 10_001})

    assert error_pairs(caught.value) == [
        (("observations",), "List should have at most 10000 items after validation, not 10001")
    ]
