"""The `probes:` section of the agent's settings; a check is a discriminated union of the kinds' models on `kind`.

The union is made from the catalogue (`probes.kinds`), so the published JSON
schema lists each kind with only its own `expect` keys. `agent.settings`
takes `ProbesSettings` from here, as it takes each collector's section from
beside its collector: each kind's settings live with its runner.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from probes.kinds import catalogue

# One check: the model of the kind its `kind` names (an unknown kind is refused with the list of known ones).
ProbeCheck: Any = Annotated[Union[tuple(kind.check for kind in catalogue().values())],
                            Field(discriminator="kind")]


class ProbesSettings(BaseModel):
    """Active checks and discovery scans; they only go to addresses inside `allowed_ranges`."""

    model_config = ConfigDict(extra="forbid")

    allowed_ranges: list[str] = Field(default_factory=list, description="Prefixes probes and scans may touch (empty: none)")
    rate_limit_per_second: float = Field(50, gt=0, le=10_000, description="Check starts and scan packets per second")
    max_concurrency: int = Field(64, ge=1, le=4096, description="Checks running at once")
    checks: list[ProbeCheck] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid(self) -> ProbesSettings:
        for text in self.allowed_ranges:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                raise ValueError(f"probes.allowed_ranges: {text!r} is not a prefix") from exc
        names = [check.name for check in self.checks]
        if len(names) != len(set(names)):
            raise ValueError("probes.checks: check names must be unique")
        return self
