"""The house style every dashboard goes through: one place for what grafanalib gets wrong.

grafanalib 0.7 is frozen at Grafana 6-era defaults (schemaVersion 12, editable, no uid, query
variables refreshed only on load, `null` everywhere). Dashboards are built from the small
helpers here, never from grafanalib directly, so that every panel has a title, a description
and a unit, reads the `datasource` variable, and every query variable refreshes on a time-range
change; `to_json` then strips grafanalib's nulls and writes sorted, stable JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import attr
import grafanalib.core as g

from local_exporter.bundle.config import BundleConfig

#: Every panel and target reads the dashboard's `datasource` variable (file provisioning does not
#: substitute `__inputs`).
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Grafana 10's dashboard schema.
SCHEMA_VERSION = 39
#: The grid is 24 units wide.
GRID_WIDTH = 24
#: The keys Grafana's dashboard schema (@grafana/schema, tests/data/grafana) allows; grafanalib
#: writes more, from Grafana 6 and Graphite, which `to_json` drops.
_DASHBOARD_KEYS = frozenset(
    [
        "annotations",
        "description",
        "editable",
        "graphTooltip",
        "links",
        "panels",
        "refresh",
        "schemaVersion",
        "tags",
        "templating",
        "time",
        "timepicker",
        "timezone",
        "title",
        "uid",
    ]
)
_PANEL_KEYS = frozenset(
    [
        "datasource",
        "description",
        "fieldConfig",
        "gridPos",
        "id",
        "interval",
        "links",
        "maxDataPoints",
        "options",
        "targets",
        "timeFrom",
        "timeShift",
        "title",
        "transformations",
        "transparent",
        "type",
    ]
)
_ROW_KEYS = frozenset(["collapsed", "gridPos", "id", "panels", "title", "type"])
_VARIABLE_KEYS = frozenset(
    [
        "allValue",
        "current",
        "datasource",
        "hide",
        "includeAll",
        "label",
        "multi",
        "name",
        "options",
        "query",
        "refresh",
        "regex",
        "sort",
        "type",
    ]
)
_TIMEPICKER_KEYS = frozenset(("refresh_intervals",))
_TARGET_KEYS = frozenset(["datasource", "expr", "format", "hide", "instant", "intervalFactor", "legendFormat", "refId"])


@dataclass(frozen=True)
class Query:
    """One PromQL target. `instant` for stats and tables (one value per series now)."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def combined(parts: Sequence[tuple[str, str]], legend: str) -> Query:
    """Several expressions as one query, each series tagged `series="<its name>"`.

    An agent's error and activity families appear lazily, at their first move: as separate
    targets most would be empty for a given host; as one query the panel shows whichever exist.
    """
    expr = "\nor\n".join(f'label_replace({e}, "series", "{name}", "", "")' for name, e in parts)
    return Query(expr, legend=legend)


@dataclass(frozen=True)
class Variable:
    """A dashboard variable from a `label_values()` query."""

    name: str
    label: str
    query: str
    multi: bool = True
    #: What "All" stands for (a regex), or None for no "All" option.
    all_value: str | None = ".+"
    hidden: bool = False
    #: Start on "All" (else on the first value Grafana lists).
    starts_on_all: bool = True

    def template(self) -> g.Template:
        return g.Template(
            name=self.name,
            label=self.label,
            query=self.query,
            dataSource=DATASOURCE,
            multi=self.multi,
            includeAll=self.all_value is not None,
            allValue=self.all_value,
            default="$__all" if self.all_value is not None and self.starts_on_all else None,
            refresh=g.REFRESH_ON_TIME_RANGE_CHANGE,
            hide=g.HIDE_VARIABLE if self.hidden else g.SHOW,
            sort=g.SORT_ALPHA_ASC,
        )


@dataclass(frozen=True)
class Panel:
    """A grafanalib panel and its size on the grid (width of 24, height in rows of 30 px)."""

    panel: g.Panel
    width: int
    height: int


@dataclass(frozen=True)
class Row:
    """A titled row of panels, laid out left to right and wrapped at the grid's width."""

    title: str
    panels: Sequence[Panel]
    collapsed: bool = False


def _targets(queries: Sequence[Query]) -> list[g.Target]:
    return [
        g.Target(
            expr=q.expr,
            legendFormat=q.legend,
            refId=chr(ord("A") + i),
            instant=q.instant,
            format=g.TABLE_TARGET_FORMAT if q.table else g.TIME_SERIES_TARGET_FORMAT,
            datasource=DATASOURCE,
            intervalFactor=1,
        )
        for i, q in enumerate(queries)
    ]


def _thresholds(steps: Sequence[tuple[float | None, str]]) -> list[dict[str, Any]]:
    return [{"color": color, "value": value} for value, color in steps]


