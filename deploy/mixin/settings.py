"""The mixin's settings: a small YAML file read strictly into frozen values.

Why strict: a misspelt key (``job_selectr``) silently keeping a default would render rules that
select nothing; refusing it at render time is cheaper than discovering it during an incident.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_CONFIG", "Dashboards", "MixinConfig", "MixinConfigError", "Thresholds", "load_config"]

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yml"

_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


class MixinConfigError(ValueError):
    """The settings file is not what the mixin understands; the message names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """Numbers and durations the alerts compare against (durations in PromQL syntax)."""

    backup_lost_for: str = "5m"
    backup_lookback: str = "1h"
    no_master_for: str = "2m"
    expected_offline_for: str = "30s"
    flapping_switchovers: int = 3
    flapping_window: str = "15m"
    flapping_for: str = "1m"
    burst_switchovers: int = 5
    burst_share: float = 0.1
    burst_for: str = "2m"
    polling_down_for: str = "10m"
    api_error_ratio: float = 0.2
    stale_after: str = "5m"
    credential_expiry_within: str = "4m"
    exporter_down_for: str = "5m"
    exporter_memory_bytes: int = 805306368


@dataclass(frozen=True, slots=True, kw_only=True)
class Dashboards:
    """Identity of the generated Grafana dashboards."""

    uid_prefix: str = "tencent-live"
    tags: tuple[str, ...] = ("tencent-live",)
    refresh: str = "30s"


@dataclass(frozen=True, slots=True, kw_only=True)
class MixinConfig:
    """Everything a user may adapt without editing rule or dashboard code."""

    job_selector: str = 'job="tencent-live-exporter"'
    extra_selector: str = ""
    runbook_url: str = "docs/runbook.md#{anchor}"
    severities: Mapping[str, str] = field(default_factory=lambda: {"page": "critical", "ticket": "warning"})
    alert_labels: Mapping[str, str] = field(default_factory=dict)
    prometheus_rule_labels: Mapping[str, str] = field(default_factory=lambda: {"release": "prometheus"})
    thresholds: Thresholds = field(default_factory=Thresholds)
    dashboards: Dashboards = field(default_factory=Dashboards)

    @property
    def selector(self) -> str:
        """Matchers for every exporter series: the job plus the extra ones (no braces)."""
        return ", ".join(part for part in (self.job_selector.strip(), self.extra_selector.strip()) if part)

    @property
    def page(self) -> str:
        return self.severities["page"]

    @property
    def ticket(self) -> str:
        return self.severities["ticket"]

    def runbook(self, alert: str) -> str:
        """The runbook URL of ``alert`` from the configured pattern."""
        return self.runbook_url.format(alert=alert, anchor=alert.lower())


def _strict(section: str, data: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MixinConfigError(f"{section}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise MixinConfigError(
            f"{section}: unknown key(s) {', '.join(unknown)} (known: {', '.join(allowed)})"
        )
    return dict(data)


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _labels(section: str, data: Any) -> dict[str, str]:
    values = _strict(section, data, tuple(data or ()))
    for key, value in values.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)) or not isinstance(value, str):
            raise MixinConfigError(f"{section}.{key}: label names are identifiers, values strings")
    return values


def _thresholds(data: Any) -> Thresholds:
    values = _strict("thresholds", data, _names(Thresholds))
    for f in fields(Thresholds):
        if f.name not in values:
            continue
        value = values[f.name]
        if f.type == "str" and not (isinstance(value, str) and _DURATION.match(value)):
            raise MixinConfigError(f"thresholds.{f.name}: {value!r} is not a duration like 5m")
        if f.type in {"int", "float"} and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise MixinConfigError(f"thresholds.{f.name}: {value!r} is not a number")
    return Thresholds(**values)


def parse_config(data: Any) -> MixinConfig:
    """Settings from already-parsed YAML; missing keys keep their defaults."""
    top = _strict("config", data, _names(MixinConfig))
    if "severities" in top:
        severities = _strict("severities", top["severities"], ("page", "ticket"))
        top["severities"] = {**MixinConfig().severities, **severities}
    for key in ("alert_labels", "prometheus_rule_labels"):
        if key in top:
            top[key] = _labels(key, top[key])
    if "thresholds" in top:
        top["thresholds"] = _thresholds(top["thresholds"])
    if "dashboards" in top:
        dash = _strict("dashboards", top["dashboards"], _names(Dashboards))
        if "tags" in dash:
            dash["tags"] = tuple(str(tag) for tag in dash["tags"])
        top["dashboards"] = Dashboards(**dash)
    config = MixinConfig(**top)
    try:
        config.runbook("X")
    except (KeyError, IndexError, ValueError) as exc:
        raise MixinConfigError(f"runbook_url: only {{alert}} and {{anchor}} may be used ({exc})") from None
    return config


def load_config(path: Path = DEFAULT_CONFIG) -> MixinConfig:
    """Read the settings file at ``path``."""
    return parse_config(yaml.safe_load(path.read_text(encoding="utf-8")))
