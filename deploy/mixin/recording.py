"""Recording rules read by the fleet and exporter-health dashboards.

Why: those dashboards must cost the same with 100 streams or 100,000, so they read per
account/region aggregates computed once per evaluation. Aggregations drop ``job`` and
``instance``: one account is polled by exactly one exporter (two would share, and exhaust, the
account's API budget). Names follow ``level:metric:operations``.
"""

from __future__ import annotations

import textwrap
from typing import Any

from .settings import MixinConfig

__all__ = ["expected_offline", "recording_groups"]


def expected_offline(s: str) -> str:
    """Expected streams online in none of their account's regions, every region of which polls
    (one not polling is unknown, not offline): TencentLiveExpectedStreamOffline's condition and
    the recorded count's. ``s``: the selector, braces included."""
    return (
        f"max by (account, stream) (tencent_live_stream_expected{s} == 1)\n"
        "unless on (account, stream)\n"
        f"max by (account, stream) (tencent_live_stream_online{s} == 1)\n"
        "unless on (account, stream)\n"
        "max by (account, stream) (\n"
        f"  tencent_live_stream_expected{s} == 1 and on (account, region) tencent_live_up{s} == 0\n"
        ")"
    )


def _rule(record: str, expr: str) -> dict[str, Any]:
    return {"record": record, "expr": expr.strip() + "\n" if "\n" in expr.strip() else expr}


def recording_groups(config: MixinConfig) -> list[dict[str, Any]]:
    """The recording rule groups, in file order."""
    s = "{" + config.selector + "}"
    err = "{" + ", ".join(p for p in (config.selector, 'code!="OK"') if p) + "}"
    ar = "account_region:tencent_live_"
    gauges = [
        ("streams", "region_streams"),
        ("streams_redundant", "region_streams_redundant"),
        ("streams_without_master", "region_streams_without_master"),
        ("publishers", "region_publishers"),
    ]
    rates = [
        ("stream_drops", "region_stream_drops_total"),
        ("stream_starts", "region_stream_starts_total"),
        ("publisher_losses", "region_publisher_losses_total"),
        ("publisher_joins", "region_publisher_joins_total"),
    ]
    fleet = [
        _rule(f"{ar}{name}:sum", f"sum by (account, region) (tencent_live_{metric}{s})")
        for name, metric in gauges
    ]
    fleet.append(
        _rule(
            "account_region_reason:tencent_live_switchovers:rate5m",
            f"sum by (account, region, reason) (rate(tencent_live_region_switchovers_total{s}[5m]))",
        )
    )
    fleet += [
        _rule(f"{ar}{name}:rate5m", f"sum by (account, region) (rate(tencent_live_{metric}{s}[5m]))")
        for name, metric in rates
    ]
    fleet.append(
        _rule(
            "account:tencent_live_expected_streams_offline:count",
            # Same condition as TencentLiveExpectedStreamOffline, without its `for:`; 0 when none.
            f"\ncount by (account) (\n{textwrap.indent(expected_offline(s), '  ')}\n)\nor\n"
            f"max by (account) (tencent_live_stream_expected{s}) * 0\n",
        )
    )
    api = [
        _rule(
            "account_region_code:tencent_live_api_requests:rate5m",
            f"sum by (account, region, code) (rate(tencent_live_api_requests_total{s}[5m]))",
        ),
        _rule(
            f"{ar}api_errors:ratio_rate5m",
            # `or ... * 0` keeps the ratio at 0 (not absent) while no error series exists yet.
            f"""
(
  sum by (account, region) (rate(tencent_live_api_requests_total{err}[5m]))
  or
  sum by (account, region) (rate(tencent_live_api_requests_total{s}[5m])) * 0
)
/
sum by (account, region) (rate(tencent_live_api_requests_total{s}[5m]))
""",
        ),
    ]
    for quantile, suffix in ((0.5, "p50_5m"), (0.99, "p99_5m")):
        api.append(
            _rule(
                f"{ar}api_request_duration_seconds:{suffix}",
                f"""
histogram_quantile({quantile},
  sum by (account, region, le) (rate(tencent_live_api_request_duration_seconds_bucket{s}[5m])))
""",
            )
        )
    api += [
        _rule(
            "account:tencent_live_api_requests:rate1m",
            f"sum by (account) (rate(tencent_live_api_requests_total{s}[1m]))",
        ),
        _rule(
            "account:tencent_live_rate_limit_budget_used:ratio",
            # Share of the budget in force that the exporter used over the last minute.
            f"""
account:tencent_live_api_requests:rate1m
/ on (account)
max by (account) (tencent_live_rate_limit_requests_per_second{s})
""",
        ),
    ]
    return [{"name": "tencent-live.fleet", "rules": fleet}, {"name": "tencent-live.api", "rules": api}]
