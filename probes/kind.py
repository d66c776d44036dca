"""What a probe kind declares: its check settings, its runner and its reason texts (`ProbeKind`).

Each kind is one module in `probes.kinds` holding a `KIND = ProbeKind(...)`; the
catalogue (`probes.kinds.catalogue`) finds them, the settings schema makes a
discriminated union of their check models on `kind` (`probes.settings`), the
collector runs a check through its kind's runner and `reason_text` shows the
kind's own reason codes. Nothing is registered at import: the catalogue is
built when it is first asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from probes.http import HttpProber
from probes.result import ProbeResult
from probes.safety import AllowedRanges


class NoExpect(BaseModel):
    """Expectations of a kind that has none to set (its verdict is fixed: connected, answered)."""

    model_config = ConfigDict(extra="forbid")


class CheckSettings(BaseModel):
    """One scheduled check; each kind's model adds `kind: Literal["<kind>"]` and its own `expect` model.

    `needs` names `expect` keys that must be set; `needs_target` is False for a
    kind that ignores the target (dhcp).
    """

    model_config = ConfigDict(extra="forbid")

    needs: ClassVar[tuple[str, ...]] = ()
    needs_target: ClassVar[bool] = True

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", description="Check name, the `check` tag")
    kind: str
    target: str = Field("", max_length=2048)
    interval_seconds: float = Field(60, gt=0, le=86_400)
    timeout_seconds: float = Field(10, gt=0, le=600)
    expect: BaseModel = Field(default_factory=NoExpect)

    @model_validator(mode="after")
    def _needs(self) -> Self:
        for key in self.needs:
            if not getattr(self.expect, key):
                raise ValueError(f"probe check {self.name}: kind {self.kind} needs expect.{key}")
        if self.needs_target and not self.target:
            raise ValueError(f"probe check {self.name}: kind {self.kind} needs a target")
        return self


@dataclass
class RunContext:
    """What a runner gets besides its check: the ranges, the shared HTTP prober, the ARP memory."""

    allowed: AllowedRanges
    rate: float
    http: HttpProber
    known_arp: dict[str, dict[str, str]] = field(default_factory=dict)


C = TypeVar("C", bound=CheckSettings)


@dataclass(frozen=True, slots=True)
class ProbeKind(Generic[C]):
    """One kind of check, as data.

    `check` is its settings model (a `CheckSettings` with `kind: Literal[name]`),
    `run` turns one validated check into a `ProbeResult`, `reasons` maps the
    reason codes only this kind produces to (Simplified Chinese, English) texts,
    `scan` marks kinds that sweep ranges (they only run inside allowed ranges,
    also from the command line).
    """

    name: str
    check: type[C]
    run: Callable[[C, RunContext], Awaitable[ProbeResult]]
    reasons: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    scan: bool = False
    summary: tuple[str, str] = ("", "")  # what the kind checks, (zh, en)

    def parse(self, data: Mapping[str, object]) -> C:
        """A check of this kind from a mapping (`kind` is filled in). Raises pydantic.ValidationError."""
        return self.check.model_validate({**data, "kind": self.name})
