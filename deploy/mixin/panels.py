"""Panel shapes the dashboards repeat: a 4x4 stat, a time series, an instant table.

Every panel of dashboards.py and health.py is one of these with its own title, description and
queries, so the layout defaults (stat size, instant tables, the per-region legend) are written
once here.
"""

from __future__ import annotations

from typing import Any

from .grafana import Dashboard, Panel, Target, Variable
from .settings import MixinConfig

__all__ = [
    "AR",
    "PER_REGION",
    "REC",
    "A",
    "dashboard",
    "per_region",
    "stat",
    "table",
    "timeseries",
    "with_job",
]

REC = "account_region:tencent_live_"
# Matchers of the multi-select dashboards' variables (recorded series carry no job).
AR = 'account=~"$account",region=~"$region"'
A = 'account=~"$account"'
PER_REGION = "{{account}}/{{region}}"


def with_job(config: MixinConfig, matchers: str = "") -> str:
    """The mixin's job and extra matchers plus ``matchers``, for a raw-series selector (no braces)."""
    return ", ".join(p for p in (config.selector, matchers) if p)


def per_region(expr: str, prefix: str = "") -> Target:
    """A query with one line per account and region in the legend."""
    return Target(expr=expr, legend=prefix + PER_REGION)


def stat(title: str, description: str, expr: str, **extra: Any) -> Panel:
    """One number, in a 4x4 cell."""
    return Panel(
        title=title,
        description=description,
        kind="stat",
        width=4,
        height=4,
        targets=(Target(expr=expr),),
        **extra,
    )


def timeseries(title: str, description: str, *targets: Target, **extra: Any) -> Panel:
    return Panel(title=title, description=description, kind="timeseries", targets=targets, **extra)


def table(title: str, description: str, expr: str, **extra: Any) -> Panel:
    """The query's series now, one row each."""
    return Panel(
        title=title,
        description=description,
        kind="table",
        targets=(Target(expr=expr, instant=True),),
        **extra,
    )


def dashboard(
    config: MixinConfig,
    slug: str,
    *,
    title: str,
    description: str,
    variables: tuple[Variable, ...],
    panels: tuple[Panel, ...],
) -> Dashboard:
    """``tencent-live-<slug>.json``, uid ``<uid_prefix>-<slug>``, with the configured tags and refresh."""
    return Dashboard(
        uid=f"{config.dashboards.uid_prefix}-{slug}",
        title=title,
        description=description,
        filename=f"tencent-live-{slug}.json",
        tags=config.dashboards.tags,
        refresh=config.dashboards.refresh,
        variables=variables,
        panels=panels,
    )
