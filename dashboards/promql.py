"""Render the dashboard model (`dashboards.model`) to PromQL (MetricsQL-compatible), and the Grafana query type for it.

For VictoriaMetrics, which stores what egovmon writes through its InfluxDB write API
as metric `measurement_field` with the tags as labels (a string field becomes 0: only
numbers are kept), and answers PromQL/MetricsQL at `/api/v1/query(_range)`; any
Prometheus-compatible store holding the same names works too.

Time series panels are range queries (`[$__interval]` windows per step, `rate` over
`$__rate_interval`); tables and stats are instant queries over the dashboard's range
(`[$__range]`). Every field is combined across the series of its legend group
(`max by (host) (...)`), so both sides of a ratio carry the same labels and match.
Variables use Grafana's `label_values(selector, label)`; annotations count the event
points per label set, one step per minute.
"""

from __future__ import annotations

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants

from core.jsontypes import JsonObject
from dashboards.model import (
    AnnotationSpec,
    Arith,
    Expr,
    Field,
    Nested,
    PanelSpec,
    VariableSpec,
)

OVER_TIME = {"last": "last_over_time", "mean": "avg_over_time", "max": "max_over_time", "sum": "sum_over_time", "rate": "rate"}
ANNOTATION_STEP = "1m"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(metric: str, scope: tuple[str, ...], field: Field | None = None) -> str:
    """`metric{tag=~"$tag",...}` with the variables of scope and the field's fixed matches."""
    matchers = [f'{name}=~"${name}"' for name in scope]
    for match in field.match if field else ():
        matchers.append(f"{match.tag}{'!=' if match.negate else '='}{_quote(match.value)}")
    return metric + ("{" + ",".join(matchers) + "}" if matchers else "")


def _by(tags: tuple[str, ...]) -> str:
    return f" by ({', '.join(tags)})" if tags else ""


def _field(field: Field, group: tuple[str, ...], *, instant: bool) -> str:
    window = "$__range" if instant else ("$__rate_interval" if field.reduce == "rate" else "$__interval")
    inner = f"{OVER_TIME[field.reduce]}({selector(field.metric, field.scope, field)}[{window}])"
    return f"{field.across}{_by(group)} ({inner})"


def render_expr(expr: Expr, group: tuple[str, ...], *, instant: bool) -> str:
    """One expression, its series grouped by `group` (the legend tags)."""
    if isinstance(expr, Field):
        return _field(expr, group, instant=instant)
    if isinstance(expr, Arith):
        right = _field(expr.right, group, instant=instant) if isinstance(expr.right, Field) else f"{expr.right:g}"
        return f"{_field(expr.left, group, instant=instant)} {expr.op} {right}"
    assert isinstance(expr, Nested)
    return f"{expr.outer}{_by(group)} ({render_expr(expr.inner, expr.inner_by, instant=instant)})"


def render_panel(panel: PanelSpec, lang: str = "zh") -> list[tuple[str, str]]:
    """One (query, legend format) per target: PromQL returns one value per series, so a column is a query."""
    instant = panel.kind != "timeseries"
    legend = " ".join(f"{{{{{tag}}}}}" for tag in panel.legend)
    out = []
    for target in panel.targets:
        alias = target.alias_zh if lang == "zh" else target.alias_en
        fmt = " ".join(part for part in (legend, alias if len(panel.targets) > 1 else "") if part)
        out.append((render_expr(target.expr, panel.legend, instant=instant), fmt))
    return out


def render_variable(variable: VariableSpec) -> str:
    """Grafana's `label_values(selector, label)`: it asks /api/v1/label/<label>/values?match[]=selector."""
    return f"label_values({selector(f'{variable.measurement}_{variable.field}', variable.scope)}, {variable.tag})"


def render_annotation(annotation: AnnotationSpec) -> str:
    """The events of one minute per label set, value 1 (Grafana's Prometheus annotations mark the steps valued 1)."""
    labels = tuple(dict.fromkeys((*annotation.scope, *annotation.tags)))
    metric = f"{annotation.measurement}_{annotation.text_field}"
    return f"count{_by(labels)} (last_over_time({selector(metric, annotation.scope)}[{ANNOTATION_STEP}]))"


class PromQLQuery(variants.Dataquery):
    """Grafana's Prometheus datasource query model: `expr`, `legendFormat`, range or instant, table or time series."""

    def __init__(self, ref_id: str, expr: str, *, datasource_uid: str, legend: str = "", instant: bool = False) -> None:
        self.ref_id = ref_id
        self.expr = expr
        self.datasource_uid = datasource_uid
        self.legend = legend
        self.instant = instant

    def to_json(self) -> JsonObject:
        return {
            "refId": self.ref_id, "expr": self.expr, "legendFormat": self.legend or "__auto", "editorMode": "code",
            "range": not self.instant, "instant": self.instant, "format": "table" if self.instant else "time_series",
            "datasource": {"type": "prometheus", "uid": self.datasource_uid},
        }  # fmt: skip


class PromQL(cogbuilder.Builder[PromQLQuery]):
    """Builder of a `PromQLQuery`, for `panel.with_target(...)`."""

    def __init__(self, expr: str, *, datasource_uid: str, ref_id: str = "A", legend: str = "", instant: bool = False) -> None:
        self._query = PromQLQuery(ref_id, expr, datasource_uid=datasource_uid, legend=legend, instant=instant)

    def build(self) -> PromQLQuery:
        return self._query
