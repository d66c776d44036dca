"""Bounded gzip inflation of ingest bodies (issue 14): exact output, early refusal, bounded concurrency."""

from __future__ import annotations

import asyncio
import gzip
import random
import zlib

import pytest

from server.errors import BadRequestError, PayloadTooLargeError
from server.ingest.body import INFLATE_SLICE_BYTES, InflationSlots, decode_content


def _streamed_zeros(inflated: int) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflater.compress(bytes(1 << 20)) for _ in range(inflated >> 20)]
    return b"".join([*parts, deflater.flush()])


@pytest.mark.parametrize("size", [0, 1, INFLATE_SLICE_BYTES - 1, INFLATE_SLICE_BYTES, INFLATE_SLICE_BYTES + 1, 3 * INFLATE_SLICE_BYTES + 7])
def test_inflation_in_slices_gives_back_exactly_the_original(size):
    original = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert decode_content(gzip.compress(original), encoding="gzip", limit=size) == original


def test_a_body_that_needs_the_measuring_pass_is_inflated_exactly():
    original = random.Random(14).randbytes(3 * INFLATE_SLICE_BYTES // 2)  # incompressible: the gzip body is large
    body = gzip.compress(original)
    assert len(body) > INFLATE_SLICE_BYTES // 8
    assert decode_content(body, encoding="gzip", limit=len(original)) == original


@pytest.mark.parametrize("limit", [1024, 5 << 20])
def test_a_gzip_bomb_is_refused_one_byte_past_the_limit(limit):
    bomb = _streamed_zeros(64 << 20)
    with pytest.raises(PayloadTooLargeError):
        decode_content(bomb, encoding="gzip", limit=limit)
    exact = gzip.compress(bytes(limit))
    assert len(decode_content(exact, encoding="gzip", limit=limit)) == limit
    with pytest.raises(PayloadTooLargeError):
        decode_content(gzip.compress(bytes(limit + 1)), encoding="gzip", limit=limit)


def test_truncated_and_corrupt_gzip_are_bad_requests():
    body = gzip.compress(b"x" * 100_000)
    with pytest.raises(BadRequestError, match="truncated"):
        decode_content(body[: len(body) // 2], encoding="gzip", limit=1 << 20)
    with pytest.raises(BadRequestError, match="not valid gzip"):
        decode_content(body[:10] + b"\xff" * 20 + body[30:], encoding="gzip", limit=1 << 20)


def test_no_more_than_the_configured_inflations_run_at_once():
    slots = InflationSlots(2)
    running = 0
    most = 0

    async def one(gate: asyncio.Event) -> None:
        nonlocal running, most
        async with slots.slot():
            running += 1
            most = max(most, running)
            await gate.wait()
            running -= 1

    async def main() -> tuple[int, int]:
        gate = asyncio.Event()
        tasks = [asyncio.create_task(one(gate)) for _ in range(6)]
        while slots.waiting < 4:
            await asyncio.sleep(0)
        seen = running
        gate.set()
        await asyncio.gather(*tasks)
        return seen, most

    assert asyncio.run(main()) == (2, 2)
