"""Channel `wecom`: a WeCom (企业微信) group robot, markdown (https://developer.work.weixin.qq.com/document/path/91770)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import httpx
from pydantic import Field

from alerting.channel import Channel, ReceiverBase
from alerting.message import AlertView, check_http, check_robot_answer, text_lines, title
from core.jsontypes import JsonObject, JsonValue


class WecomReceiver(ReceiverBase):
    """A WeCom robot's webhook URL (with its key)."""

    needs: ClassVar[tuple[str, ...]] = ("url",)

    kind: Literal["wecom"]
    url: str | None = Field(None, description="The URL to POST to")


def build(receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], language: str,
          external_url: str) -> JsonObject:
    lines = "\n".join(f"> {line}" for line in text_lines(alerts, language))
    return {"msgtype": "markdown", "markdown": {"content": f"**{title(alerts, language)}**\n" + lines}}


def send(receiver: WecomReceiver, body: Mapping[str, JsonValue], timeout: float) -> None:
    url = str(receiver.url)
    response = httpx.post(url, json=body, timeout=timeout)
    check_http("wecom", url, response)
    check_robot_answer("wecom", response)


CHANNEL = Channel("wecom", WecomReceiver, build, send)
