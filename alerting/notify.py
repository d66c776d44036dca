"""Notifications: the message of one group of alerts for a receiver (built once, when queued) and its delivery.

Each channel is a module in alerting/channels/ (`webhook`, the Alertmanager
webhook payload version 4 plus egovmon's Chinese and English texts;
`alertmanager`, postable alerts for Alertmanager's own v2 API; `dingtalk`, a
signed robot; `wecom`; `smtp`; `syslog`, RFC 5424 for the SIEM); `build` and
`deliver` hand the work to the channel the receiver's kind names. A message is
built once when it is queued (the outbox stores it), so a retry sends the same
bytes.

Delivery sorts refusals in two: a permanent one (an HTTP 4xx other than 408 and
429: the receiver will answer the same to the same bytes) raises
`PermanentDeliveryError` and is not retried; anything else raises `DeliveryError`
and is retried with backoff.
"""

from __future__ import annotations

import smtplib
from collections.abc import Mapping, Sequence

import httpx

from alerting.channel import ReceiverBase
from alerting.channels import catalogue
from alerting.message import (
    AlertView as AlertView,
)
from alerting.message import (
    DeliveryError as DeliveryError,
)
from alerting.message import (
    PermanentDeliveryError as PermanentDeliveryError,
)
from alerting.message import (
    console_url as console_url,
)
from alerting.message import (
    shown_url as shown_url,
)
from alerting.message import (
    summary as summary,
)
from alerting.message import (
    text_lines as text_lines,
)
from core.jsontypes import JsonObject, JsonValue


def build(kind: str, receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], *,
          language: str = "zh", external_url: str = "") -> JsonObject:
    """The body to send for one group of alerts (JSON for HTTP kinds; subject/body for smtp; messages for syslog).

    Raises:
        ValueError: no channel of this kind.
    """
    channel = catalogue().get(kind)
    if channel is None:
        raise ValueError(f"unknown receiver kind {kind!r}")
    return channel.build(receiver, group_labels, alerts, language, external_url)


def deliver(receiver: ReceiverBase, body: Mapping[str, JsonValue], *, timeout: float = 10.0) -> None:
    """Send one built message to `receiver` through the channel of its kind.

    Raises:
        PermanentDeliveryError: the receiver refused the message for good, or its kind is unknown.
        DeliveryError: it did not take the message this time.
    """
    kind = receiver.kind
    channel = catalogue().get(kind)
    if channel is None:
        raise PermanentDeliveryError(f"unknown receiver kind {kind!r}")
    try:
        channel.send(receiver, body, timeout)
    except (httpx.HTTPError, OSError, smtplib.SMTPException, ValueError, KeyError, TypeError) as exc:
        raise DeliveryError(f"{kind}: {type(exc).__name__}: {exc}") from exc
