"""Real SNMP bytes for the BER fuzz campaign: net-snmp's own encodings, captured on loopback at test time.

- `walk_responses`: the GETBULK responses a real snmpd sends while we walk system, interfaces and ip.
- `net_snmp_traps`: what `snmptrap` sends (v2c with every value type, v1 enterprise trap), received on a
  socket of ours.
"""

from __future__ import annotations

import socket
import subprocess

from collectors.snmp.ber import RESPONSE, decode_message, encode_get_bulk

WALKED = ((1, 3, 6, 1, 2, 1, 1), (1, 3, 6, 1, 2, 1, 2), (1, 3, 6, 1, 2, 1, 4), (1, 3, 6, 1, 2, 1, 25))
MARKER_OID = "1.3.6.1.4.1.99999.1.0"
MARKER = b"VALID-000000"


def walk_responses(port: int, community: str, *, limit: int = 40) -> list[bytes]:
    """Raw GETBULK responses (max-repetitions 25) from the snmpd on 127.0.0.1:port, walking WALKED."""
    out: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for root in WALKED:
            oid = root
            while len(out) < limit:
                sock.sendto(encode_get_bulk(community.encode(), len(out) + 1, [oid], max_repetitions=25), ("127.0.0.1", port))
                data = sock.recv(65535)
                message = decode_message(data)
                assert message.pdu_type == RESPONSE and message.error_status == 0
                out.append(data)
                last = message.varbinds[-1][0]
                if last[: len(root)] != root:
                    break
                oid = last
    return out


def _capture(argv_for: list[str]) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        target = f"127.0.0.1:{sock.getsockname()[1]}"
        subprocess.run([arg.replace("TARGET", target) for arg in argv_for], check=True, capture_output=True, timeout=15)
        return sock.recv(65535)


def net_snmp_traps(community: str) -> dict[str, bytes]:
    """snmptrap's datagrams by name; "marked" carries MARKER as the value of MARKER_OID."""
    v2 = ["snmptrap", "-v2c", "-c", community, "TARGET", ""]
    return {
        "marked": _capture([*v2, "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.3", "i", "3",
                            "1.3.6.1.2.1.2.2.1.2.3", "s", "GigabitEthernet0/0/3", MARKER_OID, "s", MARKER.decode()]),
        "every type": _capture([*v2, "1.3.6.1.4.1.2011.5.25.219.2.2.1", "1.3.6.1.2.1.1.5.0", "s", "交换机-01",
                                "1.3.6.1.2.1.2.2.1.10.1", "c", "4294967295", "1.3.6.1.2.1.2.2.1.5.1", "u", "1000000000",
                                "1.3.6.1.2.1.1.3.0", "t", "12345", "1.3.6.1.2.1.4.20.1.1.10.0.0.1", "a", "10.0.0.1",
                                "1.3.6.1.2.1.1.2.0", "o", "1.3.6.1.4.1.2011.2.23.291", "1.3.6.1.2.1.1.4.0", "x", "DEADBEEF",
                                "1.3.6.1.2.1.2.2.1.7.1", "i", "-1"]),
        "cold start": _capture([*v2, "1.3.6.1.6.3.1.1.5.1"]),
        "v1 enterprise": _capture(["snmptrap", "-v1", "-c", community, "TARGET", "1.3.6.1.4.1.2011.5.25", "127.0.0.1",
                                   "6", "17", "", "1.3.6.1.4.1.2011.5.25.1", "s", "x"]),
    }


def marked(trap: bytes, number: int) -> bytes:
    """The captured "marked" trap with its marker set to VALID-<number>: net-snmp's bytes, a unique payload."""
    assert trap.count(MARKER) == 1
    return trap.replace(MARKER, f"VALID-{number:06d}".encode())
