"""Generate the Grafana dashboards of tencent-live-exporter as JSON.

Why a generator rather than hand-edited JSON: three dashboards share a datasource variable,
template variables, panel defaults and a grid layout; written once here they cannot drift, and
the end-to-end test can read every panel query from the same JSON Grafana loads.

    python dashboards/generate.py          # rewrite dashboards/*.json
    python dashboards/generate.py --check  # exit 1 if a committed file differs

Fleet and exporter-health panels read recording rules (deploy/prometheus/recording.yml) so they
stay cheap with 100k streams; the stream drill-down reads one stream's raw series.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DASHBOARDS", "Dashboard", "Panel", "Target", "Variable", "main", "render_all"]

HERE = Path(__file__).resolve().parent
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
TAGS = ["tencent-live"]
GRID_WIDTH = 24

# Selectors shared by the panels of the multi-select dashboards.
AR = 'account=~"$account",region=~"$region"'
A = 'account=~"$account"'
# Single stream of the drill-down dashboard.
S = 'account="$account",region="$region",stream="$stream"'


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Panel:
    """A panel; its grid position is assigned by :func:`_layout` from ``width`` and ``height``."""

    title: str
    kind: str
    targets: tuple[Target, ...]
    description: str = ""
    unit: str = "short"
    width: int = 12
    height: int = 8
    stack: bool = False
    bars: bool = False
    decimals: int | None = None
    max: float | None = None
    thresholds: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    """A query template variable (``label_values``)."""

    name: str
    label: str
    query: str
    multi: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboard:
    uid: str
    title: str
    description: str
    filename: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    refresh: str = "30s"
    time_from: str = "now-6h"


def _green_red(limit: float) -> tuple[tuple[float, str], ...]:
    return ((0.0, "green"), (limit, "red"))


def _fleet() -> Dashboard:
    rec = "account_region:tencent_live_"
    return Dashboard(
        uid="tencent-live-fleet",
        title="Tencent Live / Fleet overview",
        description="Master/backup push streams across accounts and regions.",
        filename="tencent-live-fleet.json",
        variables=(
            Variable(
                name="account", label="Account", query="label_values(tencent_live_region_streams, account)"
            ),
            Variable(
                name="region",
                label="Region",
                query='label_values(tencent_live_region_streams{account=~"$account"}, region)',
            ),
        ),
        panels=(
            Panel(
                title="Online streams",
                kind="stat",
                width=4,
                height=4,
                targets=(Target(expr=f"sum({rec}streams:sum{{{AR}}})"),),
            ),
            Panel(
                title="Redundant share",
                description="Streams with at least two publishers (a hot backup) among online streams.",
                kind="stat",
                width=4,
                height=4,
                unit="percentunit",
                decimals=1,
                thresholds=((0.0, "red"), (0.9, "orange"), (0.99, "green")),
                targets=(
                    Target(expr=f"sum({rec}streams_redundant:sum{{{AR}}}) / sum({rec}streams:sum{{{AR}}})"),
                ),
            ),
            Panel(
                title="Streams without master",
                kind="stat",
                width=4,
                height=4,
                thresholds=_green_red(1),
                targets=(Target(expr=f"sum({rec}streams_without_master:sum{{{AR}}})"),),
            ),
            Panel(
                title="Publishers",
                kind="stat",
                width=4,
                height=4,
                targets=(Target(expr=f"sum({rec}publishers:sum{{{AR}}})"),),
            ),
            Panel(
                title="Regions not polling",
                description="Regions whose last DescribeBackupStreamList poll failed.",
                kind="stat",
                width=4,
                height=4,
                thresholds=_green_red(1),
                targets=(Target(expr=f"count(tencent_live_up{{{AR}}} == 0) or vector(0)"),),
            ),
            Panel(
                title="Firing alerts",
                kind="stat",
                width=4,
                height=4,
                thresholds=_green_red(1),
                targets=(
                    Target(expr='count(ALERTS{alertstate="firing",alertname=~"TencentLive.*"}) or vector(0)'),
                ),
            ),
            Panel(
                title="Online streams by region",
                kind="timeseries",
                targets=(Target(expr=f"{rec}streams:sum{{{AR}}}", legend="{{account}}/{{region}}"),),
            ),
            Panel(
                title="Redundant share by region",
                kind="timeseries",
                unit="percentunit",
                max=1,
                targets=(
                    Target(
                        expr=f"{rec}streams_redundant:sum{{{AR}}} / {rec}streams:sum{{{AR}}}",
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Streams without master by region",
                kind="timeseries",
                targets=(
                    Target(expr=f"{rec}streams_without_master:sum{{{AR}}}", legend="{{account}}/{{region}}"),
                ),
            ),
            Panel(
                title="Switchovers per 5m by region and reason",
                description="failover: the old master left; handover: it stayed as a backup.",
                kind="timeseries",
                stack=True,
                bars=True,
                targets=(
                    Target(
                        expr=f"account_region_reason:tencent_live_switchovers:rate5m{{{AR}}} * 300",
                        legend="{{account}}/{{region}} {{reason}}",
                    ),
                ),
            ),
            Panel(
                title="Stream drops and starts per 5m by region",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"{rec}stream_drops:rate5m{{{AR}}} * 300", legend="drops {{account}}/{{region}}"
                    ),
                    Target(
                        expr=f"{rec}stream_starts:rate5m{{{AR}}} * 300",
                        legend="starts {{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Publisher losses and joins per 5m by region",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"{rec}publisher_losses:rate5m{{{AR}}} * 300",
                        legend="losses {{account}}/{{region}}",
                    ),
                    Target(
                        expr=f"{rec}publisher_joins:rate5m{{{AR}}} * 300",
                        legend="joins {{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Online streams without a backup",
                description="Fewer than two publishers: one encoder failure away from going off air.",
                kind="table",
                width=12,
                targets=(
                    Target(
                        expr=(
                            f"tencent_live_stream_publishers{{{AR}}} < 2 and tencent_live_stream_online == 1"
                        ),
                        instant=True,
                    ),
                ),
            ),
            Panel(
                title="Most switchovers in the selected range",
                kind="table",
                width=12,
                targets=(
                    Target(
                        expr=(
                            "sort_desc(topk(20, "
                            f"increase(tencent_live_stream_switchovers_total{{{AR}}}[$__range])))"
                        ),
                        instant=True,
                    ),
                ),
            ),
        ),
    )


def _stream() -> Dashboard:
    return Dashboard(
        uid="tencent-live-stream",
        title="Tencent Live / Stream",
        description="One stream: publishers, master over time, switchovers.",
        filename="tencent-live-stream.json",
        variables=(
            Variable(
                name="account",
                label="Account",
                query="label_values(tencent_live_stream_online, account)",
                multi=False,
            ),
            Variable(
                name="region",
                label="Region",
                query='label_values(tencent_live_stream_online{account="$account"}, region)',
                multi=False,
            ),
            Variable(
                name="stream",
                label="Stream",
                query='label_values(tencent_live_stream_online{account="$account",region="$region"}, stream)',
                multi=False,
            ),
        ),
        panels=(
            Panel(
                title="Online",
                kind="stat",
                width=4,
                height=4,
                thresholds=((0.0, "red"), (1.0, "green")),
                targets=(Target(expr=f"tencent_live_stream_online{{{S}}}"),),
            ),
            Panel(
                title="Publishers",
                kind="stat",
                width=4,
                height=4,
                thresholds=((0.0, "red"), (1.0, "orange"), (2.0, "green")),
                targets=(Target(expr=f"tencent_live_stream_publishers{{{S}}}"),),
            ),
            Panel(
                title="Master since",
                description="How long the current master has been publishing (its PublishTime).",
                kind="stat",
                width=4,
                height=4,
                unit="s",
                targets=(
                    Target(expr=f"time() - tencent_live_stream_master_publish_timestamp_seconds{{{S}}}"),
                ),
            ),
            Panel(
                title="Current master",
                kind="table",
                width=12,
                height=4,
                targets=(Target(expr=f"tencent_live_stream_master_info{{{S}}}", instant=True),),
            ),
            Panel(
                title="Publishers over time",
                kind="timeseries",
                width=24,
                targets=(Target(expr=f"tencent_live_stream_publishers{{{S}}}", legend="publishers"),),
            ),
            Panel(
                title="Master over time",
                description="One row per upstream sequence: on while that publisher is master.",
                kind="state-timeline",
                width=24,
                targets=(
                    Target(
                        expr=f"tencent_live_stream_master_info{{{S}}}",
                        legend="{{upstream_sequence}} {{domain}}/{{app}} {{source_from}}",
                    ),
                ),
            ),
            Panel(
                title="Switchovers",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"increase(tencent_live_stream_switchovers_total{{{S}}}[$__rate_interval])",
                        legend="switchovers",
                    ),
                ),
            ),
            Panel(
                title="Publisher joins and losses",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"increase(tencent_live_stream_publisher_joins_total{{{S}}}[$__rate_interval])",
                        legend="joins",
                    ),
                    Target(
                        expr=f"increase(tencent_live_stream_publisher_losses_total{{{S}}}[$__rate_interval])",
                        legend="losses",
                    ),
                ),
            ),
            Panel(
                title="Stream attributes",
                kind="table",
                width=24,
                height=4,
                targets=(Target(expr=f"tencent_live_stream_info{{{S}}}", instant=True),),
            ),
        ),
    )


def _health() -> Dashboard:
    rec = "account_region:tencent_live_"
    return Dashboard(
        uid="tencent-live-exporter-health",
        title="Tencent Live / Exporter health",
        description="Is the exporter polling, what does the API answer, how is the rate budget used.",
        filename="tencent-live-exporter-health.json",
        variables=(
            Variable(name="account", label="Account", query="label_values(tencent_live_up, account)"),
            Variable(
                name="region",
                label="Region",
                query='label_values(tencent_live_up{account=~"$account"}, region)',
            ),
        ),
        panels=(
            Panel(
                title="Exporter scrape up",
                kind="state-timeline",
                width=12,
                height=5,
                targets=(Target(expr='up{job="tencent-live-exporter"}', legend="{{instance}}"),),
            ),
            Panel(
                title="Region polling up",
                kind="state-timeline",
                width=12,
                height=5,
                targets=(Target(expr=f"tencent_live_up{{{AR}}}", legend="{{account}}/{{region}}"),),
            ),
            Panel(
                title="Snapshot age",
                description="Seconds since the region's last successful poll.",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(
                        expr=f"time() - tencent_live_last_success_timestamp_seconds{{{AR}}}",
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="API requests by code",
                kind="timeseries",
                unit="reqps",
                stack=True,
                targets=(
                    Target(
                        expr=f"sum by (code) (account_region_code:tencent_live_api_requests:rate5m{{{AR}}})",
                        legend="{{code}}",
                    ),
                ),
            ),
            Panel(
                title="API error ratio",
                kind="timeseries",
                unit="percentunit",
                targets=(
                    Target(expr=f"{rec}api_errors:ratio_rate5m{{{AR}}}", legend="{{account}}/{{region}}"),
                ),
            ),
            Panel(
                title="API latency",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(
                        expr=f"{rec}api_request_duration_seconds:p50_5m{{{AR}}}",
                        legend="p50 {{account}}/{{region}}",
                    ),
                    Target(
                        expr=f"{rec}api_request_duration_seconds:p99_5m{{{AR}}}",
                        legend="p99 {{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Rate budget used",
                description="Requests sent over the last minute divided by the account's budget in force.",
                kind="timeseries",
                unit="percentunit",
                max=1,
                targets=(
                    Target(
                        expr=f"account:tencent_live_rate_limit_budget_used:ratio{{{A}}}", legend="{{account}}"
                    ),
                ),
            ),
            Panel(
                title="Rate budget and waits",
                kind="timeseries",
                targets=(
                    Target(
                        expr=f"max by (account) (tencent_live_rate_limit_requests_per_second{{{A}}})",
                        legend="budget req/s {{account}}",
                    ),
                    Target(
                        expr=(
                            "sum by (account) "
                            f"(rate(tencent_live_rate_limit_wait_seconds_total{{{A}}}[$__rate_interval]))"
                        ),
                        legend="waiting s/s {{account}}",
                    ),
                ),
            ),
            Panel(
                title="Poll cycle",
                description="Time between two polls of a region; above poll_interval when stretched.",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(expr=f"tencent_live_poll_cycle_seconds{{{AR}}}", legend="{{account}}/{{region}}"),
                ),
            ),
            Panel(
                title="Poll duration p99 and late polls",
                kind="timeseries",
                targets=(
                    Target(
                        expr=(
                            "histogram_quantile(0.99, sum by (account, region, le) "
                            f"(rate(tencent_live_poll_duration_seconds_bucket{{{AR}}}[$__rate_interval])))"
                        ),
                        legend="p99 seconds {{account}}/{{region}}",
                    ),
                    Target(
                        expr=f"increase(tencent_live_polls_late_total{{{AR}}}[$__rate_interval])",
                        legend="late polls {{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Streams without per-stream series",
                description="Counted in region aggregates but over streams.max_per_region.",
                kind="timeseries",
                targets=(
                    Target(
                        expr=f"tencent_live_region_streams_unexported{{{AR}}}",
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Exporter version",
                kind="table",
                targets=(Target(expr="tencent_live_exporter_build_info", instant=True),),
            ),
        ),
    )


DASHBOARDS: tuple[Dashboard, ...] = (_fleet(), _stream(), _health())


def _variable(var: Variable) -> dict[str, Any]:
    return {
        "name": var.name,
        "label": var.label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": var.query,
        "definition": var.query,
        "refresh": 2,
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


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
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
                "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}},
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
    if panel.description:
        body["description"] = panel.description
    if panel.kind == "table":
        body["transformations"] = [{"id": "labelsToFields", "options": {}}]
    return body


def _links() -> list[dict[str, Any]]:
    return [
        {
            "type": "dashboards",
            "tags": TAGS,
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
        "tags": TAGS,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": dashboard.refresh,
        "time": {"from": dashboard.time_from, "to": "now"},
        "links": _links(),
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


def render_all(directory: Path = HERE) -> dict[Path, str]:
    """Every dashboard file as it should be on disk."""
    return {directory / d.filename: dump(render(d)) for d in DASHBOARDS}


def _stale(files: dict[Path, str]) -> Iterable[Path]:
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            yield path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report files that differ; exit 1 if any")
    args = parser.parse_args(argv)
    files = render_all()
    stale = list(_stale(files))
    if args.check:
        for path in stale:
            print(f"{path.name} is out of date: run python dashboards/generate.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
