"""Render the dashboard model (`dashboards.model`) to InfluxQL, and the Grafana query type for it.

For InfluxDB 1.x, and 2.x/3.x through their InfluxQL (v1 compatibility) endpoint.
Tags are matched as Grafana expands a variable in a regex (`"agency" =~ /^$agency$/`,
so "All" and multi-value selections work); `$timeFilter` and `$__interval` are
Grafana's own macros. grafana-foundation-sdk types panels, variables and dashboards
but has no InfluxDB dataquery: `InfluxQLQuery` is one, following Grafana's InfluxDB
datasource query model for raw InfluxQL (`refId`, `query`, `rawQuery: true`,
`resultFormat`, `alias`).

Raises (the `render_*` functions):
    ValueError: a declaration InfluxQL cannot express in one statement (targets of one
        panel reading different measurements or filters; a nested count over time).
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
    Match,
    Nested,
    PanelSpec,
    VariableSpec,
    fields_of,
)

FUNCTIONS = {"last": "last", "mean": "mean", "max": "max", "sum": "sum"}


def _tag_filters(scope: tuple[str, ...], matches: tuple[Match, ...] = ()) -> list[str]:
    """`"agency" =~ /^$agency$/` per variable of scope, `"mode" != 'idle'` per fixed match."""
    parts = [f'"{name}" =~ /^${name}$/' for name in scope]
    for match in matches:
        value = match.value.replace("\\", "\\\\").replace("'", "\\'")
        parts.append(f"\"{match.tag}\" {'!=' if match.negate else '='} '{value}'")
    return parts


def _where(field: Field) -> str:
    return " AND ".join(["$timeFilter", *_tag_filters(field.scope, field.match)])


def _aggregate(field: Field) -> str:
    if field.reduce == "rate":  # the group's series combined per bucket, then the per-second increase
        return f'non_negative_derivative({"mean" if field.across == "avg" else field.across}("{field.name}"), 1s)'
    return f'{FUNCTIONS[field.reduce]}("{field.name}")'


def _select(expr: Field | Arith) -> str:
    if isinstance(expr, Field):
        return _aggregate(expr)
    right = _aggregate(expr.right) if isinstance(expr.right, Field) else f"{expr.right:g}"
    return f"{_aggregate(expr.left)} {expr.op} {right}"


def _group_by(tags: tuple[str, ...], *, over_time: bool) -> str:
    parts = (["time($__interval)"] if over_time else []) + [f'"{tag}"' for tag in tags]
    if not parts:
        return ""
    return " GROUP BY " + ", ".join(parts) + (" fill(none)" if over_time else "")


def _source(exprs: list[Expr]) -> Field:
    """The one field whose measurement and filters every target shares (InfluxQL reads one measurement per statement)."""
    fields = [f for e in exprs for f in fields_of(e)]
    first = fields[0]
    for field in fields[1:]:
        if (field.measurement, field.scope, field.match) != (first.measurement, first.scope, first.match):
            raise ValueError(f"one InfluxQL statement cannot read {first.measurement} and {field.measurement} with other filters")
    return first


def render_panel(panel: PanelSpec, lang: str = "zh") -> str:
    """The panel's one InfluxQL statement: every target a column (aliased when there are several)."""
    over_time = panel.kind == "timeseries"
    exprs = [t.expr for t in panel.targets]
    source = _source(exprs)
    nested = [e for e in exprs if isinstance(e, Nested)]
    if nested:
        if len(exprs) > 1 or over_time:
            raise ValueError(f"{panel.title_en}: a nested aggregate must be the only target of a table or stat panel")
        return _render_nested(nested[0], source, panel.legend)
    return (f'SELECT {", ".join(_columns(panel, lang))} FROM "{source.measurement}" WHERE {_where(source)}'
            f"{_group_by(panel.legend, over_time=over_time)}")


def _render_nested(inner: Nested, source: Field, legend: tuple[str, ...]) -> str:
    """An aggregate over a subquery's aggregate (e.g. a count of hosts over each host's last value)."""
    return (f'SELECT {inner.outer}("v") FROM (SELECT {_select(inner.inner)} AS "v" FROM "{source.measurement}" '
            f"WHERE {_where(source)}{_group_by(inner.inner_by, over_time=False)}){_group_by(legend, over_time=False)}")


def _columns(panel: PanelSpec, lang: str) -> list[str]:
    """One selected expression per target, aliased in `lang` when the panel has several."""
    columns = []
    for target in panel.targets:
        assert not isinstance(target.expr, Nested)  # a nested target is the panel's only one, rendered by _render_nested
        alias = target.alias_zh if lang == "zh" else target.alias_en
        columns.append(_select(target.expr) + (f' AS "{alias}"' if alias and len(panel.targets) > 1 else ""))
    return columns


def render_variable(variable: VariableSpec) -> str:
    where = " AND ".join(_tag_filters(variable.scope))
    return f'SHOW TAG VALUES FROM "{variable.measurement}" WITH KEY = "{variable.tag}"' + (f" WHERE {where}" if where else "")


def render_annotation(annotation: AnnotationSpec) -> str:
    columns = ", ".join(f'"{c}"' for c in (annotation.text_field, *annotation.tags))
    return f'SELECT {columns} FROM "{annotation.measurement}" WHERE ' + " AND ".join(["$timeFilter", *_tag_filters(annotation.scope)])


class InfluxQLQuery(variants.Dataquery):
    def __init__(self, ref_id: str, query: str, *, datasource_uid: str, result_format: str = "time_series", alias: str = "") -> None:
        self.ref_id = ref_id
        self.query = query
        self.datasource_uid = datasource_uid
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> JsonObject:
        out: JsonObject = {
            "refId": self.ref_id, "query": self.query, "rawQuery": True, "resultFormat": self.result_format,
            "datasource": {"type": "influxdb", "uid": self.datasource_uid},
        }  # fmt: skip
        if self.alias:
            out["alias"] = self.alias
        return out


class InfluxQL(cogbuilder.Builder[InfluxQLQuery]):
    """Builder of an `InfluxQLQuery`, for `panel.with_target(...)`."""

    def __init__(self, query: str, *, datasource_uid: str, ref_id: str = "A", result_format: str = "time_series", alias: str = "") -> None:
        self._query = InfluxQLQuery(ref_id, query, datasource_uid=datasource_uid, result_format=result_format, alias=alias)

    def build(self) -> InfluxQLQuery:
        return self._query
