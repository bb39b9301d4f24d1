"""tencent-live-exporter monitoring mixin: alerting rules, recording rules and dashboards from one source.

Why a mixin: Prometheus rule files, the prometheus-operator PrometheusRule, the Helm chart's
rules and the Grafana dashboards used to be four copies with a hard-coded job, label and
runbook host. Here they are rendered from Python data plus a small settings file
(deploy/mixin/config.yml: job selector, extra matchers, runbook URL pattern, severities,
thresholds), as the Prometheus monitoring mixins do with jsonnet.

    python -m deploy.mixin                  # rewrite every rendered file in the repository
    python -m deploy.mixin --check          # exit 1 if a committed file differs from the render
    python -m deploy.mixin --config mine.yml --out build/monitoring   # your settings elsewhere
"""

from __future__ import annotations

from .render import outputs, stale
from .settings import DEFAULT_CONFIG, MixinConfig, MixinConfigError, load_config, parse_config

__all__ = [
    "DEFAULT_CONFIG",
    "MixinConfig",
    "MixinConfigError",
    "load_config",
    "outputs",
    "parse_config",
    "stale",
]
