"""Batched decoding (`BatchDecoder`) gives exactly what decoding datagram by datagram gives.

The reference is `decode` per datagram with one template cache; the batch is
every datagram of a fixture group at once, for every copied vendor fixture.
Then what only a batch can get wrong: anchors that differ per datagram, a
malformed datagram in the middle, options data that changes later records,
and a bounded fuzz run where nothing but DecodeErrors may come out.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors.flow.batch import BatchDecoder, DecoderBugError
from collectors.flow.decode import TemplateCache, decode, read_datagrams
from collectors.flow.model import FLOW_DTYPE, Decoded, DecodeError, TruncatedError
from tests.collectors.flow.test_decode import CORPUS, COUNTS, HERE

GROUPS = [g for g in COUNTS if "akvorado" not in g]
EXPORTER = "192.0.2.7"


def _datagrams(names: str) -> list[bytes]:
    return [d for name in names.split(",") for _, d in read_datagrams(HERE / name)]


def _one_by_one(datagrams: list[bytes]) -> np.ndarray:
    cache = TemplateCache()
    parts = []
    for datagram in datagrams:
        decoded = decode(datagram, EXPORTER, cache.mapping(), contexts=cache.contexts())
        cache.apply(decoded)
        parts.append(decoded.flows)
    return np.concatenate(parts) if parts else np.empty(0, FLOW_DTYPE)


def _rows(flows: np.ndarray) -> list[bytes]:
    return sorted(row.tobytes() for row in flows)


@pytest.mark.parametrize("names", GROUPS, ids=[g.split(",")[-1] for g in GROUPS])
def test_a_batch_equals_datagram_by_datagram(names: str) -> None:
    datagrams = _datagrams(names)
    result = BatchDecoder().decode([(EXPORTER, d) for d in datagrams])
    assert all(isinstance(item, Decoded) for item in result.datagrams)
    batch = result.exporters[EXPORTER].flows if EXPORTER in result.exporters else np.empty(0, FLOW_DTYPE)
    expected = _one_by_one(datagrams)
    assert len(batch) == COUNTS[names][0]
    assert _rows(batch) == _rows(expected)
    assert sum(d.record_count for d in result.datagrams if isinstance(d, Decoded)) == len(expected)


def _v5(datagram: bytes, *, uptime: int, secs: int, sampling: int) -> bytes:
    """The MikroTik v5 datagram with another sysUptime, export time and sampling interval."""
    return datagram[:4] + struct.pack(">II", uptime, secs) + datagram[12:22] + struct.pack(">H", sampling) + datagram[24:]


def test_each_datagram_keeps_its_own_time_anchor_and_sampling() -> None:
    (base,) = _datagrams("netflow5_test_microtik.dat")
    variants = [
        _v5(base, uptime=10_000_000, secs=1_700_000_000, sampling=0),
        _v5(base, uptime=20_000_000, secs=1_700_000_100, sampling=100),
        _v5(base, uptime=5_000, secs=1_700_000_200, sampling=0x4000 | 10),  # mode bits, interval 10
    ]
    result = BatchDecoder().decode([(EXPORTER, d) for d in variants])
    assert _rows(result.exporters[EXPORTER].flows) == _rows(_one_by_one(variants))
    rates = sorted(set(result.exporters[EXPORTER].flows["sampling_rate"].tolist()))
    assert rates == [1, 10, 100]


def test_a_malformed_datagram_in_the_middle_contributes_nothing() -> None:
    datagrams = _datagrams("netflow5.dat")
    broken = datagrams[0][:30]  # header says more records than there are
    batch = [(EXPORTER, datagrams[0]), (EXPORTER, broken), ("192.0.2.8", datagrams[1])]
    result = BatchDecoder().decode(batch)
    assert result.senders == [EXPORTER, EXPORTER, "192.0.2.8"]
    assert isinstance(result.datagrams[1], TruncatedError)
    assert len(result.exporters[EXPORTER].flows) == result.datagrams[0].record_count  # type: ignore[union-attr]
    assert _rows(result.exporters["192.0.2.8"].flows) == _rows(_one_by_one(datagrams[1:2]))


def _ipfix_options_then_data(sampling: int) -> list[bytes]:
    """An IPFIX exporter (domain 1) that announces a sampling interval in options data, then sends flows."""
    def message(sets: bytes, sequence: int) -> bytes:
        return struct.pack(">HHIII", 10, 16 + len(sets), 1_700_000_000, sequence, 1) + sets

    def set_(set_id: int, body: bytes) -> bytes:
        return struct.pack(">HH", set_id, 4 + len(body)) + body

    # options template 300: scope observationDomainId (149, 4), samplingInterval (34, 4)
    options_template = set_(3, struct.pack(">HHH", 300, 2, 1) + struct.pack(">HHHH", 149, 4, 34, 4))
    options_data = set_(300, struct.pack(">II", 1, sampling))
    # template 400: sourceIPv4Address, destinationIPv4Address, packetDeltaCount(8), octetDeltaCount(8)
    template = set_(2, struct.pack(">HH", 400, 4) + struct.pack(">HHHHHHHH", 8, 4, 12, 4, 2, 8, 1, 8))
    flows = set_(400, struct.pack(">4s4sQQ", bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 3, 300))
    return [message(template + flows, 0), message(options_template + options_data, 1), message(flows, 2)]


def test_options_sampling_interval_applies_to_later_records() -> None:
    first, options, later = _ipfix_options_then_data(512)
    decoder = BatchDecoder()
    result = decoder.decode([(EXPORTER, first), (EXPORTER, options), (EXPORTER, later)])
    flows = result.exporters[EXPORTER].flows
    assert sorted(flows["sampling_rate"].tolist()) == [1, 512]  # the record before the options is unsampled
    assert result.exporters[EXPORTER].options == ({"observation_domain_id": 1, "sampling_interval": 512},)
    assert decoder.cache(EXPORTER).contexts()[1].sampling_interval == 512


def test_two_samplers_with_different_intervals_are_not_guessed() -> None:
    decoder = BatchDecoder()
    first, options_a, later = _ipfix_options_then_data(512)
    _, options_b, _ = _ipfix_options_then_data(1000)
    result = decoder.decode([(EXPORTER, first), (EXPORTER, options_a), (EXPORTER, options_b), (EXPORTER, later)])
    assert result.exporters[EXPORTER].flows["sampling_rate"].tolist() == [1, 1]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_batches_of_mutated_fixtures(data: st.DataObject) -> None:
    picks = data.draw(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=6))
    batch = []
    for _, datagram, _ in picks:
        buf = bytearray(datagram)
        for _ in range(data.draw(st.integers(0, 6))):
            buf[data.draw(st.integers(0, len(buf) - 1))] = data.draw(st.integers(0, 255))
        batch.append((EXPORTER, bytes(buf[: data.draw(st.integers(0, len(buf)))])))
    result = BatchDecoder().decode(batch)
    assert len(result.datagrams) == len(batch)
    assert not any(isinstance(item, DecoderBugError) for item in result.datagrams)
    assert all(isinstance(item, Decoded | DecodeError) for item in result.datagrams)
    for flows in result.exporters.values():
        assert flows.flows.dtype == FLOW_DTYPE
