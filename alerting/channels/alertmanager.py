"""Channel `alertmanager`: postable alerts for an Alertmanager's own v2 API, `POST /api/v2/alerts`
(https://github.com/prometheus/alertmanager/blob/v0.25.0/api/v2/openapi.yaml)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import ClassVar, Literal

import httpx
from pydantic import Field

from alerting.channel import Channel, ReceiverBase
from alerting.message import AlertView, check_http, console_url, summary
from core.jsontypes import JsonObject, JsonValue

ALERTMANAGER_PATH = "/api/v2/alerts"
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")  # Prometheus label names; Alertmanager refuses others with 400


class AlertmanagerReceiver(ReceiverBase):
    """An Alertmanager (its base URL or its /api/v2/alerts URL)."""

    needs: ClassVar[tuple[str, ...]] = ("url",)

    kind: Literal["alertmanager"]
    url: str | None = Field(None, description="The URL to POST to")
    resend_seconds: float = Field(
        60, ge=5, le=3600,
        description="Firing alerts are posted again this often, well inside Alertmanager's resolve_timeout (5 m by default)",
    )


def postable_alert(alert: AlertView, external_url: str) -> JsonObject:
    """One alert as Alertmanager's v2 API takes it (`PostableAlert`).

    Labels keep only valid Prometheus label names with non-empty values (Alertmanager answers 400 to others;
    an empty value means "no label" there). A firing alert has no `endsAt`: Alertmanager ends it after its
    `resolve_timeout` unless posted again, which the engine does every `resend_seconds`; a resolved one carries
    its `endsAt`. Annotations carry the summary in Chinese and English (`summary_zh`, `summary_en`, `summary`).
    """
    labels = _label_set(alert.labels)
    annotations = _label_set(alert.annotations)
    annotations.update({"summary_zh": summary(alert, "zh"), "summary_en": summary(alert, "en")})
    annotations.setdefault("summary", annotations["summary_zh"])
    if alert.lacking_data:
        annotations["lacking_data"] = "true"
    posted: JsonObject = {"labels": labels, "annotations": annotations, "startsAt": alert.starts_at.isoformat()}
    if alert.status == "resolved":
        posted["endsAt"] = (alert.ends_at or alert.starts_at).isoformat()
    url = console_url(external_url, alert.fingerprint)
    if url:
        posted["generatorURL"] = url
    return posted


def _label_set(values: Mapping[str, object]) -> JsonObject:
    """The entries Alertmanager accepts as labels or annotations: valid label names with non-empty values, as text."""
    return {k: str(v) for k, v in values.items() if _LABEL_NAME.match(k) and str(v) != ""}


def alertmanager_url(url: str) -> str:
    """The receiver's URL as the alerts endpoint: a base URL (`http://am:9093`) gets `/api/v2/alerts` appended."""
    return url if url.rstrip("/").endswith(ALERTMANAGER_PATH) else url.rstrip("/") + ALERTMANAGER_PATH


def build(receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], language: str,
          external_url: str) -> JsonObject:
    return {"alerts": [postable_alert(a, external_url) for a in alerts]}


def send(receiver: AlertmanagerReceiver, body: Mapping[str, JsonValue], timeout: float) -> None:
    url = str(receiver.url)
    alerts = body["alerts"]
    if not isinstance(alerts, list):
        raise TypeError(f"an alertmanager body holds a list of alerts, not {type(alerts).__name__}")
    check_http("alertmanager", url, httpx.post(alertmanager_url(url), json=alerts, timeout=timeout))


CHANNEL = Channel("alertmanager", AlertmanagerReceiver, build, send)
