"""What every notification channel shares: the alert as a message sees it, the texts, the delivery errors."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx


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


def title(alerts: Sequence[AlertView], language: str) -> str:
    """The message's title: the product's mark and the first alert's line."""
    return ("【egovmon】" if language == "zh" else "[egovmon] ") + (text_lines(alerts, language)[0] if alerts else "")


def console_url(external_url: str, fingerprint: str) -> str:
    """The alert's page in the console (`external_url` is the console's base URL), or "" when no URL is configured."""
    return f"{external_url.rstrip('/')}/ui/alerts#{fingerprint}" if external_url else ""


def shown_url(url: str) -> str:
    """The URL without credentials and query (a robot's access_token, a user:password), for errors that users see."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def check_http(kind: str, url: str, response: httpx.Response) -> None:
    """Raises PermanentDeliveryError for a 4xx other than 408/429, DeliveryError for any other non-2xx answer."""
    if response.status_code < 300:
        return
    message = f"{kind} {shown_url(url)} answered {response.status_code}: {response.text[:200]}"
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise PermanentDeliveryError(message)
    raise DeliveryError(message)


def check_robot_answer(kind: str, response: httpx.Response) -> None:
    """DingTalk and WeCom robots answer 200 with `{"errcode": N}`: anything but 0 is a refusal (retried)."""
    answer = response.json() if response.content else {}
    if not isinstance(answer, dict) or answer.get("errcode", 0) != 0:
        raise DeliveryError(f"{kind} refused the message: {str(answer)[:200]}")
