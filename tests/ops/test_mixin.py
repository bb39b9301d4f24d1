"""deploy/mixin: one source for rules and dashboards, rendered with a small settings file.

The committed rule files, PrometheusRule, chart copies and dashboards must be exactly what the
mixin renders with deploy/mixin/config.yml; and each setting must really reach the output
(a setting that changes nothing would be a lie in the docs).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MIXIN = REPO / "deploy" / "mixin"


def load_mixin() -> ModuleType:
    """Import deploy/mixin as a package (it is not installed: it ships with the repository)."""
    name = "tencent_live_mixin"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, MIXIN / "__init__.py", submodule_search_locations=[str(MIXIN)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mixin = load_mixin()


def _render(tmp_path: Path, settings: dict[str, Any]) -> dict[str, str]:
    files = mixin.outputs(mixin.parse_config(settings), tmp_path, chart=False)
    return {str(path.relative_to(tmp_path)): text for path, text in files.items()}


def _alerts(text: str) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in yaml.safe_load(text)["groups"] for r in g["rules"]}


# ------------------------------------------------------------------------------ drift


def test_committed_files_are_the_render_of_the_committed_settings() -> None:
    files = mixin.outputs(mixin.load_config())
    stale = [str(p.relative_to(REPO)) for p in mixin.stale(files)]
    assert stale == [], f"out of date (run python -m deploy.mixin): {stale}"
    names = {str(p.relative_to(REPO)) for p in files}
    assert {
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/recording.yml",
        "deploy/kubernetes/prometheusrule.yaml",
        "deploy/helm/tencent-live-exporter/files/rules.yaml",
        "dashboards/tencent-live-fleet.json",
    } <= names
    # Nothing else sits next to the rendered dashboards: every one is generated.
    assert {p.name for p in (REPO / "dashboards").iterdir()} == {
        Path(n).name for n in names if n.startswith("dashboards/")
    }


def test_check_mode_fails_on_a_hand_edit_and_render_repairs_it(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "deploy.mixin", "--out", str(tmp_path)]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0, first.stderr
    alerts = tmp_path / "deploy/prometheus/alerts.yml"
    clean = subprocess.run([*command, "--check"], check=False, cwd=REPO, capture_output=True, timeout=60)
    assert clean.returncode == 0
    alerts.write_text(alerts.read_text(encoding="utf-8").replace("for: 5m", "for: 7m"), encoding="utf-8")
    check = subprocess.run(
        [*command, "--check"], check=False, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 1 and "alerts.yml" in check.stdout
    subprocess.run(command, cwd=REPO, capture_output=True, timeout=60, check=True)
    assert "for: 7m" not in alerts.read_text(encoding="utf-8")


def test_prometheusrule_and_chart_carry_the_same_groups() -> None:
    rules = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8"))["groups"]
    rules += yaml.safe_load((REPO / "deploy/prometheus/recording.yml").read_text(encoding="utf-8"))["groups"]
    operator = yaml.safe_load((REPO / "deploy/kubernetes/prometheusrule.yaml").read_text(encoding="utf-8"))
    chart = yaml.safe_load(
        (REPO / "deploy/helm/tencent-live-exporter/files/rules.yaml").read_text(encoding="utf-8")
    )
    assert operator["kind"] == "PrometheusRule" and operator["spec"]["groups"] == rules
    assert chart["groups"] == rules
    for name in ("tencent-live-fleet.json", "tencent-live-stream.json", "tencent-live-exporter-health.json"):
        packaged = REPO / "deploy/helm/tencent-live-exporter/files/dashboards" / name
        assert json.loads(packaged.read_text(encoding="utf-8")) == json.loads(
            (REPO / "dashboards" / name).read_text(encoding="utf-8")
        )


# ------------------------------------------------------------------------------ settings reach the output


def test_job_and_extra_selectors_reach_every_rule_and_raw_panel_query(tmp_path: Path) -> None:
    files = _render(tmp_path, {"job_selector": 'job="live"', "extra_selector": 'cluster="eu"'})
    rule_groups = [
        *yaml.safe_load(files["deploy/prometheus/alerts.yml"])["groups"],
        *yaml.safe_load(files["deploy/prometheus/recording.yml"])["groups"],
    ]
    for group in rule_groups:
        for rule in group["rules"]:
            expr = rule["expr"]
            # every raw series selector (tencent_live_* or up) carries both matchers
            for name, matchers in re.findall(r"\b(tencent_live_\w+|up)\{([^}]*)\}", expr):
                assert 'job="live"' in matchers and 'cluster="eu"' in matchers, (rule, name)
            assert "tencent-live-exporter" not in expr
    for name, text in files.items():
        if not name.endswith(".json"):
            continue
        for panel in json.loads(text)["panels"]:
            for target in panel["targets"]:
                for series, matchers in re.findall(r"\b(tencent_live_\w+|up)\{([^}]*)\}", target["expr"]):
                    assert 'job="live"' in matchers and 'cluster="eu"' in matchers, (name, series)


def test_runbook_url_pattern_severities_and_labels(tmp_path: Path) -> None:
    files = _render(
        tmp_path,
        {
            "runbook_url": "https://wiki.internal/live/{alert}?a={anchor}",
            "severities": {"page": "P1", "ticket": "P3"},
            "alert_labels": {"team": "video"},
            "prometheus_rule_labels": {"release": "kps"},
        },
    )
    alerts = _alerts(files["deploy/prometheus/alerts.yml"])
    backup = alerts["TencentLiveStreamBackupLost"]
    assert backup["annotations"]["runbook_url"] == (
        "https://wiki.internal/live/TencentLiveStreamBackupLost?a=tencentlivestreambackuplost"
    )
    assert backup["labels"] == {"severity": "P1", "team": "video"}
    assert alerts["TencentLiveStreamsDropped"]["labels"]["severity"] == "P3"
    operator = yaml.safe_load(files["deploy/kubernetes/prometheusrule.yaml"])
    assert operator["metadata"]["labels"]["release"] == "kps"


def test_thresholds_reach_the_rules(tmp_path: Path) -> None:
    files = _render(
        tmp_path,
        {"thresholds": {"backup_lost_for": "9m", "backup_lookback": "6h", "stale_after": "10m"}},
    )
    alerts = _alerts(files["deploy/prometheus/alerts.yml"])
    backup = alerts["TencentLiveStreamBackupLost"]
    assert backup["for"] == "9m" and "[6h]) >= 2" in backup["expr"]
    assert "> 600" in alerts["TencentLiveStaleData"]["expr"]


def test_default_runbook_urls_resolve_to_the_runbook_in_this_repository() -> None:
    """No made-up host: the default is the runbook's path here, and its anchor exists."""
    runbook = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
    anchors = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    for rule in _alerts((REPO / "deploy/prometheus/alerts.yml").read_text(encoding="utf-8")).values():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert (REPO / path).is_file(), url
        assert anchor in anchors, url


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"job_selectr": 'job="x"'}, "job_selectr"),
        ({"thresholds": {"backup_lost_for": "5 minutes"}}, "backup_lost_for"),
        ({"thresholds": {"burst_share": "a tenth"}}, "burst_share"),
        ({"thresholds": {"flaping_window": "15m"}}, "flaping_window"),
        ({"severities": {"urgent": "critical"}}, "urgent"),
        ({"runbook_url": "https://wiki/{alertname}"}, "runbook_url"),
        ({"alert_labels": {"team-name": "x"}}, "team-name"),
    ],
    ids=[
        "unknown-key",
        "bad-duration",
        "bad-number",
        "unknown-threshold",
        "unknown-severity",
        "bad-pattern",
        "bad-label",
    ],
)
def test_bad_settings_are_refused_with_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(mixin.MixinConfigError, match=re.escape(message)):
        mixin.parse_config(settings)


