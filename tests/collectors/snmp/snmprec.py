"""Read snmpsim `.snmprec` recordings (OID|TAG|VALUE) into varbinds, independently of the collector's codec.

Tags are the BER tag numbers in decimal (2 INTEGER, 4 OCTET STRING, 6 OID, 64 IpAddress,
65 Counter32, 66 Gauge32, 67 TimeTicks, 70 Counter64); a trailing `x` means the value
is hex; variation tags such as `67:numeric` are read as their base tag.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

LOCAL = Path(__file__).resolve().parents[2] / "fixtures" / "snmp"  # BSD-2-Clause copies
SHARED = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "snmp"  # also the GPL-3.0 LibreNMS ones


def recordings() -> list[Path]:
    """The recordings to test with: the repository's copies plus LibreNMS's from ../shared when present."""
    found = {path.name: path for path in sorted(LOCAL.glob("*.snmprec"))}
    for path in sorted(SHARED.glob("librenms_*.snmprec")):
        found.setdefault(path.name, path)
    return [found[name] for name in sorted(found)]


def lines(path: Path) -> list[tuple[str, str, str]]:
    """The raw (oid, tag, value) text triples of a recording."""
    return [tuple(line.split("|", 2)) for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]


def oid(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip(".").split("."))


def read(path: Path) -> list[tuple[tuple[int, ...], object]]:
    """Every line of a recording as (oid, value), values typed as the collector's codec types them."""
    out: list[tuple[tuple[int, ...], object]] = []
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        name, tag, value = line.split("|", 2)
        hexed = tag.endswith("x")
        base = int(tag.rstrip("x").split(":")[0])
        try:
            raw = bytes.fromhex(value) if hexed else value.encode("latin-1")
        except ValueError:
            continue  # anonymised hex such as 346288XXYYZZ: snmpsim cannot serve it either
        if base == 4:
            out.append((oid(name), raw))
        elif base == 6:
            out.append((oid(name), oid(raw.decode())))
        elif base == 64:
            dotted = not hexed and raw.count(b".") == 3
            out.append((oid(name), ipaddress.IPv4Address(raw.decode() if dotted else raw)))
        elif base in (2, 65, 66, 67, 70, 71):
            if base == 67 and ":" in tag:
                digits = value.split(",")[0].split("=")[-1] if "=" in value else value
                out.append((oid(name), int("".join(ch for ch in digits if ch.isdigit()) or 0)))
            else:
                out.append((oid(name), int(value)))
        else:
            out.append((oid(name), raw))
    return out


def subtree(varbinds, root: tuple[int, ...]):
    return [(o, v) for o, v in varbinds if o[:len(root)] == root and len(o) > len(root)]
