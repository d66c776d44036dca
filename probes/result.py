"""The outcome of one check, pure: `ProbeResult`, its reason codes, and its samples.

Metric names follow prometheus-blackbox-exporter where it has one: measurement
`probe` with fields `success`, `duration_seconds`, `http_status_code`,
`tls_cert_expiry_seconds`, ... becomes `probe_success`, `probe_duration_seconds`
(the agent's /metrics and VictoriaMetrics join measurement and field with `_`);
per-phase timings become `probe_http_duration_seconds{phase="connect"}` (HTTP) and
`probe_icmp_duration_seconds{phase="rtt"}` (ICMP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from core.jsontypes import JsonObject, JsonValue
from core.models import AttributeValue, Observation, Sample

OK: Final = "ok"

# reason code -> (Simplified Chinese, English): the codes any kind can produce (probes/net.py's `classify`, the
# collector's errors). A kind's own codes are in its module in probes/kinds/ (`ProbeKind.reasons`).
COMMON_REASONS: Final[dict[str, tuple[str, str]]] = {
    OK: ("正常", "ok"),
    "timeout": ("超时未响应", "timed out"),
    "connection_refused": ("连接被拒绝(RST)", "connection refused (RST)"),
    "unreachable": ("目标不可达", "target unreachable"),
    "resolve_failed": ("域名解析失败", "name resolution failed"),
    "network_error": ("网络错误", "network error"),
    "tls_handshake_failed": ("TLS 握手失败", "TLS handshake failed"),
    "cert_invalid": ("证书无效(链校验失败)", "certificate invalid (chain verification failed)"),
    "protocol_error": ("协议错误(响应格式异常)", "protocol error (malformed response)"),
    "no_cap_net_raw": ("缺少 CAP_NET_RAW 权限,无法使用原始套接字",
                       "raw sockets need CAP_NET_RAW, which this process does not have"),
    "out_of_range": ("目标不在允许探测的地址范围内", "target is outside the allowed ranges"),
    "interface_error": ("网络接口不可用", "network interface unusable"),
    "error": ("探测出错", "probe error"),
}


def reason_text(code: str, language: str = "zh") -> str:
    """The reason's text in `language` ("zh" or "en"); an unknown code is shown as itself."""
    from probes.kinds import reasons  # noqa: PLC0415 - the kinds' modules import this one

    zh, en = reasons().get(code, (code, code))
    return zh if language == "zh" else en


@dataclass(frozen=True, slots=True)
class Finding:
    """A fact a probe found (an address, a DHCP server, a website), before it becomes an Observation."""

    kind: str
    subject: str
    attributes: Mapping[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One check's verdict: up or down with a reason code and an English detail, and its numbers.

    `fields` are extra fields of measurement `probe` (`http_status_code`, ...),
    `phases` the HTTP phase durations in seconds, `findings` discovery facts.
    """

    kind: str
    target: str
    success: bool
    reason: str = OK
    detail: str = ""
    duration_seconds: float = 0.0
    fields: Mapping[str, float | bool] = field(default_factory=dict)
    phases: Mapping[str, float] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    @property
    def state(self) -> str:
        return "up" if self.success else "down"

    def to_json(self, language: str = "zh") -> JsonObject:
        """A JSON-ready dict (the CLI's --json document)."""
        return {
            "kind": self.kind, "target": self.target, "success": self.success, "state": self.state,
            "reason": self.reason, "reason_text": reason_text(self.reason, language), "detail": self.detail,
            "duration_seconds": round(self.duration_seconds, 6), "fields": dict(self.fields),
            "phases": {k: round(v, 6) for k, v in self.phases.items()},
            "findings": [{"kind": f.kind, "subject": f.subject, "attributes": _json_object(f.attributes)}
                         for f in self.findings],
        }


def _json_object(attributes: Mapping[str, AttributeValue]) -> JsonObject:
    """A finding's attributes as a JSON object (each list copied, typed as a JSON list)."""
    return {name: list[JsonValue](value) if isinstance(value, list) else value for name, value in attributes.items()}


def failed(kind: str, target: str, reason: str, detail: str, duration_seconds: float = 0.0,
           **fields: float | bool) -> ProbeResult:
    """A down result."""
    return ProbeResult(kind, target, False, reason, detail, duration_seconds, fields)


def samples(result: ProbeResult, check: str, observed_at: datetime) -> tuple[Sample, ...]:
    """The samples of one result: `probe` (success, duration, fields) and `probe_<kind>` per phase."""
    tags = {"check": check, "kind": result.kind, "target": result.target[:255]}
    main = Sample(measurement="probe", tags=tags, timestamp=observed_at, fields={
        "success": int(result.success), "duration_seconds": float(result.duration_seconds), **result.fields,
    })
    phases = tuple(
        Sample(measurement=f"probe_{result.kind}", tags={**tags, "phase": phase}, fields={"duration_seconds": float(seconds)},
               timestamp=observed_at)
        for phase, seconds in result.phases.items()
    )
    return (main, *phases)


def observations(result: ProbeResult, observed_at: datetime) -> tuple[Observation, ...]:
    """The findings of one result as Observations from source `probe.<kind>`."""
    return tuple(
        Observation(kind=f.kind, subject=f.subject[:256], attributes=dict(f.attributes),
                    source=f"probe.{result.kind}", observed_at=observed_at)
        for f in result.findings
    )


@dataclass(frozen=True, slots=True)
class Transition:
    """A check changed state (or was seen for the first time: `previous` is "unknown")."""

    check: str
    previous: str
    current: str
    reason: str
    detail: str


class StateTracker:
    """Remembers each check's last state and reports changes; pure (no clock, no I/O)."""

    def __init__(self) -> None:
        self._states: dict[str, tuple[str, str]] = {}

    def update(self, check: str, result: ProbeResult) -> Transition | None:
        """The transition this result makes, or None when state and reason did not change."""
        previous = self._states.get(check)
        current = (result.state, result.reason)
        self._states[check] = current
        if previous == current:
            return None
        return Transition(check, previous[0] if previous else "unknown", result.state, result.reason, result.detail)


def transition_observation(transition: Transition, observed_at: datetime) -> Observation:
    """A state change as an Observation (kind `probe_state`) that alerting and the console use."""
    return Observation(kind="probe_state", subject=transition.check[:256], source="probe", observed_at=observed_at,
                       attributes={"state": transition.current, "previous": transition.previous,
                                   "reason": transition.reason, "reason_text": reason_text(transition.reason),
                                   "detail": transition.detail[:1024]})
