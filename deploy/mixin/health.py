"""The exporter-health dashboard: is it polling, what does the API answer, is it itself healthy.

Each panel shows one kind of quantity (one unit per axis): a budget in requests/s and waits in
seconds per second are two panels, not one with two meanings of the y axis.
"""

from __future__ import annotations

from .grafana import Dashboard, Panel, Target, Variable
from .settings import MixinConfig

__all__ = ["health_dashboard"]

REC = "account_region:tencent_live_"
AR = 'account=~"$account",region=~"$region"'
A = 'account=~"$account"'


def health_dashboard(c: MixinConfig) -> Dashboard:
    """Polling, API, budget, credentials, reloads and the process."""

    def sel(matchers: str = "") -> str:
        return "{" + ", ".join(p for p in (c.selector, matchers) if p) + "}"

    return Dashboard(
        uid=f"{c.dashboards.uid_prefix}-exporter-health",
        title="Tencent Live / Exporter health",
        description="Is the exporter polling, what does the API answer, how is the rate budget used.",
        filename="tencent-live-exporter-health.json",
        tags=c.dashboards.tags,
        refresh=c.dashboards.refresh,
        variables=(
            Variable(name="account", label="Account", query=f"label_values(tencent_live_up{sel()}, account)"),
            Variable(name="region", label="Region", query=f"label_values(tencent_live_up{sel(A)}, region)"),
        ),
        panels=(
            Panel(
                title="Exporter scrape up",
                description="Prometheus' own up series of the exporter's targets: 0 means no scrape.",
                kind="state-timeline",
                width=12,
                height=5,
                targets=(Target(expr=f"up{sel()}", legend="{{instance}}"),),
            ),
            Panel(
                title="Region polling up",
                description="1 while the region's last DescribeBackupStreamList poll succeeded.",
                kind="state-timeline",
                width=12,
                height=5,
                targets=(Target(expr=f"tencent_live_up{sel(AR)}", legend="{{account}}/{{region}}"),),
            ),
            Panel(
                title="Snapshot age",
                description="Seconds since the region's last successful poll.",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(
                        expr=f"time() - tencent_live_last_success_timestamp_seconds{sel(AR)}",
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="API requests by code",
                description="DescribeBackupStreamList requests per second by outcome (OK or the error code).",
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
                description="Share of requests that did not return OK over 5 minutes.",
                kind="timeseries",
                unit="percentunit",
                targets=(
                    Target(expr=f"{REC}api_errors:ratio_rate5m{{{AR}}}", legend="{{account}}/{{region}}"),
                ),
            ),
            Panel(
                title="API latency",
                description="Median and 99th percentile duration of single API requests.",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(
                        expr=f"{REC}api_request_duration_seconds:p50_5m{{{AR}}}",
                        legend="p50 {{account}}/{{region}}",
                    ),
                    Target(
                        expr=f"{REC}api_request_duration_seconds:p99_5m{{{AR}}}",
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
                title="Rate budget in force",
                description="Requests per second the account may send; lowered while the API throttles.",
                kind="timeseries",
                unit="reqps",
                targets=(
                    Target(
                        expr=f"max by (account) (tencent_live_rate_limit_requests_per_second{sel(A)})",
                        legend="{{account}}",
                    ),
                ),
            ),
            Panel(
                title="Time waiting for the budget",
                description="Seconds per second that requests spent queued for the account's budget.",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(
                        expr=(
                            "sum by (account) "
                            f"(rate(tencent_live_rate_limit_wait_seconds_total{sel(A)}[$__rate_interval]))"
                        ),
                        legend="{{account}}",
                    ),
                ),
            ),
            Panel(
                title="Poll cycle",
                description="Time between two polls of a region; above poll_interval when stretched.",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(expr=f"tencent_live_poll_cycle_seconds{sel(AR)}", legend="{{account}}/{{region}}"),
                ),
            ),
            Panel(
                title="Poll duration p99",
                description="Whole poll of a region: budget waits, requests and retries, parse, diff, store.",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(
                        expr=(
                            "histogram_quantile(0.99, sum by (account, region, le) "
                            f"(rate(tencent_live_poll_duration_seconds_bucket{sel(AR)}[$__rate_interval])))"
                        ),
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Late polls",
                description="Scheduled polls that started late or were skipped, per interval.",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"increase(tencent_live_polls_late_total{sel(AR)}[$__rate_interval])",
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Parse anomalies",
                description="Odd records in successful replies, skipped or read leniently, by reason.",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=(
                            "sum by (account, region, reason) "
                            f"(increase(tencent_live_parse_anomalies_total{sel(AR)}[$__rate_interval]))"
                        ),
                        legend="{{account}}/{{region}} {{reason}}",
                    ),
                ),
            ),
            Panel(
                title="Streams without per-stream series",
                description="Counted in region aggregates but over streams.max_per_region.",
                kind="timeseries",
                targets=(
                    Target(
                        expr=f"tencent_live_region_streams_unexported{sel(AR)}",
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Credential validity left",
                description="Time until the account's temporary credentials expire (none for lasting keys).",
                kind="timeseries",
                unit="s",
                targets=(
                    Target(
                        expr=f"tencent_live_credential_expiry_timestamp_seconds{sel(A)} - time()",
                        legend="{{account}}",
                    ),
                ),
            ),
            Panel(
                title="Credential refreshes",
                description="Credential loads and renewals per interval by result (ok or error).",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=(
                            "sum by (account, result) "
                            f"(increase(tencent_live_credential_refreshes_total{sel(A)}[$__rate_interval]))"
                        ),
                        legend="{{account}} {{result}}",
                    ),
                ),
            ),
            Panel(
                title="Last config reload",
                description="1 when the exporter's last configuration (re)load succeeded, 0 when rejected.",
                kind="state-timeline",
                states=("rejected", "ok"),
                width=12,
                height=5,
                targets=(
                    Target(expr=f"tencent_live_config_last_reload_successful{sel()}", legend="{{instance}}"),
                ),
            ),
            Panel(
                title="Exporter memory",
                description="Resident memory of the exporter process (process_resident_memory_bytes).",
                kind="timeseries",
                unit="bytes",
                width=12,
                height=5,
                targets=(Target(expr=f"process_resident_memory_bytes{sel()}", legend="{{instance}}"),),
            ),
            Panel(
                title="Exporter version",
                description="Version, source revision and Python version of each exporter instance.",
                kind="table",
                width=24,
                height=4,
                targets=(Target(expr=f"tencent_live_exporter_build_info{sel()}", instant=True),),
            ),
        ),
    )
