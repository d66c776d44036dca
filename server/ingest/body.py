"""Read a request body within limits and inflate gzip without trusting its size claims.

A gzip "bomb" (1 GB of zeros is 1 MB on the wire) must cost the server neither its
event loop nor its memory: inflation runs in a worker thread, in slices of
`INFLATE_SLICE_BYTES` (zlib releases the GIL while it inflates a slice, and no single
step copies more than a slice while holding it), stops as soon as the output passes the
limit, and `InflationSlots` bounds how many requests inflate at once, so the memory held
by inflation is at most slots x limit.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from server.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaError

INFLATE_SLICE_BYTES = 1 << 20  # inflated per zlib call


async def read_limited(chunks: AsyncIterator[bytes], *, declared_length: str | None, limit: int) -> bytes:
    """Collect a body of at most `limit` bytes, refusing early on a larger Content-Length.

    Raises:
        PayloadTooLargeError: the body is (or claims to be) larger than `limit`.
        BadRequestError: Content-Length is not a number.
    """
    if declared_length is not None:
        try:
            declared = int(declared_length)
        except ValueError as exc:
            raise BadRequestError("Content-Length is not a number", reason="bad_content_length") from exc
        if declared > limit:
            raise PayloadTooLargeError(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decode_content(body: bytes, *, encoding: str | None, limit: int) -> bytes:
    """The body after Content-Encoding: identity or gzip, inflated to at most `limit` bytes.

    Inflation is bounded as it happens, so a small "gzip bomb" cannot allocate
    more than `limit` bytes; a body larger than 128 KB is measured before it is kept,
    so a bomb is refused having held only one slice.

    Raises:
        UnsupportedMediaError: an encoding other than gzip or identity.
        PayloadTooLargeError: the inflated body exceeds `limit`.
        BadRequestError: the gzip stream is corrupt or truncated.
    """
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise UnsupportedMediaError(f"Content-Encoding {encoding!r} is not supported; use gzip or none")
    if len(body) > INFLATE_SLICE_BYTES // 8:
        # A body that could inflate to more than a slice is measured first, keeping nothing: a bomb
        # is refused having held one slice, not `limit` bytes. Real batches are far smaller than
        # this and are inflated once.
        _inflate(body, limit, keep=False)
    return _inflate(body, limit, keep=True)


def _inflate(body: bytes, limit: int, *, keep: bool) -> bytes:
    """Inflate gzip `body` slice by slice, refusing past `limit` bytes; the output, or b"" when not `keep`."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    parts: list[bytes] = []
    size = 0
    pending = body
    try:
        while True:
            room = min(INFLATE_SLICE_BYTES, limit + 1 - size)
            part = inflater.decompress(pending, room)
            size += len(part)
            if size > limit:
                raise PayloadTooLargeError(f"inflated body exceeds the limit of {limit} bytes")
            if keep:
                parts.append(part)
            pending = inflater.unconsumed_tail
            if inflater.eof or (not pending and len(part) < room):
                break  # the end of the stream, or all input consumed and all its output given
    except zlib.error as exc:
        raise BadRequestError(f"body is not valid gzip: {exc}", reason="bad_gzip") from exc
    if not inflater.eof:
        raise BadRequestError("gzip body is truncated", reason="bad_gzip")
    return parts[0] if len(parts) == 1 else b"".join(parts)


class InflationSlots:
    """At most `slots` requests inflate (and parse) large bodies at once; the others wait their turn.

    Each inflation may hold up to `max_decompressed_bytes`, so this bounds the memory that
    inflation can take whatever the number of connections. Created with the app (not at import);
    the asyncio semaphore binds to the running loop on first use.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._semaphore = asyncio.Semaphore(slots)
        self.waiting = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self._semaphore.release()
