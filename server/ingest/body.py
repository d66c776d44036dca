"""Read a request body within limits and inflate gzip without trusting its size claims."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator

from server.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaError


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
    more than `limit` bytes.

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
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequestError(f"body is not valid gzip: {exc}", reason="bad_gzip") from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise PayloadTooLargeError(f"inflated body exceeds the limit of {limit} bytes")
    if not inflater.eof:
        raise BadRequestError("gzip body is truncated", reason="bad_gzip")
    return data