#: Colours by meaning, shared by every panel that shows a phase or an outcome.
GOOD, WARN, BAD, IDLE = "green", "orange", "red", "text"
NEUTRAL_STEPS: Sequence[tuple[float | None, str]] = ((None, "blue"),)


def stat(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 4,
    height: int = 4,
    steps: Sequence[tuple[float | None, str]] = NEUTRAL_STEPS,
    mappings: Sequence[dict[str, Any]] = (),
    text_mode: str = "auto",
    graph: bool = False,
) -> Panel:
    # A sparkline needs a range query; a bare number needs only the last value.
    panel = g.Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets([replace(q, instant=not graph) for q in queries]),
        format=unit,
        thresholds=_thresholds(steps),
        mappings=list(mappings),
        textMode=text_mode,
        graphMode="area" if graph else "none",
        colorMode="value",
        reduceCalc="lastNotNull",
        noValue="0",
    )
    return Panel(panel, width, height)


def timeseries(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    width: int = 12,
    height: int = 8,
    stacked: bool = False,
    bars: bool = False,
    max_value: int | None = None,
    overrides: Sequence[dict[str, Any]] = (),
) -> Panel:
    panel = g.TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        unit=unit,
        stacking={"mode": "normal", "group": "A"} if stacked else {"mode": "none", "group": "A"},
        fillOpacity=60 if stacked else 10,
        drawStyle="bars" if bars else "line",
        lineInterpolation="stepAfter",
        showPoints="never",
        legendDisplayMode="table",
        legendPlacement="right",
        legendCalcs=["lastNotNull", "max"],
        tooltipMode="multi",
        tooltipSort="desc",
        valueMin=0,
        valueMax=max_value,
        overrides=list(overrides),
        thresholds=_thresholds(NEUTRAL_STEPS),
    )
    return Panel(panel, width, height)


def table(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    transformations: Sequence[dict[str, Any]] = (),
    overrides: Sequence[dict[str, Any]] = (),
    sort_by: str | None = None,
    width: int = 12,
    height: int = 8,
) -> Panel:
    panel = g.Table(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        unit=unit,
        transformations=list(transformations),
        overrides=list(overrides),
        filterable=True,
        sortBy=[g.TableSortByField(displayName=sort_by, desc=True)] if sort_by else [],
        thresholds=_thresholds(NEUTRAL_STEPS),
    )
    return Panel(panel, width, height)


def state_timeline(
    title: str,
    description: str,
    unit: str,
    queries: Sequence[Query],
    *,
    mappings: Sequence[dict[str, Any]] = (),
    width: int = 24,
    height: int = 5,
) -> Panel:
    panel = g.StateTimeline(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=_targets(queries),
        mappings=list(mappings),
        colorMode="fixed" if mappings else "palette-classic",
        showValue="auto",
        mergeValues=True,
        # grafanalib writes no unit for this panel.
        extraJson={"fieldConfig": {"defaults": {"unit": unit}}},
        thresholds=_thresholds(NEUTRAL_STEPS),
    )
    return Panel(panel, width, height)


def value_mappings(texts: Iterable[tuple[int, str, str]]) -> list[dict[str, Any]]:
    """Numbers to text and colour: a state timeline of one series whose value encodes a state."""
    options = {str(number): {"text": text, "color": color, "index": i} for i, (number, text, color) in enumerate(texts)}
    return [{"type": "value", "options": options}]


def rename(columns: dict[str, str], exclude: Sequence[str] = ("Time",)) -> dict[str, Any]:
    """Grafana's `organize` transformation: drop `exclude`, rename and order the rest."""
    return {
        "id": "organize",
        "options": {
            "excludeByName": dict.fromkeys(exclude, True),
            "indexByName": {name: i for i, name in enumerate(columns)},
            "renameByName": columns,
        },
    }


MERGE = {"id": "merge", "options": {}}


def field_unit(name: str, unit: str) -> dict[str, Any]:
    """An override giving one table column (or series) its own unit."""
    return {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}


def fixed_colour(series: str, colour: str) -> dict[str, Any]:
    """An override drawing one series (by its legend name) in one colour."""
    return {
        "matcher": {"id": "byName", "options": series},
        "properties": [{"id": "color", "value": {"fixedColor": colour, "mode": "fixed"}}],
    }


def dashed_series(pattern: str) -> dict[str, Any]:
    """An override drawing the series whose legend names match `pattern` (a /regex/) dashed: a
    plan or a threshold beside what actually happens."""
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}],
    }


def dashboard_uid(config: BundleConfig, slug: str) -> str:
    return f"{config.dashboard_uid_prefix}-{slug}"


