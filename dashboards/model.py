"""The query model every dashboard is declared in, once, and rendered to InfluxQL and to PromQL/MetricsQL.

A panel says *what* it shows (a field of a measurement, reduced over time, combined
across the series of one legend group, maybe in a ratio or a nested count), not how
one query language spells it. `dashboards.influxql` and `dashboards.promql` render the
same declaration for InfluxDB (1.x, and 2.x/3.x through their InfluxQL endpoint) and for
VictoriaMetrics (Prometheus-compatible). The names follow how egovmon writes history:
InfluxDB keeps `measurement` with `field`s and tags; VictoriaMetrics' InfluxDB write API
turns each field into the metric `measurement_field` and tags into labels.

Grafana template variables filter queries by tag: a query's `scope` names the
variables (`agency`, `site`, `host`, `device`) that apply, each matching the tag of the
same name. Do not use this model for ad-hoc queries: it covers what the dashboards need
(last/mean/max/sum/rate, ratios, one level of nesting), nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Reduce = Literal["last", "mean", "max", "sum", "rate"]
Across = Literal["max", "sum", "avg", "min"]
PanelKind = Literal["timeseries", "stat", "table"]


@dataclass(frozen=True, slots=True)
class Match:
    """A fixed tag condition: the tag equals `value` (or differs from it with `negate`)."""

    tag: str
    value: str
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Field:
    """One field of one measurement reduced over time, then combined across the series of one group.

    reduce: per time bucket (time series) or over the dashboard's range (tables, stats):
        `last`, `mean`, `max`, `sum`, or `rate` (per-second increase of a counter; a reset is
        not a negative rate).
    across: how several series of one legend group combine (InfluxQL does this inside its
        aggregate; PromQL needs `sum by`/`max by`/...): `max`, `sum`, `avg`, `min`.
    scope: the template variables filtering this query, each on the tag of its name.
    """

    measurement: str
    name: str
    reduce: Reduce = "last"
    across: Across = "max"
    scope: tuple[str, ...] = ("agency",)
    match: tuple[Match, ...] = ()

    @property
    def metric(self) -> str:
        """The metric name VictoriaMetrics gives this field: `measurement_field`."""
        return f"{self.measurement}_{self.name}"


@dataclass(frozen=True, slots=True)
class Arith:
    """`left op right`: two fields of the same measurement and filters, or a field and a number."""

    left: Field
    op: Literal["+", "-", "*", "/"]
    right: Field | float


@dataclass(frozen=True, slots=True)
class Nested:
    """An aggregate over groups: `outer` (count or sum) of `inner` computed per `inner_by` group, e.g. hosts per site."""

    outer: Literal["count", "sum"]
    inner: Field | Arith
    inner_by: tuple[str, ...]


Expr = Field | Arith | Nested


@dataclass(frozen=True, slots=True)
class Target:
    """One value a panel shows; `alias_zh`/`alias_en` name its column when a panel shows several."""

    expr: Expr
    alias_zh: str = ""
    alias_en: str = ""


@dataclass(frozen=True, slots=True)
class PanelSpec:
    """One panel: its titles, what it shows, and the tags each series is grouped by and labelled with (the legend)."""

    title_zh: str
    title_en: str
    targets: tuple[Target, ...]
    legend: tuple[str, ...]
    kind: PanelKind = "timeseries"
    unit: str = ""


@dataclass(frozen=True, slots=True)
class VariableSpec:
    """A template variable: the values of `tag` among the series of `measurement`.`field`, filtered by `scope`."""

    name: str
    label_zh: str
    label_en: str
    measurement: str
    field: str
    tag: str
    scope: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AnnotationSpec:
    """Events drawn on every time series: the points of `measurement`, their `text_field`, labelled with `tags`.

    `title_tag` names the event in PromQL, where only numbers are kept (VictoriaMetrics
    stores a string field as 0): there the text is made of the tags, not of `text_field`.
    """

    name_zh: str
    name_en: str
    measurement: str
    text_field: str
    tags: tuple[str, ...]
    title_tag: str
    color: str
    scope: tuple[str, ...] = ("agency",)


@dataclass(frozen=True, slots=True)
class DashboardSpec:
    uid: str
    folder: str
    title_zh: str
    title_en: str
    panels: tuple[PanelSpec, ...]
    variables: tuple[str, ...] = ("agency", "host")
    annotations: bool = True  # alert and finding events as annotations


def fields_of(expr: Expr) -> tuple[Field, ...]:
    """The fields an expression reads, left to right."""
    if isinstance(expr, Field):
        return (expr,)
    if isinstance(expr, Arith):
        return (expr.left,) + ((expr.right,) if isinstance(expr.right, Field) else ())
    return fields_of(expr.inner)


def scope_of(panel: PanelSpec) -> set[str]:
    """Every template variable a panel's queries use."""
    return {name for target in panel.targets for field in fields_of(target.expr) for name in field.scope}
