"""Channel `webhook`: the Alertmanager webhook payload (version 4) that Alertmanager itself sends out, plus
egovmon's Chinese and English texts (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Literal

import httpx
from pydantic import Field

from alerting.channel import Channel, ReceiverBase
from alerting.message import AlertView, check_http, console_url, summary, text_lines, title
from core.jsontypes import JsonObject, JsonValue

_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time: "not resolved" in the webhook payload


class WebhookReceiver(ReceiverBase):
    """A URL that takes the webhook payload by POST."""

    needs: ClassVar[tuple[str, ...]] = ("url",)

    kind: Literal["webhook"]
    url: str | None = Field(None, description="The URL to POST to")


def build(receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], language: str,
          external_url: str) -> JsonObject:
    firing = any(a.status == "firing" for a in alerts)
    common: JsonObject = {k: v for k, v in alerts[0].labels.items() if all(a.labels.get(k) == v for a in alerts)} if alerts else {}
    return {
        "version": "4", "groupKey": json.dumps(dict(sorted(group_labels.items())), ensure_ascii=False),
        "truncatedAlerts": 0, "status": "firing" if firing else "resolved", "receiver": receiver,
        "groupLabels": dict(group_labels), "commonLabels": common, "commonAnnotations": {}, "externalURL": external_url,
        # egovmon's additions (a v4 consumer ignores them): the group, the texts in both languages
        "group": dict(group_labels), "title": title(alerts, language), "text": "\n".join(text_lines(alerts, language)),
        "alerts": [
            {"status": a.status, "labels": dict(a.labels), "annotations": dict(a.annotations),
             "startsAt": a.starts_at.isoformat(), "endsAt": (a.ends_at or _ZERO_TIME).isoformat(),
             "generatorURL": console_url(external_url, a.fingerprint), "fingerprint": a.fingerprint,
             "summary_zh": summary(a, "zh"), "summary_en": summary(a, "en"), "lacking_data": a.lacking_data,
             "starts_at": a.starts_at.isoformat(), "ends_at": a.ends_at.isoformat() if a.ends_at else None}
            for a in alerts
        ],
    }  # fmt: skip


def send(receiver: WebhookReceiver, body: Mapping[str, JsonValue], timeout: float) -> None:
    url = str(receiver.url)
    check_http("webhook", url, httpx.post(url, json=body, timeout=timeout))


CHANNEL = Channel("webhook", WebhookReceiver, build, send)