def test_committed_settings_file_spells_out_every_default() -> None:
    """config.yml documents every key with its default value: rendering it equals no file at all."""
    assert mixin.load_config() == mixin.parse_config({})
    data = yaml.safe_load((MIXIN / "config.yml").read_text(encoding="utf-8"))
    assert set(data) == {
        "job_selector",
        "extra_selector",
        "runbook_url",
        "severities",
        "alert_labels",
        "prometheus_rule_labels",
        "thresholds",
        "dashboards",
    }
    assert set(data["thresholds"]) == {
        f.name for f in mixin.MixinConfig().thresholds.__dataclass_fields__.values()
    }


# ------------------------------------------------------------------------------ dashboards


def _grafana() -> ModuleType:
    return sys.modules["tencent_live_mixin.grafana"]


def test_a_panel_mixing_units_on_one_axis_is_refused() -> None:
    grafana = _grafana()
    panel = grafana.Panel(
        title="budget and waits",
        description="x",
        kind="timeseries",
        unit="reqps",
        targets=(grafana.Target(expr="a"), grafana.Target(expr="b", unit="s")),
    )
    board = grafana.Dashboard(
        uid="u", title="t", description="d", filename="f.json", variables=(), panels=(panel,)
    )
    with pytest.raises(ValueError, match="mixes units"):
        grafana.render(board)


def test_a_panel_without_description_is_refused() -> None:
    grafana = _grafana()
    panel = grafana.Panel(title="x", description=" ", kind="stat", targets=(grafana.Target(expr="a"),))
    board = grafana.Dashboard(
        uid="u", title="t", description="d", filename="f.json", variables=(), panels=(panel,)
    )
    with pytest.raises(ValueError, match="no description"):
        grafana.render(board)


def test_every_committed_panel_has_a_description() -> None:
    for path in sorted((REPO / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            assert panel.get("description", "").strip(), f"{path.name}: {panel['title']}"


def test_stream_picker_offers_only_online_streams() -> None:
    model = json.loads((REPO / "dashboards/tencent-live-stream.json").read_text(encoding="utf-8"))
    (stream,) = [v for v in model["templating"]["list"] if v["name"] == "stream"]
    assert re.fullmatch(r"query_result\(tencent_live_stream_online\{.*\} == 1\)", stream["query"])
    assert stream["regex"] and re.search(stream["regex"].strip("/"), 'x{stream="ch-1",region="r"} 1')
    assert stream["current"] == {} and stream["multi"] is False  # Grafana then selects the first option
    # account and region pickers lead there too: only those with a stream online now
    for var in model["templating"]["list"]:
        if var["type"] == "query":
            assert "tencent_live_stream_online" in var["query"] and "== 1" in var["query"], var["name"]
            assert re.search(var["regex"].strip("/"), f'{{{var["name"]}="x-1"}} 3').group(1) == "x-1"  # type: ignore[union-attr]


def test_dashboard_uids_and_tags_follow_the_settings(tmp_path: Path) -> None:
    files = _render(tmp_path, {"dashboards": {"uid_prefix": "tl-eu", "tags": ["live", "eu"]}})
    fleet = json.loads(files["dashboards/tencent-live-fleet.json"])
    assert fleet["uid"] == "tl-eu-fleet" and fleet["tags"] == ["live", "eu"]
    assert fleet["links"][0]["tags"] == ["live", "eu"]
