"""Notifications: what each receiver kind gets (pure builders) and how it is delivered (thin shells).

Kinds: `webhook` (the Alertmanager webhook payload, version 4, that Alertmanager
itself sends out, plus egovmon's Chinese and English texts), `alertmanager`
(postable alerts for an Alertmanager's own v2 API, `POST /api/v2/alerts`:
https://github.com/prometheus/alertmanager/blob/v0.25.0/api/v2/openapi.yaml),
`dingtalk` (robot, markdown,
signed: https://open.dingtalk.com/document/robots/customize-robot-security-settings),
`wecom` (group robot, markdown), `smtp` (e-mail) and `syslog` (RFC 5424 over
UDP, or TCP with RFC 6587 octet counting, for the SIEM). A message is built
once when it is queued (the outbox stores it), so a retry sends the same bytes.

Delivery sorts refusals in two: a permanent one (an HTTP 4xx other than 408 and
429: the receiver will answer the same to the same bytes) raises
`PermanentDeliveryError` and is not retried; anything else raises `DeliveryError`
and is retried with backoff.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
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

from core.settings import ReceiverSettings

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


class PermanentDeliveryError(DeliveryError):
    """The receiver refused the message for good (HTTP 4xx other than 408/429): retrying sends the same refused bytes."""


ALERTMANAGER_PATH = "/api/v2/alerts"
SMTP_PORT = 25
SYSLOG_PORT = 514
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # Prometheus label names; Alertmanager refuses others with 400
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time: "not resolved" in the webhook payload


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
        return {"alerts": [postable_alert(a, external_url) for a in alerts]}
    if kind == "webhook":
        common = {k: v for k, v in alerts[0].labels.items() if all(a.labels.get(k) == v for a in alerts)} if alerts else {}
        return {
            "version": "4", "groupKey": json.dumps(dict(sorted(group_labels.items())), ensure_ascii=False),
            "truncatedAlerts": 0, "status": "firing" if firing else "resolved", "receiver": receiver,
            "groupLabels": dict(group_labels), "commonLabels": common, "commonAnnotations": {}, "externalURL": external_url,
            # egovmon's additions (a v4 consumer ignores them): the group, the texts in both languages
            "group": dict(group_labels), "title": title, "text": "\n".join(text_lines(alerts, language)),
            "alerts": [
                {"status": a.status, "labels": dict(a.labels), "annotations": dict(a.annotations),
                 "startsAt": a.starts_at.isoformat(), "endsAt": (a.ends_at or _ZERO_TIME).isoformat(),
                 "generatorURL": console_url(external_url, a.fingerprint), "fingerprint": a.fingerprint,
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


def console_url(external_url: str, fingerprint: str) -> str:
    """The alert's page in the console (`external_url` is the console's base URL), or "" when no URL is configured."""
    return f"{external_url.rstrip('/')}/ui/alerts#{fingerprint}" if external_url else ""


def postable_alert(alert: AlertView, external_url: str) -> dict[str, Any]:
    """One alert as Alertmanager's v2 API takes it (`PostableAlert`).

    Labels keep only valid Prometheus label names with non-empty values (Alertmanager answers 400 to others;
    an empty value means "no label" there). A firing alert has no `endsAt`: Alertmanager ends it after its
    `resolve_timeout` unless posted again, which the engine does every `resend_seconds`; a resolved one carries
    its `endsAt`. Annotations carry the summary in Chinese and English (`summary_zh`, `summary_en`, `summary`).
    """
    labels = {k: str(v) for k, v in alert.labels.items() if _LABEL_NAME.match(k) and str(v) != ""}
    annotations = {k: str(v) for k, v in alert.annotations.items() if _LABEL_NAME.match(k) and str(v) != ""}
    annotations.update({"summary_zh": summary(alert, "zh"), "summary_en": summary(alert, "en")})
    annotations.setdefault("summary", annotations["summary_zh"])
    if alert.lacking_data:
        annotations["lacking_data"] = "true"
    posted: dict[str, Any] = {"labels": labels, "annotations": annotations, "startsAt": alert.starts_at.isoformat()}
    if alert.status == "resolved":
        posted["endsAt"] = (alert.ends_at or alert.starts_at).isoformat()
    url = console_url(external_url, alert.fingerprint)
    if url:
        posted["generatorURL"] = url
    return posted


def alertmanager_url(url: str) -> str:
    """The receiver's URL as the alerts endpoint: a base URL (`http://am:9093`) gets `/api/v2/alerts` appended."""
    return url if url.rstrip("/").endswith(ALERTMANAGER_PATH) else url.rstrip("/") + ALERTMANAGER_PATH


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


def shown_url(url: str) -> str:
    """The URL without credentials and query (a robot's access_token, a user:password), for errors that users see."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_http(kind: str, url: str, response: httpx.Response) -> None:
    """Raises PermanentDeliveryError for a 4xx other than 408/429, DeliveryError for any other non-2xx answer."""
    if response.status_code < 300:
        return
    message = f"{kind} {shown_url(url)} answered {response.status_code}: {response.text[:200]}"
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise PermanentDeliveryError(message)
    raise DeliveryError(message)


def deliver(receiver: ReceiverSettings, body: Mapping[str, Any], *, timeout: float = 10.0) -> None:
    """Send one built message to `receiver` (its kind decides how). SMTP defaults to port 25, syslog to 514.

    Raises:
        PermanentDeliveryError: the receiver refused the message for good.
        DeliveryError: it did not take the message this time.
    """
    kind = receiver.kind
    try:
        if kind in ("webhook", "alertmanager", "dingtalk", "wecom"):
            url = str(receiver.url)
            if kind == "dingtalk":
                url = dingtalk_url(url, receiver.secret.get_secret_value() if receiver.secret else None)
            if kind == "alertmanager":
                response = httpx.post(alertmanager_url(url), json=list(body["alerts"]), timeout=timeout)
            else:
                response = httpx.post(url, json=body, timeout=timeout)
            _check_http(kind, str(receiver.url), response)
            if kind in ("dingtalk", "wecom"):
                answer = response.json() if response.content else {}
                if not isinstance(answer, dict) or answer.get("errcode", 0) != 0:
                    raise DeliveryError(f"{kind} refused the message: {str(answer)[:200]}")
        elif kind == "smtp":
            message = EmailMessage()
            message["Subject"], message["From"], message["To"] = body["subject"], receiver.sender, ", ".join(receiver.to)
            message.set_content(body["body"], charset="utf-8")
            with smtplib.SMTP(str(receiver.host), receiver.port or SMTP_PORT, timeout=timeout) as smtp:
                if receiver.starttls:
                    smtp.starttls()
                if receiver.username:
                    smtp.login(receiver.username, receiver.password.get_secret_value() if receiver.password else "")
                smtp.send_message(message)
        elif kind == "syslog":
            address = (str(receiver.host), receiver.port or SYSLOG_PORT)
            lines = [syslog_line(m, hostname=receiver.hostname or socket.gethostname(), at=datetime.now(UTC)) for m in body["messages"]]
            if receiver.protocol == "tcp":
                with socket.create_connection(address, timeout=timeout) as sock:
                    sock.sendall(b"".join(str(len(line)).encode() + b" " + line for line in lines))  # RFC 6587 octet counting
            else:
                with socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    for line in lines:
                        sock.sendto(line, address)
        else:
            raise PermanentDeliveryError(f"unknown receiver kind {kind!r}")
    except (httpx.HTTPError, OSError, smtplib.SMTPException, ValueError, KeyError, TypeError) as exc:
        raise DeliveryError(f"{kind}: {type(exc).__name__}: {exc}") from exc
