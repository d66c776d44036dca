"""Notifications: what each receiver kind gets (pure builders) and how it is delivered (thin shells).

Kinds: `webhook` (egovmon's JSON, Chinese and English texts), `alertmanager`
(the Alertmanager webhook payload, version 4), `dingtalk` (robot, markdown,
signed: https://open.dingtalk.com/document/robots/customize-robot-security-settings),
`wecom` (group robot, markdown), `smtp` (e-mail) and `syslog` (RFC 5424 over
UDP, or TCP with RFC 6587 octet counting, for the SIEM). A message is built
once when it is queued (the outbox stores it), so a retry sends the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import socket
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx

SYSLOG_SEVERITY = {"critical": 2, "warning": 4, "info": 6}  # RFC 5424: crit, warning, informational
SYSLOG_FACILITY = 13  # log audit
ENTERPRISE_ID = 32473  # RFC 5612 documentation number, for the structured data id


@dataclass(frozen=True, slots=True)
class AlertView:
    """What a notification says about one alert."""

    fingerprint: str
    status: str  # firing or resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    lacking_data: bool = False


class DeliveryError(Exception):
    """The receiver did not take the message; it is retried with backoff."""


def summary(alert: AlertView, language: str) -> str:
    key = "summary_zh" if language == "zh" else "summary_en"
    return alert.annotations.get(key) or alert.annotations.get("summary") or alert.labels.get("alertname", "")


STATUS_TEXT = {"zh": {"firing": "告警", "resolved": "恢复"}, "en": {"firing": "FIRING", "resolved": "RESOLVED"}}
SEVERITY_TEXT = {"zh": {"critical": "严重", "warning": "警告", "info": "提示"}, "en": {"critical": "critical", "warning": "warning", "info": "info"}}


def text_lines(alerts: Sequence[AlertView], language: str) -> list[str]:
    lines = []
    for a in alerts:
        status = STATUS_TEXT[language][a.status]
        severity = SEVERITY_TEXT[language].get(a.labels.get("severity", "warning"), a.labels.get("severity", ""))
        article = f" [{a.labels['article']}]" if a.labels.get("article") else ""
        lacking = (" （数据中断）" if language == "zh" else " (data missing)") if a.lacking_data else ""
        lines.append(f"[{status}][{severity}] {summary(a, language)}{article}{lacking}")
    return lines


def build(kind: str, receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], *,
          language: str = "zh", external_url: str = "") -> dict[str, Any]:
    """The body to send for one group of alerts (JSON for HTTP kinds; subject/body for smtp; message for syslog)."""
    firing = any(a.status == "firing" for a in alerts)
    title = ("【egovmon】" if language == "zh" else "[egovmon] ") + (text_lines(alerts, language)[0] if alerts else "")
    if kind == "alertmanager":
        common = {k: v for k, v in alerts[0].labels.items() if all(a.labels.get(k) == v for a in alerts)} if alerts else {}
        return {
            "version": "4", "groupKey": json.dumps(dict(sorted(group_labels.items())), ensure_ascii=False),
            "truncatedAlerts": 0, "status": "firing" if firing else "resolved", "receiver": receiver,
            "groupLabels": dict(group_labels), "commonLabels": common, "commonAnnotations": {}, "externalURL": external_url,
            "alerts": [
                {"status": a.status, "labels": dict(a.labels), "annotations": dict(a.annotations),
                 "startsAt": a.starts_at.isoformat(), "endsAt": (a.ends_at or datetime(1, 1, 1, tzinfo=UTC)).isoformat(),
                 "generatorURL": external_url, "fingerprint": a.fingerprint}
                for a in alerts
            ],
        }  # fmt: skip
    if kind == "webhook":
        return {
            "receiver": receiver, "status": "firing" if firing else "resolved", "group": dict(group_labels),
            "title": title, "text": "\n".join(text_lines(alerts, language)),
            "alerts": [
                {"fingerprint": a.fingerprint, "status": a.status, "labels": dict(a.labels), "annotations": dict(a.annotations),
                 "summary_zh": summary(a, "zh"), "summary_en": summary(a, "en"), "lacking_data": a.lacking_data,
                 "starts_at": a.starts_at.isoformat(), "ends_at": a.ends_at.isoformat() if a.ends_at else None}
                for a in alerts
            ],
        }  # fmt: skip
    if kind == "dingtalk":
        text = "\n\n".join(f"- {line}" for line in text_lines(alerts, language))
        return {"msgtype": "markdown", "markdown": {"title": title[:64], "text": f"### {title}\n\n{text}"}}
    if kind == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": f"**{title}**\n" + "\n".join(f"> {l}" for l in text_lines(alerts, language))}}
    if kind == "smtp":
        return {"subject": title[:200], "body": "\n".join(text_lines(alerts, language)) + "\n"}
    if kind == "syslog":
        return {"messages": [
            {"severity": a.labels.get("severity", "warning"), "msgid": "ALERT" if a.status == "firing" else "RESOLVED",
             "data": {"alertname": a.labels.get("alertname", ""), "fingerprint": a.fingerprint, "status": a.status,
                      "agency": a.labels.get("agency", ""), "host": a.labels.get("host", ""), "article": a.labels.get("article", "")},
             "text": summary(a, language)}
            for a in alerts
        ]}  # fmt: skip
    raise ValueError(f"unknown receiver kind {kind!r}")


def dingtalk_url(url: str, secret: str | None, now_ms: int | None = None) -> str:
    """The robot URL with `timestamp` and `sign` (HMAC-SHA256 of "timestamp\\nsecret", base64, URL-encoded)."""
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def syslog_line(message: Mapping[str, Any], *, hostname: str, at: datetime) -> bytes:
    """One RFC 5424 message: <PRI>1 TIMESTAMP HOST egovmon - MSGID [egovmon@32473 k="v"...] BOM text."""
    pri = SYSLOG_FACILITY * 8 + SYSLOG_SEVERITY.get(str(message["severity"]), 4)

    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    params = " ".join(f'{k}="{escape(str(v))}"' for k, v in message["data"].items())
    head = f"<{pri}>1 {at.astimezone(UTC).isoformat(timespec='milliseconds').replace('+00:00', 'Z')} {hostname or '-'} egovmon - {message['msgid']} [egovmon@{ENTERPRISE_ID} {params}] "
    return head.encode() + b"\xef\xbb\xbf" + str(message["text"]).encode()


def deliver(kind: str, target: Mapping[str, Any], body: Mapping[str, Any], *, timeout: float = 10.0) -> None:
    """Send one built message to a receiver (`target` is its settings as a dict). Raises DeliveryError."""
    try:
        if kind in ("webhook", "alertmanager", "dingtalk", "wecom"):
            url = target["url"]
            if kind == "dingtalk":
                url = dingtalk_url(url, target.get("secret"))
            response = httpx.post(url, json=body, timeout=timeout, headers=target.get("headers") or {})
            if response.status_code >= 300:
                raise DeliveryError(f"{kind} {target['url']} answered {response.status_code}: {response.text[:200]}")
            if kind in ("dingtalk", "wecom"):
                answer = response.json() if response.content else {}
                if answer.get("errcode", 0) != 0:
                    raise DeliveryError(f"{kind} refused the message: {answer}")
        elif kind == "smtp":
            message = EmailMessage()
            message["Subject"], message["From"], message["To"] = body["subject"], target["sender"], ", ".join(target["to"])
            message.set_content(body["body"], charset="utf-8")
            with smtplib.SMTP(target["host"], int(target.get("port", 25)), timeout=timeout) as smtp:
                if target.get("starttls"):
                    smtp.starttls()
                if target.get("username"):
                    smtp.login(target["username"], target.get("password") or "")
                smtp.send_message(message)
        elif kind == "syslog":
            address = (target["host"], int(target.get("port", 514)))
            lines = [syslog_line(m, hostname=target.get("hostname") or socket.gethostname(), at=datetime.now(UTC)) for m in body["messages"]]
            if target.get("protocol", "udp") == "tcp":
                with socket.create_connection(address, timeout=timeout) as sock:
                    sock.sendall(b"".join(str(len(line)).encode() + b" " + line for line in lines))  # RFC 6587 octet counting
            else:
                with socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    for line in lines:
                        sock.sendto(line, address)
        else:
            raise DeliveryError(f"unknown receiver kind {kind!r}")
    except (httpx.HTTPError, OSError, smtplib.SMTPException, ValueError) as exc:
        raise DeliveryError(f"{kind}: {exc}") from exc
