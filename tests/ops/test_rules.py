"""Alerting and recording rules: promtool checks and unit tests, plus the contract around them.

The promtool unit tests (deploy/prometheus/tests/*.yml) hold the behaviour of each rule; the
checks here make sure they stay complete (every alert fires and stays quiet somewhere, every
recording rule is evaluated), that rules only use metric names the exporter really exports,
and that every alert links to an existing runbook section.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._prom import exported_names

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
ALERTS = PROM / "alerts.yml"
RECORDING = PROM / "recording.yml"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"
JOB = "tencent-live-exporter"
# The mixin's default runbook_url pattern (deploy/mixin/config.yml): the runbook in this repository.
RUNBOOK_BASE = "docs/runbook.md#"

PROMTOOL = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`, installed by .ci/run)"
)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in _load(path)["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return _rules(ALERTS)


def _promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=60)


def _metric_names(expr: str) -> set[str]:
    """Every series name in ``expr`` that mentions tencent_live (raw or recorded)."""
    return {name for name in re.findall(r"[A-Za-z_:][\w:]*", expr) if "tencent_live_" in name}


# ------------------------------------------------------------------------------ promtool


@needs_promtool
def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", ALERTS.name, RECORDING.name)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file: Path) -> None:
    result = _promtool("test", "rules", str(test_file.relative_to(PROM)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_promtool_check_config() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
@pytest.mark.parametrize(
    ("old", "new"),
    [
        # a backup alert that also pages for single-encoder channels
        (
            'max_over_time(tencent_live_stream_publishers{job="tencent-live-exporter"}[1h]) >= 2',
            'max_over_time(tencent_live_stream_publishers{job="tencent-live-exporter"}[1h]) >= 1',
        ),
        # a lost backup that stops paging once the loss is older than the lookback
        ('\n        or\n        ALERTS{alertname="TencentLiveStreamBackupLost", alertstate="firing"}', ""),
        # a flapping threshold one too high
        ("[15m]) >= 3", "[15m]) >= 4"),
        # a shorter `for`
        (
            'tencent_live_up{job="tencent-live-exporter"} == 0\n    for: 10m',
            'tencent_live_up{job="tencent-live-exporter"} == 0\n    for: 5m',
        ),
        # "expected but offline" judged per region: a never-seen 0 in another region would page
        ("max by (account, stream)", "max by (account, region, stream)"),
        # "expected but offline" while the region is not even polled (a start with bad credentials)
        (
            "\n      unless on (account, stream)\n      max by (account, stream) (\n        "
            'tencent_live_stream_expected{job="tencent-live-exporter"} == 1 and on (account, region) '
            'tencent_live_up{job="tencent-live-exporter"} == 0\n      )',
            "",
        ),
        # drops of any stream paging again
        (
            "> 0\n    labels:\n      severity: warning\n    annotations:\n      summary: Streams dropped",
            "> 0\n    labels:\n      severity: critical\n    annotations:\n      summary: Streams dropped",
        ),
    ],
    ids=[
        "backup-lost-single-encoder",
        "backup-lost-self-resolves",
        "flapping-threshold",
        "polling-down-for",
        "expected-per-region",
        "expected-unpolled",
        "drops-page",
    ],
)
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, old: str, new: str) -> None:
    """The unit tests are not vacuous: a plausible mistake in a rule makes them fail."""
    text = ALERTS.read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "tests").mkdir()
    (tmp_path / "alerts.yml").write_text(text.replace(old, new), encoding="utf-8")
    before, after = _rules(ALERTS), _rules(tmp_path / "alerts.yml")
    (changed,) = [b["alert"] for b, a in zip(before, after, strict=True) if a != b]
    # Only the test groups about the changed alert: the same verdict, a fraction of the time.
    tests = _load(PROM / "tests" / "alerts_test.yml")
    tests["tests"] = [
        group
        for group in tests["tests"]
        if any(case["alertname"] == changed for case in group.get("alert_rule_test", []))
    ]
    assert tests["tests"], f"no rule test for {changed}"
    (tmp_path / "tests" / "alerts_test.yml").write_text(yaml.safe_dump(tests, allow_unicode=True), "utf-8")
    result = _promtool("test", "rules", "tests/alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


# ------------------------------------------------------------------------------ completeness


def _alert_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in RULE_TESTS:
        for test in _load(path)["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


@pytest.mark.parametrize("alert", [a["alert"] for a in _alerts()])
def test_every_alert_is_tested_firing_and_quiet(alert: str) -> None:
    cases = [c for c in _alert_cases() if c["alertname"] == alert]
    assert any(c.get("exp_alerts") for c in cases), f"{alert}: no case where it fires"
    assert any(not c.get("exp_alerts") for c in cases), f"{alert}: no case where it stays quiet"


def test_every_recording_rule_is_tested() -> None:
    tested: set[str] = set()
    for path in RULE_TESTS:
        for test in _load(path)["tests"]:
            tested.update(case["expr"] for case in test.get("promql_expr_test", []))
    records = {rule["record"] for rule in _rules(RECORDING)}
    assert records - tested == set()


# ------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("rule", _alerts(), ids=lambda r: r["alert"])
def test_alert_has_routing_label_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()


def test_every_paging_alert_waits_with_a_for() -> None:
    """A page needs a `for:` so that a planned stop (backup off, then the master) plays out first."""
    paging = [rule for rule in _alerts() if rule["labels"]["severity"] == "critical"]
    assert len(paging) >= 8
    assert [rule["alert"] for rule in paging if not rule.get("for")] == []


def _runbook_anchors() -> set[str]:
    """GitHub heading anchors of docs/runbook.md (lowercase, spaces to dashes, punctuation dropped)."""
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            slug = re.sub(r"[^\w\- ]", "", line[3:].strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_every_alert_has_a_runbook_section_and_no_section_is_orphaned() -> None:
    alerts = {rule["alert"].lower() for rule in _alerts()}
    assert _runbook_anchors() == alerts


def test_rules_use_only_exported_metric_names() -> None:
    exported = exported_names() | {rule["record"] for rule in _rules(RECORDING)}
    used: set[str] = set()
    for rule in _alerts() + _rules(RECORDING):
        used |= _metric_names(rule["expr"])
        for text in rule.get("annotations", {}).values():
            used |= _metric_names(text)
    assert used, "no metric name found: the pattern is broken"
    assert used - exported == set(), f"neither exported nor recorded: {sorted(used - exported)}"


def test_exporter_alerts_select_the_documented_scrape_job() -> None:
    config = _load(PROM / "prometheus.yml")
    jobs = [scrape["job_name"] for scrape in config["scrape_configs"]]
    assert JOB in jobs
    exprs = [rule["expr"] for rule in _alerts() if rule["alert"].startswith("TencentLiveExporter")]
    assert exprs and all(f'job="{JOB}"' in expr for expr in exprs)
    assert set(config["rule_files"]) == {ALERTS.name, RECORDING.name}
