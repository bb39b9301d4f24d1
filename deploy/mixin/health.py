"""The exporter-health dashboard: is it polling, what does the API answer, is it itself healthy.

Each panel shows one kind of quantity (one unit per axis): a budget in requests/s and waits in
seconds per second are two panels, not one with two meanings of the y axis.
"""

from __future__ import annotations

from typing import Any

from .grafana import Dashboard, Panel, Target, Variable
from .panels import AR, REC, A, dashboard, per_region, table, timeseries, with_job
from .settings import MixinConfig

__all__ = ["health_dashboard"]


def health_dashboard(c: MixinConfig) -> Dashboard:
    """Polling, API, budget, credentials, reloads and the process."""

    def sel(matchers: str = "") -> str:
        return "{" + with_job(c, matchers) + "}"

    def per_account(expr: str) -> Target:
        return Target(expr=expr, legend="{{account}}")

    def per_instance(kind: str, title: str, description: str, expr: str, **extra: Any) -> Panel:
        """One line (or row) per exporter instance, half the width."""
        targets = (Target(expr=expr, legend="{{instance}}"),)
        return Panel(
            title=title, description=description, kind=kind, width=12, height=5, targets=targets, **extra
        )

    return dashboard(
        c,
        "exporter-health",
        title="Tencent Live / Exporter health",
        description="Is the exporter polling, what does the API answer, how is the rate budget used.",
        variables=(
            Variable(name="account", label="Account", query=f"label_values(tencent_live_up{sel()}, account)"),
            Variable(name="region", label="Region", query=f"label_values(tencent_live_up{sel(A)}, region)"),
        ),
        panels=(
            per_instance(
                "state-timeline",
                "Exporter scrape up",
                "Prometheus' own up series of the exporter's targets: 0 means no scrape.",
                f"up{sel()}",
            ),
            Panel(
                title="Region polling up",
                description="1 while the region's last DescribeBackupStreamList poll succeeded.",
                kind="state-timeline",
                width=12,
                height=5,
                targets=(per_region(f"tencent_live_up{sel(AR)}"),),
            ),
            timeseries(
                "Snapshot age",
                "Seconds since the region's last successful poll.",
                per_region(f"time() - tencent_live_last_success_timestamp_seconds{sel(AR)}"),
                unit="s",
            ),
            timeseries(
                "API requests by code",
                "DescribeBackupStreamList requests per second by outcome (OK or the error code).",
                Target(
                    expr=f"sum by (code) (account_region_code:tencent_live_api_requests:rate5m{{{AR}}})",
                    legend="{{code}}",
                ),
                unit="reqps",
                stack=True,
            ),
            timeseries(
                "API error ratio",
                "Share of requests that did not return OK over 5 minutes.",
                per_region(f"{REC}api_errors:ratio_rate5m{{{AR}}}"),
                unit="percentunit",
            ),
            timeseries(
                "API latency",
                "Median and 99th percentile duration of single API requests.",
                per_region(f"{REC}api_request_duration_seconds:p50_5m{{{AR}}}", "p50 "),
                per_region(f"{REC}api_request_duration_seconds:p99_5m{{{AR}}}", "p99 "),
                unit="s",
            ),
            timeseries(
                "Rate budget used",
                "Requests sent over the last minute divided by the account's budget in force.",
                per_account(f"account:tencent_live_rate_limit_budget_used:ratio{{{A}}}"),
                unit="percentunit",
                max=1,
            ),
            timeseries(
                "Rate budget in force",
                "Requests per second the account may send; lowered while the API throttles.",
                per_account(f"max by (account) (tencent_live_rate_limit_requests_per_second{sel(A)})"),
                unit="reqps",
            ),
            timeseries(
                "Time waiting for the budget",
                "Seconds per second that requests spent queued for the account's budget.",
                per_account(
                    "sum by (account) "
                    f"(rate(tencent_live_rate_limit_wait_seconds_total{sel(A)}[$__rate_interval]))"
                ),
                unit="s",
            ),
            timeseries(
                "Poll cycle",
                "Time between two polls of a region; above poll_interval when stretched.",
                per_region(f"tencent_live_poll_cycle_seconds{sel(AR)}"),
                unit="s",
            ),
            timeseries(
                "Poll duration p99",
                "Whole poll of a region: budget waits, requests and retries, parse, diff, store.",
                per_region(
                    "histogram_quantile(0.99, sum by (account, region, le) "
                    f"(rate(tencent_live_poll_duration_seconds_bucket{sel(AR)}[$__rate_interval])))"
                ),
                unit="s",
            ),
            timeseries(
                "Late polls",
                "Scheduled polls that started late or were skipped, per interval.",
                per_region(f"increase(tencent_live_polls_late_total{sel(AR)}[$__rate_interval])"),
                bars=True,
            ),
            timeseries(
                "Parse anomalies",
                "Odd records in successful replies, skipped or read leniently, by reason.",
                Target(
                    expr=(
                        "sum by (account, region, reason) "
                        f"(increase(tencent_live_parse_anomalies_total{sel(AR)}[$__rate_interval]))"
                    ),
                    legend="{{account}}/{{region}} {{reason}}",
                ),
                bars=True,
            ),
            timeseries(
                "Streams without per-stream series",
                "Counted in region aggregates but over streams.max_per_region.",
                per_region(f"tencent_live_region_streams_unexported{sel(AR)}"),
            ),
            timeseries(
                "Credential validity left",
                "Time until the account's temporary credentials expire (none for lasting keys).",
                per_account(f"tencent_live_credential_expiry_timestamp_seconds{sel(A)} - time()"),
                unit="s",
            ),
            timeseries(
                "Credential refreshes",
                "Credential loads and renewals per interval by result (ok or error).",
                Target(
                    expr=(
                        "sum by (account, result) "
                        f"(increase(tencent_live_credential_refreshes_total{sel(A)}[$__rate_interval]))"
                    ),
                    legend="{{account}} {{result}}",
                ),
                bars=True,
            ),
            per_instance(
                "state-timeline",
                "Last config reload",
                "1 when the exporter's last configuration (re)load succeeded, 0 when rejected.",
                f"tencent_live_config_last_reload_successful{sel()}",
                states=("rejected", "ok"),
            ),
            per_instance(
                "timeseries",
                "Exporter memory",
                "Resident memory of the exporter process (process_resident_memory_bytes).",
                f"process_resident_memory_bytes{sel()}",
                unit="bytes",
            ),
            table(
                "Exporter version",
                "Version, source revision and Python version of each exporter instance.",
                f"tencent_live_exporter_build_info{sel()}",
                width=24,
                height=4,
            ),
        ),
    )
