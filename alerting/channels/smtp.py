"""Channel `smtp`: e-mail (RFC 5321), optionally with STARTTLS (RFC 3207) and login."""

from __future__ import annotations

import smtplib
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from alerting.channel import Channel, ReceiverBase
from alerting.message import AlertView, text_lines, title
from core.jsontypes import JsonObject, JsonValue

SMTP_PORT = 25


class SmtpReceiver(ReceiverBase):
    """A mail server and the addresses of the message."""

    needs: ClassVar[tuple[str, ...]] = ("host", "sender", "to")

    kind: Literal["smtp"]
    host: str | None = Field(None, description="Server address")
    port: int | None = Field(None, ge=1, le=65535, description="Server port (default 25)")
    sender: str | None = Field(None, description="From address")
    to: list[str] = Field(default_factory=list, description="Recipients")
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None


def build(receiver: str, group_labels: Mapping[str, str], alerts: Sequence[AlertView], language: str,
          external_url: str) -> JsonObject:
    return {"subject": title(alerts, language)[:200], "body": "\n".join(text_lines(alerts, language)) + "\n"}


def send(receiver: SmtpReceiver, body: Mapping[str, JsonValue], timeout: float) -> None:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = body["subject"], receiver.sender, ", ".join(receiver.to)
    message.set_content(body["body"], charset="utf-8")
    with smtplib.SMTP(str(receiver.host), receiver.port or SMTP_PORT, timeout=timeout) as smtp:
        if receiver.starttls:
            smtp.starttls()
        if receiver.username:
            smtp.login(receiver.username, receiver.password.get_secret_value() if receiver.password else "")
        smtp.send_message(message)


CHANNEL = Channel("smtp", SmtpReceiver, build, send)
