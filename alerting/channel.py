"""What a notification channel declares: its receiver settings, its message builder and its sender (`Channel`).

Each channel is one module in `alerting.channels` holding a `CHANNEL = Channel(...)`;
the catalogue (`alerting.channels.catalogue`) finds them, the configuration schema
makes a discriminated union of their receiver models on `kind`
(`alerting.receivers`), and `alerting.notify.build` / `deliver` hand a message to
its channel. Nothing is registered at import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alerting.message import AlertView
from core.jsontypes import JsonObject, JsonValue


class ReceiverBase(BaseModel):
    """Where notifications go; each channel's model adds `kind: Literal["<kind>"]` and its own fields.

    `needs` names fields that must be set (the message says which are missing).
    """

    model_config = ConfigDict(extra="forbid")

    needs: ClassVar[tuple[str, ...]] = ()

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    kind: str
    language: Literal["zh", "en"] = "zh"

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = [name for name in self.needs if not getattr(self, name)]
        if missing:
            raise ValueError(f"receiver {self.name} ({self.kind}) needs {', '.join(missing)}")
        return self


R = TypeVar("R", bound=ReceiverBase)

# (receiver name, group labels, alerts, language, external URL) -> the body stored in the outbox
Builder = Callable[[str, Mapping[str, str], Sequence[AlertView], str, str], JsonObject]


@dataclass(frozen=True, slots=True)
class Channel(Generic[R]):
    """One kind of notification channel, as data.

    `build` makes the message once, when it is queued (the outbox stores it, so a
    retry sends the same bytes); `send` delivers a built message and raises
    `DeliveryError` (retried) or `PermanentDeliveryError` (not retried).
    """

    name: str
    receiver: type[R]
    build: Builder
    send: Callable[[R, Mapping[str, JsonValue], float], None]
