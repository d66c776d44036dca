"""Channel `dingtalk`: a DingTalk group robot, markdown, signed
(https://open.dingtalk.com/document/robots/customize-robot-security-settings)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import httpx
from pydantic import Field, SecretStr

from alerting.channel import Channel, ReceiverBase
from alerting.message import AlertView, check_http, check_robot_answer, text_lines, title
from core.jsontypes import JsonObject, JsonValue


class DingtalkReceiver(ReceiverBase):
    """A DingTalk robot's webhook URL (with its access_token) and signing secret."""

    needs: ClassVar[tuple[str, ...]] = ("url",)

    kind: Literal["dingtalk"]
    url: str | None = Field(None, description="The URL to POST to")
    secret: SecretStr | None = Field(None, description="The robot's signing secret")


def dingtalk_url(url: str, secret: str | None, now_ms: int | None = None) -> str:
    """The robot URL with `timestamp` and `sign` (HMAC-SHA256 of "timestamp\\nsecret", base64, URL-encoded)."""
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest))
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def build(receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], language: str,
          external_url: str) -> JsonObject:
    heading = title(alerts, language)
    text = "\n\n".join(f"- {line}" for line in text_lines(alerts, language))
    return {"msgtype": "markdown", "markdown": {"title": heading[:64], "text": f"### {heading}\n\n{text}"}}


def send(receiver: DingtalkReceiver, body: Mapping[str, JsonValue], timeout: float) -> None:
    url = dingtalk_url(str(receiver.url), receiver.secret.get_secret_value() if receiver.secret else None)
    response = httpx.post(url, json=body, timeout=timeout)
    check_http("dingtalk", str(receiver.url), response)
    check_robot_answer("dingtalk", response)


CHANNEL = Channel("dingtalk", DingtalkReceiver, build, send)
