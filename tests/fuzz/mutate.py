"""Seeded mutation of real captures: the same seed gives the same hostile bytes on every machine.

Used by the fuzz campaign (tests/fuzz) and its longer version in bench/. The mutators follow what breaks
binary decoders in practice: flipped bits and bytes, length fields rewritten to 0, 1, 3, 4, just past the end
or 0xFFFF, truncation, extension with junk, and splicing two real datagrams together.
"""

from __future__ import annotations

import random
import struct

# Offsets of 16-bit length-like fields worth rewriting, besides random positions: the NetFlow v9 count and the
# IPFIX message length (2), the first set/flowset id and length (16/18 for IPFIX, 20/22 for v9), a template's
# field count (IPFIX 22, v9 26).
_LENGTH_OFFSETS = (2, 16, 18, 20, 22, 24, 26)
_LENGTH_VALUES = (0, 1, 2, 3, 4, 5, 255, 256, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)


def mutate(datagram: bytes, rng: random.Random) -> bytes:
    """One to eight mutations of `datagram`, chosen and placed by `rng`."""
    buf = bytearray(datagram)
    for _ in range(rng.randint(1, 8)):
        kind = rng.randrange(7)
        if not buf:
            buf.extend(rng.randbytes(rng.randint(1, 40)))
            continue
        if kind == 0:  # one bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif kind == 1:  # one byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif kind == 2:  # a 16-bit length-like field
            offsets = [o for o in _LENGTH_OFFSETS if o + 2 <= len(buf)] or [0]
            offset = rng.choice(offsets) if rng.random() < 0.7 else rng.randrange(max(1, len(buf) - 1))
            if offset + 2 <= len(buf):
                struct.pack_into("!H", buf, offset, rng.choice(_LENGTH_VALUES + (len(buf), len(buf) + 1)))
        elif kind == 3:  # truncation
            del buf[rng.randrange(len(buf) + 1):]
        elif kind == 4:  # junk appended
            buf.extend(rng.randbytes(rng.randint(1, 64)))
        elif kind == 5:  # a run of bytes zeroed or set to 0xFF
            i = rng.randrange(len(buf))
            n = rng.randint(1, 16)
            buf[i:i + n] = bytes([rng.choice((0, 255))]) * len(buf[i:i + n])
        else:  # a run duplicated in place (repeated sets and records)
            i = rng.randrange(len(buf))
            n = rng.randint(1, 64)
            buf[i:i] = buf[i:i + n]
    return bytes(buf[:65507])  # the largest UDP payload over IPv4


def splice(first: bytes, second: bytes, rng: random.Random) -> bytes:
    """The head of one real datagram followed by the tail of another."""
    return (first[: rng.randint(0, len(first))] + second[rng.randint(0, len(second)):])[:65507]
