"""ICMP echo probe (RFC 792, RFC 4443): one echo request, one matching reply, the round-trip time.

It uses the kernel's unprivileged ping socket (SOCK_DGRAM, IPPROTO_ICMP) when
net.ipv4.ping_group_range lets this process's group use it, and a raw socket
otherwise, which needs CAP_NET_RAW. Without either, the result says exactly that
(reason `no_cap_net_raw`). Packet building and reply matching are pure.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time

from probes.errors import OutOfRangeError, RawSocketPermissionError
from probes.net import check_allowed, classify, resolve
from probes.result import ProbeResult, failed
from probes.safety import AllowedRanges

KIND = "icmp"
ECHO_REQUEST = {4: 8, 6: 128}
ECHO_REPLY = {4: 0, 6: 129}
NO_CAP_MESSAGE = ("ICMP echo needs CAP_NET_RAW for a raw socket (or this process's group in "
                  "net.ipv4.ping_group_range for the unprivileged ping socket); this process has neither")


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of data."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(version: int, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP (v4) or ICMPv6 echo request; the v6 checksum is left 0 for the kernel to fill."""
    header = struct.pack("!BBHHH", ECHO_REQUEST[version], 0, 0, ident, seq)
    if version == 6:
        return header + payload
    return struct.pack("!BBHHH", ECHO_REQUEST[version], 0, checksum(header + payload), ident, seq) + payload


def match_reply(data: bytes, *, version: int, ident: int | None, seq: int, ip_header: bool) -> bool:
    """True when data is the echo reply to (ident, seq); `ident` None: the kernel chose it (ping socket).

    Raw IPv4 sockets deliver the IP header first; ICMPv6 and ping sockets do not.
    Anything short or malformed is simply not a match.
    """
    if ip_header:
        if len(data) < 20 or data[0] >> 4 != 4:
            return False
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < 8:
        return False
    kind, _code, _sum, their_ident, their_seq = struct.unpack("!BBHHH", data[:8])
    return kind == ECHO_REPLY[version] and their_seq == seq and (ident is None or their_ident == ident)


def open_socket(version: int) -> tuple[socket.socket, bool]:
    """A non-blocking ICMP socket and whether it is raw. Raises RawSocketPermissionError."""
    family, proto = (socket.AF_INET, socket.IPPROTO_ICMP) if version == 4 else (socket.AF_INET6, socket.IPPROTO_ICMPV6)
    for kind, raw in ((socket.SOCK_DGRAM, False), (socket.SOCK_RAW, True)):
        try:
            sock = socket.socket(family, kind, proto)
        except PermissionError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT):
                continue
            raise
        sock.setblocking(False)
        return sock, raw
    raise RawSocketPermissionError(NO_CAP_MESSAGE)


async def probe_icmp(host: str, *, timeout: float, allowed: AllowedRanges | None = None,
                     payload: bytes = b"egovmon-probe") -> ProbeResult:
    """Send one echo request to host and wait up to `timeout` seconds for its reply."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            address = (await resolve(host))[0]
            check_allowed([address], allowed, "target")
            sock, raw = open_socket(address.version)
            with sock:
                ident = int.from_bytes(os.urandom(2), "big")
                seq = 1
                packet = echo_request(address.version, ident, seq, payload)
                sent_at = time.perf_counter()
                await loop.sock_sendto(sock, packet, (str(address), 0))
                while True:
                    data = await loop.sock_recv(sock, 65535)
                    if match_reply(data, version=address.version, ident=ident if raw else None, seq=seq,
                                   ip_header=raw and address.version == 4):
                        break
                rtt = time.perf_counter() - sent_at
    except RawSocketPermissionError as exc:
        return failed(KIND, host, "no_cap_net_raw", str(exc))
    except OutOfRangeError as exc:
        return failed(KIND, host, "out_of_range", str(exc))
    except (OSError, TimeoutError) as exc:
        reason, detail = classify(exc)
        return failed(KIND, host, reason, detail, time.perf_counter() - started)
    return ProbeResult(KIND, host, True, detail=f"echo reply from {address} in {rtt * 1000:.3f} ms",
                       duration_seconds=time.perf_counter() - started, phases={"rtt": rtt})
