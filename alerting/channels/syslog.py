"""Channel `syslog`: RFC 5424 messages for the SIEM, over UDP or over TCP with RFC 6587 octet counting."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import Field

from alerting.channel import Channel, ReceiverBase
from alerting.message import AlertView, summary
from core.jsontypes import JsonObject, JsonValue

SYSLOG_SEVERITY = {"critical": 2, "warning": 4, "info": 6}  # RFC 5424: crit, warning, informational
SYSLOG_FACILITY = 13  # log audit
ENTERPRISE_ID = 32473  # RFC 5612 documentation number, for the structured data id
SYSLOG_PORT = 514


class SyslogReceiver(ReceiverBase):
    """A syslog collector."""

    needs: ClassVar[tuple[str, ...]] = ("host",)

    kind: Literal["syslog"]
    host: str | None = Field(None, description="Server address")
    port: int | None = Field(None, ge=1, le=65535, description="Server port (default 514)")
    protocol: Literal["udp", "tcp"] = Field("udp", description="Transport")
    hostname: str | None = Field(None, max_length=255, description="The HOSTNAME field (default: this machine's name)")


def syslog_line(message: Mapping[str, JsonValue], *, hostname: str, at: datetime) -> bytes:
    """One RFC 5424 message: <PRI>1 TIMESTAMP HOST egovmon - MSGID [egovmon@32473 k="v"...] BOM text."""
    pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY.get(str(message["severity"]), 4)

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    data = message["data"]
    if not isinstance(data, dict):
        raise TypeError(f"a syslog message's data is an object, not {type(data).__name__}")
    params = " ".join(f'{k}="{escape(str(v))}"' for k, v in data.items())
    timestamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    head = f"<{pri}>1 {timestamp} {hostname or '-'} egovmon - {message['msgid']} [egovmon@{ENTERPRISE_ID} {params}] "
    return head.encode() + b"\xef\xbb\xbf" + str(message["text"]).encode()


def build(receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], language: str,
          external_url: str) -> JsonObject:
    return {"messages": [
        {"severity": a.labels.get("severity", "warning"), "msgid": "ALERT" if a.status == "firing" else "RESOLVED",
         "data": {"alertname": a.labels.get("alertname", ""), "fingerprint": a.fingerprint, "status": a.status,
                  "agency": a.labels.get("agency", ""), "host": a.labels.get("host", ""), "article": a.labels.get("article", "")},
         "text": summary(a, language)}
        for a in alerts
    ]}  # fmt: skip


def send(receiver: SyslogReceiver, body: Mapping[str, JsonValue], timeout: float) -> None:
    address = (str(receiver.host), receiver.port or SYSLOG_PORT)
    hostname = receiver.hostname or socket.gethostname()
    messages = body["messages"]
    if not isinstance(messages, list):
        raise TypeError("a syslog body holds a list of message objects")
    lines = []
    for message in messages:
        if not isinstance(message, dict):
            raise TypeError("a syslog body holds a list of message objects")
        lines.append(syslog_line(message, hostname=hostname, at=datetime.now(UTC)))
    if receiver.protocol == "tcp":
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(b"".join(str(len(line)).encode() + b" " + line for line in lines))  # RFC 6587 octet counting
    else:
        with socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for line in lines:
                sock.sendto(line, address)


CHANNEL = Channel("syslog", SyslogReceiver, build, send)
