"""core.lineprotocol: exact lines per the InfluxDB line-protocol reference.

https://docs.influxdata.com/influxdb/v2/reference/syntax/line-protocol/
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.lineprotocol import (
    LineEncoder,
    LineProtocolError,
    encode_line,
    encode_sample,
    encode_samples,
    escape_key,
    escape_measurement,
    format_field_value,
    timestamp_ns,
)
from core.models import Sample

# -- escaping -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cpu", "cpu"),
        ("my Measurement", r"my\ Measurement"),
        ("a,b", r"a\,b"),
        ("a=b", "a=b"),  # equals signs are not special in a measurement
        ('a"b', 'a"b'),
        (r"a\b", r"a\b"),
        ("处理器 负载", r"处理器\ 负载"),
        (" ,", r"\ \,"),
    ],
)
def test_escape_measurement(name: str, expected: str) -> None:
    assert escape_measurement(name) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host", "host"),
        ("tag Key", r"tag\ Key"),
        ("tag,key", r"tag\,key"),
        ("field=Key", r"field\=Key"),
        ("a b,c=d", r"a\ b\,c\=d"),
        ('say "hi"', r'say\ "hi"'),  # double quotes are not special in keys and tag values
        (r"C:\dir", r"C:\dir"),  # a backslash not before a special character stays as is
        (r"a\,b", r"a\\,b"),
        ("北京", "北京"),
    ],
)
def test_escape_key(text: str, expected: str) -> None:
    assert escape_key(text) == expected


def test_escape_key_refuses_empty_text() -> None:
    with pytest.raises(LineProtocolError, match="cannot be empty"):
        escape_key("")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("fieldValue", '"fieldValue"'),
        ('"string" within a string', r'"\"string\" within a string"'),
        (r"C:\path", r'"C:\\path"'),
        ("a,b c=d", '"a,b c=d"'),  # commas, spaces and equals need no escape inside quotes
        ("", '""'),
        ("正常", '"正常"'),
        ('\\"', r'"\\\""'),
        (True, "true"),
        (False, "false"),
        (0, "0i"),
        (42, "42i"),
        (-7, "-7i"),
        (2**63 - 1, "9223372036854775807i"),
        (-(2**63), "-9223372036854775808i"),
        (0.1, "0.1"),
        (1e-05, "1e-05"),
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (-1.5, "-1.5"),
        (1e16, "1e+16"),
        (123456789.125, "123456789.125"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (5e-324, "5e-324"),
    ],
)
def test_format_field_value(value: bool | int | float | str, expected: str) -> None:
    assert format_field_value(value) == expected


# -- whole lines ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "ns", "expected"),
    [
        (
            "myMeasurement",
            {"tag1": "value1", "tag2": "value2"},
            {"fieldKey": "fieldValue"},
            1556813561098000000,
            'myMeasurement,tag1=value1,tag2=value2 fieldKey="fieldValue" 1556813561098000000',
        ),
        (
            "my Measurement",
            {},
            {"fieldKey": "string value"},
            1556813561098000000,
            r'my\ Measurement fieldKey="string value" 1556813561098000000',
        ),
        (
            "myMeasurement",
            {"tag Key1": "tag Value1", "tag Key2": "tag Value2"},
            {"field Key": "string value"},
            1556813561098000000,
            r'myMeasurement,tag\ Key1=tag\ Value1,tag\ Key2=tag\ Value2 field\ Key="string value" 1556813561098000000',
        ),
        (
            "myMeasurement",
            {},
            {"fieldKey": '"string" within a string'},
            1556813561098000000,
            r'myMeasurement fieldKey="\"string\" within a string" 1556813561098000000',
        ),
        (
            "cpu",
            {"z": "1", "a": "2", "m": "3"},
            {"usage": 0.5, "count": 3, "up": True, "state": "ok"},
            0,
            'cpu,a=2,m=3,z=1 usage=0.5,count=3i,up=true,state="ok" 0',
        ),
        (
            "cpu",
            {"城市": "北京", "部门": "政务 服务", "host": "web-01"},
            {"说明": "正常"},
            -1000,
            r'cpu,host=web-01,城市=北京,部门=政务\ 服务 说明="正常" -1000',
        ),
        ("m", {"B": "1", "a": "2", "_": "3"}, {"v": -1}, 1, "m,B=1,_=3,a=2 v=-1i 1"),
    ],
)
def test_encode_line(
    measurement: str, tags: dict[str, str], fields: dict[str, Any], ns: int, expected: str
) -> None:
    assert encode_line(measurement, tags, fields, ns) == expected


def test_encode_line_does_not_touch_the_callers_mappings() -> None:
    tags = {"z": "1", "a": "2"}
    fields = {"b": 1, "a": 2.5}

    encode_line("m", tags, fields, 0)

    assert list(tags.items()) == [("z", "1"), ("a", "2")]
    assert list(fields.items()) == [("b", 1), ("a", 2.5)]


# -- timestamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(2019, 5, 2, 16, 12, 41, 98000, tzinfo=UTC), 1556813561098000000),
        (datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), 1714564800123456000),
        (datetime(2024, 5, 1, 12, 0, 0, 999999, tzinfo=UTC), 1714564800999999000),
        (datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC), 9223372036854775000),
        (datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC), 1000),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), -1000),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), -1_000_000_000),
        (datetime(1969, 12, 31, 0, 0, 0, 500000, tzinfo=UTC), -86_399_500_000_000),
        (datetime(1900, 1, 1, tzinfo=UTC), -2_208_988_800_000_000_000),
        (datetime(1970, 1, 1, 8, tzinfo=timezone(timedelta(hours=8))), 0),
        (datetime(2024, 5, 1, 20, 0, 0, 123456, tzinfo=timezone(timedelta(hours=8))), 1714564800123456000),
    ],
)
def test_timestamp_ns_is_exact(at: datetime, expected: int) -> None:
    assert timestamp_ns(at) == expected


@given(st.datetimes(min_value=datetime(1677, 9, 22), max_value=datetime(2262, 4, 11), timezones=st.just(UTC)))
def test_timestamp_ns_round_trips(at: datetime) -> None:
    ns = timestamp_ns(at)

    assert ns % 1000 == 0
    assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000) == at


# -- samples and the encoder ----------------------------------------------------------


def test_encode_sample() -> None:
    sample = Sample(
        measurement="host_network_receive_bytes_total",
        tags={"host": "web-01", "device": "eth0"},
        fields={"value": 123456789},
        timestamp=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
    )

    assert encode_sample(sample) == (
        "host_network_receive_bytes_total,device=eth0,host=web-01 value=123456789i 1714564800123456000"
    )


def test_encode_samples_extra_tags_override_payload_tags() -> None:
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    samples = [
        Sample(measurement="cpu", tags={"host": "claimed", "cpu": "0"}, fields={"usage": 0.5}, timestamp=at),
        Sample(measurement="cpu", tags={"cpu": "1"}, fields={"usage": 1.5}, timestamp=at),
        Sample(measurement="up", fields={"value": True}, timestamp=at),
    ]

    lines = encode_samples(samples, extra_tags={"host": "web 01", "agency": "gov"})

    assert lines == [
        r"cpu,agency=gov,cpu=0,host=web\ 01 usage=0.5 1714564800000000000",
        r"cpu,agency=gov,cpu=1,host=web\ 01 usage=1.5 1714564800000000000",
        r"up,agency=gov,host=web\ 01 value=true 1714564800000000000",
    ]
    assert samples[0].tags == {"host": "claimed", "cpu": "0"}


def test_encode_samples_without_extra_tags() -> None:
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    samples = [Sample(measurement="m", tags={"b": "2", "a": "1"}, fields={"v": 1}, timestamp=at)]

    assert encode_samples(samples) == ["m,a=1,b=2 v=1i 1714564800000000000"]
    assert encode_samples([]) == []


def test_encoder_reuses_head_and_keys_with_identical_output() -> None:
    encoder = LineEncoder({"agency": "gov"})

    first = encoder.line("cpu", {"host": "a", "cpu": "0"}, {"usage": 0.5, "n": 1}, 1)
    again = encoder.line("cpu", {"host": "a", "cpu": "0"}, {"usage": 0.25, "n": 2}, 2)
    reordered = encoder.line("cpu", {"cpu": "0", "host": "a"}, {"n": 3, "usage": 0.125}, 3)
    other = encoder.line("cpu", {"host": "b", "cpu": "0"}, {"usage": 1.0, "n": 4}, 4)

    assert [first, again, reordered, other] == [
        "cpu,agency=gov,cpu=0,host=a usage=0.5,n=1i 1",
        "cpu,agency=gov,cpu=0,host=a usage=0.25,n=2i 2",
        "cpu,agency=gov,cpu=0,host=a n=3i,usage=0.125 3",
        "cpu,agency=gov,cpu=0,host=b usage=1.0,n=4i 4",
    ]


def test_encoder_keeps_its_own_copy_of_extra_tags() -> None:
    extra = {"host": "web-01"}
    encoder = LineEncoder(extra)

    extra["host"] = "changed"

    assert encoder.line("m", {"host": "claimed"}, {"v": 1}, 0) == "m,host=web-01 v=1i 0"
    assert extra == {"host": "changed"}


def test_encoder_head_and_fields() -> None:
    encoder = LineEncoder({"host": "h"})

    assert encoder.head("my m", {"host": "x", "a b": "c,d"}) == r"my\ m,a\ b=c\,d,host=h"
    assert encoder.fields({"f": 1.5, "i": 2, "b": False, "s": 'q"'}) == r'f=1.5,i=2i,b=false,s="q\""'


_SPECIAL = list(' ,="\\\n\rab中')
_TEXT = st.text(alphabet=st.one_of(st.sampled_from(_SPECIAL), st.characters(codec="utf-8")), max_size=6)
_TAGS = st.dictionaries(_TEXT, _TEXT, max_size=4)
_FIELD_VALUE = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=6),
)
_FIELDS = st.dictionaries(_TEXT, _FIELD_VALUE, max_size=4)
_SERIES = st.tuples(st.sampled_from(["cpu", "my m", "a,b"]) | _TEXT, _TAGS, _FIELDS, st.integers(-(2**63), 2**63 - 1))


def _outcome(encode: Any, *args: Any) -> str | type[Exception]:
    try:
        return encode(*args)
    except LineProtocolError:
        return LineProtocolError


@settings(max_examples=300)
@given(extra=_TAGS, series=st.lists(_SERIES, max_size=8))
def test_encoder_matches_encode_line(extra: dict[str, str], series: list[tuple[str, dict[str, str], dict[str, Any], int]]) -> None:
    encoder = LineEncoder(extra)

    for measurement, tags, fields, ns in series + series:  # the second pass hits the caches
        expected = _outcome(encode_line, measurement, {**tags, **extra}, fields, ns)
        assert _outcome(encoder.line, measurement, tags, fields, ns) == expected


# -- what line protocol cannot carry --------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "message"),
    [
        ("m", {"t": "a\nb"}, {"v": 1}, "tag or field 'a\\nb' contains a newline, which line protocol cannot carry"),
        ("m", {"t": "a\rb"}, {"v": 1}, "tag or field 'a\\rb' contains a newline, which line protocol cannot carry"),
        ("m", {"t\n": "a"}, {"v": 1}, "tag or field 't\\n' contains a newline, which line protocol cannot carry"),
        ("m", {}, {"v\n": 1}, "tag or field 'v\\n' contains a newline, which line protocol cannot carry"),
        ("m\n", {}, {"v": 1}, "measurement 'm\\n' contains a newline, which line protocol cannot carry"),
        ("m", {"t": "a\\"}, {"v": 1}, r"tag or field 'a\\' ends with a backslash"),
        ("m", {"t\\": "a"}, {"v": 1}, r"tag or field 't\\' ends with a backslash"),
        ("m", {}, {"v\\": 1}, r"tag or field 'v\\' ends with a backslash"),
        ("m", {}, {"v": math.nan}, "field value nan is not finite"),
        ("m", {}, {"v": math.inf}, "field value inf is not finite"),
        ("m", {}, {"v": -math.inf}, "field value -inf is not finite"),
        ("m", {}, {"v": None}, "field value None has unsupported type NoneType"),
        ("m", {}, {"v": b"x"}, "field value b'x' has unsupported type bytes"),
    ],
)
def test_unencodable_values_raise(measurement: str, tags: dict[str, str], fields: dict[str, Any], message: str) -> None:
    with pytest.raises(LineProtocolError) as direct:
        encode_line(measurement, tags, fields, 0)
    with pytest.raises(LineProtocolError) as cached:
        LineEncoder().line(measurement, tags, fields, 0)

    assert str(direct.value) == message
    assert str(cached.value) == message


def test_no_fields_raise() -> None:
    with pytest.raises(LineProtocolError) as direct:
        encode_line("m", {"t": "a"}, {}, 0)
    with pytest.raises(LineProtocolError) as cached:
        LineEncoder().line("m", {"t": "a"}, {}, 0)

    assert str(direct.value) == "measurement 'm' has no fields"
    assert str(cached.value) == "a line needs at least one field"


def test_extra_tag_with_trailing_backslash_raises() -> None:
    with pytest.raises(LineProtocolError) as caught:
        LineEncoder({"agency": "gov\\"}).line("m", {}, {"v": 1}, 0)

    assert str(caught.value) == r"tag or field 'gov\\' ends with a backslash"


def test_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="ends with a backslash"):
        escape_key("x\\")


def test_the_shared_field_key_cache_is_bounded_and_counts_its_clears() -> None:
    """Field names come from agents' payloads: past its limit (10,000 names) the cache is cleared, and counted."""
    from core.lineprotocol import LineEncoder, field_keys_clears

    encoder = LineEncoder()
    before = field_keys_clears()
    for n in range(10_001):
        assert encoder.fields({f"clear_probe_{n}": 1}) == f"clear_probe_{n}=1i"
    assert field_keys_clears() - before >= 1