def time_range_link(uid: str, duration: str) -> g.DashboardLink:
    """The dashboard `uid` over the last `duration`, variables kept: a time range one click away."""
    return g.DashboardLink(
        title=f"Last {duration}",
        type="link",
        uri=f"/d/{uid}?from=now-{duration}&to=now",
        icon="dashboard",
        includeVars=True,
        keepTime=False,
        tooltip=f"The last {duration}",
    )


@dataclass(frozen=True)
class Dashboard:
    """What one dashboard module declares; `build` turns it into grafanalib's Dashboard."""

    slug: str
    title: str
    description: str
    rows: Sequence[Row]
    variables: Sequence[Variable] = ()
    time_from: str = "now-24h"
    links: Sequence[g.DashboardLink] = field(default_factory=tuple)

    def build(self, config: BundleConfig) -> g.Dashboard:
        return g.Dashboard(
            title=self.title,
            description=self.description,
            uid=dashboard_uid(config, self.slug),
            editable=False,
            schemaVersion=SCHEMA_VERSION,
            tags=list(config.dashboard_tags),
            timezone=config.dashboard_timezone,
            refresh=config.dashboard_refresh,
            time=g.Time(self.time_from, "now"),
            graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
            templating=g.Templating(list=[_datasource_variable(), *(v.template() for v in self.variables)]),
            links=[*self.links, _related(config)],
            panels=_layout(self.rows),
        ).auto_panel_ids()


def _datasource_variable() -> g.Template:
    return g.Template(
        name="datasource",
        label="Data source",
        query="prometheus",
        type="datasource",
        refresh=g.REFRESH_ON_DASHBOARD_LOAD,
        hide=g.SHOW,
    )


def _related(config: BundleConfig) -> g.DashboardLink:
    """Every dashboard of the bundle, in a menu that keeps the time range and variables."""
    return g.DashboardLink(
        title="OS updates",
        type="dashboards",
        tags=list(config.dashboard_tags[:1]),
        asDropdown=True,
        includeVars=True,
        keepTime=True,
    )


def _layout(rows: Sequence[Row]) -> list[g.Panel]:
    """Rows stacked top to bottom; each row's panels left to right, wrapping at the grid width."""
    out: list[g.Panel] = []
    y = 0
    for row in rows:
        out.append(g.RowPanel(title=row.title, collapsed=row.collapsed, gridPos=g.GridPos(h=1, w=GRID_WIDTH, x=0, y=y)))
        y += 1
        x, line_height = 0, 0
        for item in row.panels:
            if x + item.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            out.append(_placed(item.panel, g.GridPos(h=item.height, w=item.width, x=x, y=y)))
            x += item.width
            line_height = max(line_height, item.height)
        y += line_height
    return out


def _placed(panel: g.Panel, position: g.GridPos) -> g.Panel:
    return attr.evolve(panel, gridPos=position)


def _json_data(value: Any) -> Any:
    """grafanalib's objects (panels, targets, ...) as the JSON data they stand for."""
    to_json_data = getattr(value, "to_json_data", None)
    if to_json_data is None:
        raise TypeError(f"{type(value).__name__} is not a grafanalib object")
    return to_json_data()


def to_json(dashboard: g.Dashboard) -> str:
    """Sorted, stable JSON of the keys Grafana's schema knows, without grafanalib's nulls."""
    data = _only(json.loads(json.dumps(dashboard.to_json_data(), default=_json_data)), _DASHBOARD_KEYS)
    data["panels"] = [_panel(p) for p in data["panels"]]
    data["templating"]["list"] = [_variable(v) for v in data["templating"]["list"]]
    data["timepicker"] = _only(data["timepicker"], _TIMEPICKER_KEYS)
    return json.dumps(_without_nulls(data), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _only(data: dict[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in keys}


def _panel(panel: dict[str, Any]) -> dict[str, Any]:
    if panel["type"] == "row":
        return _only({**panel, "panels": []}, _ROW_KEYS)
    panel = _only(panel, _PANEL_KEYS)
    panel["targets"] = [_only(t, _TARGET_KEYS) for t in panel["targets"]]
    return panel


def _variable(variable: dict[str, Any]) -> dict[str, Any]:
    variable = _only(variable, _VARIABLE_KEYS)
    current = {k: v for k, v in variable.get("current", {}).items() if k in ("selected", "text", "value")}
    if current.get("value") is None:
        variable.pop("current", None)  # Grafana picks the first option (the default data source)
    else:
        variable["current"] = current
    return variable


def _without_nulls(value: Any, parent: str = "") -> Any:
    if isinstance(value, dict):
        return {
            k: _without_nulls(v, k)
            for k, v in value.items()
            # A threshold's base step has the value null: it is "from minus infinity".
            if v is not None or (k == "value" and parent == "step")
        }
    if isinstance(value, list):
        return [_without_nulls(v, "step" if parent == "steps" else "") for v in value]
    return value
