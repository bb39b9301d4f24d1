"""Grafana dashboards: well-formed, and query real series.

The files are rendered by deploy/mixin (tests/ops/test_mixin.py checks they are current).
Each panel query is checked offline by promtool (as an expression of a throwaway recording
rule) and its series names against what the exporter and the recording rules provide.
tests/ops/test_e2e_prometheus.py then runs every query against a live Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._prom import exported_names

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "dashboards"
RECORDING = REPO / "deploy" / "prometheus" / "recording.yml"
PROVISIONING = REPO / "deploy" / "grafana" / "provisioning"
PROMTOOL = shutil.which("promtool")

# What Grafana substitutes at query time; any real value will do for a syntax check.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$account": "prod",
    "$region": "ap-guangzhou",
    "$stream": "ch1",
}


def _dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(DASHBOARDS.glob("*.json"))}


def _panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in model["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _exprs(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in _panels(model):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def substitute(expr: str, values: dict[str, str]) -> str:
    # Longest names first so $__rate_interval is not eaten by $__range or similar prefixes.
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    return expr


@pytest.mark.parametrize(
    ("filename", "variables"),
    [
        ("tencent-live-fleet.json", ["datasource", "account", "region"]),
        ("tencent-live-stream.json", ["datasource", "account", "region", "stream"]),
        ("tencent-live-exporter-health.json", ["datasource", "account", "region"]),
    ],
)
def test_dashboard_shape(filename: str, variables: list[str]) -> None:
    model = _dashboards()[filename]
    assert [v["name"] for v in model["templating"]["list"]] == variables
    assert model["uid"] and model["title"].startswith("Tencent Live")
    ids = [p["id"] for p in _panels(model)]
    assert len(ids) == len(set(ids))
    for panel in _panels(model):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}"


def test_panels_do_not_overlap() -> None:
    for name, model in _dashboards().items():
        cells: dict[tuple[int, int], str] = {}
        for panel in _panels(model):
            g = panel["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{name}: {panel['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = panel["title"]


def test_stream_dashboard_covers_publishers_master_and_switchovers() -> None:
    exprs = " ".join(e for _, e in _exprs(_dashboards()["tencent-live-stream.json"]))
    for metric in ("stream_publishers", "stream_master_info", "stream_switchovers_total"):
        assert f"tencent_live_{metric}" in exprs
    kinds = {p["type"] for p in _panels(_dashboards()["tencent-live-stream.json"])}
    assert "state-timeline" in kinds


def _known_series() -> set[str]:
    names = exported_names() | {"up", "ALERTS"}
    recording = yaml.safe_load(RECORDING.read_text(encoding="utf-8"))
    names.update(r["record"] for g in recording["groups"] for r in g["rules"])
    return names


def test_panels_use_exported_or_recorded_series_only() -> None:
    known = _known_series()
    for name, model in _dashboards().items():
        for title, expr in _exprs(model):
            # series names: identifiers directly followed by a selector, range or end of expression
            used = set(re.findall(r"([A-Za-z_:][\w:]*)\s*(?=\{|\[|$|\))", expr))
            used = {
                u for u in used if "tencent_live" in u or u.startswith("process_") or u in {"up", "ALERTS"}
            }
            assert used, f"{name} / {title}: no series in {expr!r}"
            assert used <= known, f"{name} / {title}: unknown {sorted(used - known)}"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")
def test_every_panel_query_parses(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:check:{i}", "expr": substitute(expr, GRAFANA_VARIABLES)}
        for i, (_, expr) in enumerate(e for model in _dashboards().values() for e in _exprs(model))
    ]
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}), encoding="utf-8")
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


def test_variable_queries_are_label_values_of_exported_series() -> None:
    known = _known_series()
    for model in _dashboards().values():
        for var in model["templating"]["list"]:
            if var["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((\w+)(\{.*\})?, *(\w+)\)", var["query"]) or re.fullmatch(
                r"query_result\((?:count by \(\w+\) \()?(\w+)(\{.*\})? == 1\)?\)", var["query"]
            )
            assert match, var["query"]
            assert match.group(1) in known
            if var["query"].startswith("query_result"):
                assert var["regex"], f"{var['name']}: query_result needs a regex to pick the label"


def test_provisioning_points_at_the_dashboards() -> None:
    datasources = yaml.safe_load(
        (PROVISIONING / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "tencent-live.yml").read_text(encoding="utf-8"))
    (provider,) = providers["providers"]
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"../dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
