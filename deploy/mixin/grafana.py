"""Grafana dashboard model: small frozen values in, schemaVersion 39 JSON out.

Why a generator rather than hand-edited JSON: three dashboards share a datasource variable,
template variables, panel defaults and a grid layout; written once here they cannot drift, and
the tests can read every panel query from the same JSON Grafana loads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DATASOURCE", "Dashboard", "Panel", "Target", "Variable", "dump", "render"]

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH = 24


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One PromQL query of a panel; ``unit`` says what it measures (None: the panel's unit)."""

    expr: str
    legend: str = ""
    instant: bool = False
    unit: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Panel:
    """A panel; its grid position is assigned by :func:`_layout` from ``width`` and ``height``."""

    title: str
    kind: str
    targets: tuple[Target, ...]
    description: str
    unit: str = "short"
    width: int = 12
    height: int = 8
    stack: bool = False
    bars: bool = False
    decimals: int | None = None
    max: float | None = None
    thresholds: tuple[tuple[float, str], ...] = ()
    # state-timeline texts for 0 and 1
    states: tuple[str, str] = ("down", "up")


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    """A query template variable: ``label_values(...)``, or ``query_result(...)`` with ``regex``.

    ``query_result`` with a comparison lets a picker offer (and default to) only series with a
    given value, e.g. streams that are online now, which ``label_values`` cannot express.
    """

    name: str
    label: str
    query: str
    multi: bool = True
    regex: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    """One dashboard file."""

    uid: str
    title: str
    description: str
    filename: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = ("tencent-live",)
    refresh: str = "30s"
    time_from: str = "now-6h"


def _variable(var: Variable) -> dict[str, Any]:
    return {
        "name": var.name,
        "label": var.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": var.query,
        "definition": var.query,
        "refresh": 2,
        "regex": var.regex,
        "sort": 1,
        "multi": var.multi,
        "includeAll": var.multi,
        # Prometheus regexes are anchored: ".+" matches every value without listing them all.
        **({"allValue": ".+"} if var.multi else {}),
        "current": {},
        "hide": 0,
        "options": [],
    }


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def _target(ref: str, target: Target) -> dict[str, Any]:
    return {
        "refId": ref,
        "datasource": DATASOURCE,
        "expr": target.expr,
        "legendFormat": target.legend or "__auto",
        "instant": target.instant,
        "range": not target.instant,
        "editorMode": "code",
    }


def _unit(panel: Panel) -> str:
    """The panel's one unit; a panel whose queries measure different things is refused."""
    units = {target.unit or panel.unit for target in panel.targets}
    if len(units) != 1:
        raise ValueError(f"panel {panel.title!r} mixes units {sorted(units)} on one axis: split it")
    return units.pop()


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": _unit(panel)}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [
                {"color": color, "value": None if i == 0 else value}
                for i, (value, color) in enumerate(panel.thresholds)
            ],
        }
        defaults["color"] = {"mode": "thresholds"}
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 60 if panel.bars else 10,
            "stacking": {"mode": "normal" if panel.stack else "none", "group": "A"},
            "showPoints": "never",
        }
    if panel.kind == "state-timeline":
        defaults["custom"] = {"fillOpacity": 80, "lineWidth": 0}
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    "0": {"text": panel.states[0], "color": "red"},
                    "1": {"text": panel.states[1], "color": "green"},
                },
            }
        ]
    return {"defaults": defaults, "overrides": []}


def _options(panel: Panel) -> dict[str, Any]:
    if panel.kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "textMode": "auto",
        }
    if panel.kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    if panel.kind == "state-timeline":
        return {"showValue": "never", "mergeValues": True, "rowHeight": 0.9, "legend": {"showLegend": False}}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _layout(panels: Sequence[Panel]) -> list[dict[str, int]]:
    """Left to right, wrapping at the grid width; a row is as tall as its tallest panel."""
    positions: list[dict[str, int]] = []
    x = y = row_height = 0
    for panel in panels:
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        positions.append({"h": panel.height, "w": panel.width, "x": x, "y": y})
        x += panel.width
        row_height = max(row_height, panel.height)
    return positions


def _panel(number: int, panel: Panel, grid: dict[str, int]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": number,
        "type": panel.kind,
        "title": panel.title,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "targets": [_target(chr(ord("A") + i), t) for i, t in enumerate(panel.targets)],
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
    }
    if not panel.description.strip():
        raise ValueError(f"panel {panel.title!r} has no description")
    body["description"] = panel.description
    if panel.kind == "table":
        body["transformations"] = [{"id": "labelsToFields", "options": {}}]
    return body


def _links(tags: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "type": "dashboards",
            "tags": list(tags),
            "asDropdown": True,
            "title": "Tencent Live",
            "includeVars": True,
            "keepTime": True,
        }
    ]


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard model (schemaVersion 39) of one dashboard."""
    grids = _layout(dashboard.panels)
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": dashboard.refresh,
        "time": {"from": dashboard.time_from, "to": "now"},
        "links": _links(dashboard.tags),
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {
            "list": [_datasource_variable(), *(_variable(v) for v in dashboard.variables)],
        },
        "panels": [_panel(i + 1, p, g) for i, (p, g) in enumerate(zip(dashboard.panels, grids, strict=True))],
    }


def dump(model: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline (diff-friendly)."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
