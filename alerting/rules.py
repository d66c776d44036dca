"""Alert rules in YAML: what `egovmon rules check FILE` validates and the evaluator runs (pure).

```yaml
groups:
  - name: hosts
    rules:
      - alert: HostCpuHigh
        kind: threshold            # threshold, absence, finding
        measurement: host_memory
        field: available_bytes
        divide_by: total_bytes     # optional: compare the ratio
        op: "<"                    # > >= < <=
        threshold: 0.10
        clear: 0.15                # hysteresis: resolves only above 0.15 (default: the threshold)
        for: 5m                    # must hold this long before firing
        labels: {severity: warning, category: host, article: 第二十七条第（一）项}
        annotations:
          summary_zh: "主机 {host} 可用内存 {value:.0%}"
          summary_en: "Host {host} has {value:.0%} memory available"
```
`rate` compares the per-second change of `field` between the last two values
of a series (with `counter: true` a drop is a reset, as Prometheus' rate(),
so wraps and reboots do not make negative spikes). `absence` fires when a series (per host by default) stopped arriving for `for`
(monitoring coverage, Article 27(1)); `finding` fires for findings of
`rule_ids` (all when empty) at or above `min_severity`. Templates see the
series' tags, `value` and `subject`. Semantics follow Prometheus alerting rules
(`for`, labels, annotations) plus a separate clear threshold.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
SEVERITIES = ("info", "warning", "critical")


@functools.lru_cache(maxsize=4096)  # rules ask for their `for` on every evaluation of every series
def parse_duration(text: str | int | float) -> timedelta:
    """`30s`, `5m`, `1h`, `2d` (or seconds as a number). Raises ValueError."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    match = DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 1h")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def _check_template(text: str) -> str:
    try:
        list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"bad template {text!r}: {exc}") from exc
    return text


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    alert: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,127}$")]
    kind: Literal["threshold", "rate", "absence", "finding"] = "threshold"
    measurement: str | None = None
    field: str | None = None
    divide_by: str | None = Field(None, description="threshold: compare field / divide_by (e.g. available_bytes / total_bytes)")
    counter: bool = Field(False, description="rate: the field is a counter; a drop is a reset, not a negative rate")
    op: Literal[">", ">=", "<", "<="] = ">"
    threshold: float | None = None
    clear: float | None = None
    for_: Annotated[str, Field(alias="for")] = "0s"
    group_by: list[str] = Field(default_factory=lambda: ["host"], description="absence: the tags a series is identified by")
    rule_ids: list[str] = Field(default_factory=list, description="finding: which finding rules (all when empty)")
    min_severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[Annotated[str, Field(pattern=LABEL_NAME)], str] = Field(default_factory=dict)
    annotations: dict[Annotated[str, Field(pattern=LABEL_NAME)], str] = Field(default_factory=dict)

    @field_validator("for_")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("annotations")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        return {k: _check_template(v) for k, v in value.items()}

    @model_validator(mode="after")
    def _complete(self) -> Rule:
        if self.kind in ("threshold", "rate", "absence") and not self.measurement:
            raise ValueError(f"{self.kind} rule needs measurement")
        if self.kind in ("threshold", "rate"):
            self._check_threshold()
        if self.labels.get("severity", "warning") not in SEVERITIES:
            raise ValueError(f"labels.severity must be one of {', '.join(SEVERITIES)}")
        return self

    def _check_threshold(self) -> None:
        """A threshold or rate rule names its field and threshold, and its clear value is not on the firing side."""
        if self.field is None or self.threshold is None:
            raise ValueError("threshold rule needs field and threshold")
        clear = self.threshold if self.clear is None else self.clear
        fires_above = self.op in (">", ">=")
        if (fires_above and clear > self.threshold) or (not fires_above and clear < self.threshold):
            raise ValueError(f"clear {clear} is on the firing side of threshold {self.threshold}")

    @property
    def hold(self) -> timedelta:
        return parse_duration(self.for_)

    @property
    def clear_value(self) -> float | None:
        return self.threshold if self.clear is None else self.clear


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    rules: list[Rule]


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    groups: list[Group]

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        names = [r.alert for g in self.groups for r in g.rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate alert names: {', '.join(duplicates)}")
        return self

    def rules(self) -> list[Rule]:
        return [r for g in self.groups for r in g.rules]


class RulesError(ValueError):
    """A rule file that does not load; `problems` lists each as `where: what`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def load_rules(text: str) -> RuleFile:
    """Parse and validate a rule file. Raises RulesError listing every problem (like `promtool check rules`)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError([f"yaml: {exc}"]) from exc
    try:
        return RuleFile.model_validate(data)
    except ValidationError as exc:
        raise RulesError([f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]) from exc


class _Keep(dict):  # type: ignore[type-arg]
    """Template values where an unknown name renders as itself."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render(template: str, values: Mapping[str, object]) -> str:
    """Fill a template; unknown names stay as `{name}` instead of failing (a template that cannot be filled
    at all, e.g. with positional fields, is returned as it is)."""
    try:
        return template.format_map(_Keep(values))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return template
