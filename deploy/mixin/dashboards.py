"""The three Grafana dashboards: fleet overview, one stream, exporter health.

Fleet and exporter-health panels read recording rules (recording.py) so they stay cheap with
100k streams; the stream drill-down reads one stream's raw series. Raw-series selectors carry
the mixin's job and extra matchers, like the rules, so a dashboard never mixes in another job.
"""

from __future__ import annotations

from .grafana import Dashboard, Panel, Target, Variable
from .settings import MixinConfig

__all__ = ["dashboards"]

REC = "account_region:tencent_live_"
# Matchers of the multi-select dashboards' variables (recorded series carry no job).
AR = 'account=~"$account",region=~"$region"'
A = 'account=~"$account"'


def _label_regex(label: str) -> str:
    """Grafana regex taking one label's value out of a query_result() line."""
    return f'/{label}="([^"]+)"/'


def _green_red(limit: float) -> tuple[tuple[float, str], ...]:
    return ((0.0, "green"), (limit, "red"))


def _with(config: MixinConfig, matchers: str) -> str:
    return ", ".join(p for p in (config.selector, matchers) if p)


def _fleet(c: MixinConfig) -> Dashboard:
    raw = _with(c, AR)
    everywhere = _with(c, "")
    in_account = _with(c, A)
    return Dashboard(
        uid=f"{c.dashboards.uid_prefix}-fleet",
        title="Tencent Live / Fleet overview",
        description="Master/backup push streams across accounts and regions.",
        filename="tencent-live-fleet.json",
        tags=c.dashboards.tags,
        refresh=c.dashboards.refresh,
        variables=(
            Variable(
                name="account",
                label="Account",
                query=f"label_values(tencent_live_region_streams{{{everywhere}}}, account)",
            ),
            Variable(
                name="region",
                label="Region",
                query=f"label_values(tencent_live_region_streams{{{in_account}}}, region)",
            ),
        ),
        panels=(
            Panel(
                title="Online streams",
                description="Streams listed by DescribeBackupStreamList in the selected regions now.",
                kind="stat",
                width=4,
                height=4,
                targets=(Target(expr=f"sum({REC}streams:sum{{{AR}}})"),),
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
                    Target(expr=f"sum({REC}streams_redundant:sum{{{AR}}}) / sum({REC}streams:sum{{{AR}}})"),
                ),
            ),
            Panel(
                title="Expected streams off air",
                description=(
                    "Streams listed in streams.expected that are online in none of their account's "
                    "regions (TencentLiveExpectedStreamOffline pages for these)."
                ),
                kind="stat",
                width=4,
                height=4,
                thresholds=_green_red(1),
                targets=(
                    Target(
                        expr=f"sum(account:tencent_live_expected_streams_offline:count{{{A}}}) or vector(0)"
                    ),
                ),
            ),
            Panel(
                title="Streams without master",
                description="Listed streams none of whose publishers is flagged as master.",
                kind="stat",
                width=4,
                height=4,
                thresholds=_green_red(1),
                targets=(Target(expr=f"sum({REC}streams_without_master:sum{{{AR}}})"),),
            ),
            Panel(
                title="Regions not polling",
                description="Regions whose last DescribeBackupStreamList poll failed: their data is stale.",
                kind="stat",
                width=4,
                height=4,
                thresholds=_green_red(1),
                targets=(Target(expr=f"count(tencent_live_up{{{raw}}} == 0) or vector(0)"),),
            ),
            Panel(
                title="Firing alerts",
                description="Alerts of this exporter's rules firing now (the ALERTS series of Prometheus).",
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
                description="Streams listed per account and region.",
                kind="timeseries",
                targets=(Target(expr=f"{REC}streams:sum{{{AR}}}", legend="{{account}}/{{region}}"),),
            ),
            Panel(
                title="Redundant share by region",
                description="Share of online streams with at least two publishers, per account and region.",
                kind="timeseries",
                unit="percentunit",
                max=1,
                targets=(
                    Target(
                        expr=f"{REC}streams_redundant:sum{{{AR}}} / {REC}streams:sum{{{AR}}}",
                        legend="{{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Streams without master by region",
                description="Listed streams without a master publisher, per account and region.",
                kind="timeseries",
                targets=(
                    Target(expr=f"{REC}streams_without_master:sum{{{AR}}}", legend="{{account}}/{{region}}"),
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
                description="Confirmed drops (after drop_confirmations judging polls) and new streams.",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"{REC}stream_drops:rate5m{{{AR}}} * 300", legend="drops {{account}}/{{region}}"
                    ),
                    Target(
                        expr=f"{REC}stream_starts:rate5m{{{AR}}} * 300",
                        legend="starts {{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Publisher losses and joins per 5m by region",
                description="Encoders that stopped or started pushing to a stream that stayed listed.",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"{REC}publisher_losses:rate5m{{{AR}}} * 300",
                        legend="losses {{account}}/{{region}}",
                    ),
                    Target(
                        expr=f"{REC}publisher_joins:rate5m{{{AR}}} * 300",
                        legend="joins {{account}}/{{region}}",
                    ),
                ),
            ),
            Panel(
                title="Expected streams off air",
                description=(
                    "Streams in streams.expected online in none of their account's regions now, one row per "
                    "account and stream (as TencentLiveExpectedStreamOffline, without its for:)."
                ),
                kind="table",
                width=24,
                height=6,
                targets=(
                    Target(
                        expr=(
                            f"max by (account, stream) (tencent_live_stream_expected{{{in_account}}} == 1)\n"
                            "unless on (account, stream)\n"
                            f"max by (account, stream) (tencent_live_stream_online{{{in_account}}} == 1)\n"
                            "unless on (account, stream)\n"
                            f"max by (account, stream) (tencent_live_stream_expected{{{in_account}}} == 1\n"
                            f"  and on (account, region) tencent_live_up{{{in_account}}} == 0)"
                        ),
                        instant=True,
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
                            f"tencent_live_stream_publishers{{{raw}}} < 2 "
                            f"and tencent_live_stream_online{{{raw}}} == 1"
                        ),
                        instant=True,
                    ),
                ),
            ),
            Panel(
                title="Most switchovers in the selected range",
                description="The 20 streams whose master changed most often in the dashboard's time range.",
                kind="table",
                width=12,
                targets=(
                    Target(
                        expr=(
                            "sort_desc(topk(20, "
                            f"increase(tencent_live_stream_switchovers_total{{{raw}}}[$__range])))"
                        ),
                        instant=True,
                    ),
                ),
            ),
        ),
    )


def _stream(c: MixinConfig) -> Dashboard:
    s = _with(c, 'account="$account",region="$region",stream="$stream"')
    everywhere = _with(c, "")
    in_account = _with(c, 'account="$account"')
    in_region = _with(c, 'account="$account",region="$region"')
    return Dashboard(
        uid=f"{c.dashboards.uid_prefix}-stream",
        title="Tencent Live / Stream",
        description="One stream: publishers, master over time, switchovers.",
        filename="tencent-live-stream.json",
        tags=c.dashboards.tags,
        refresh=c.dashboards.refresh,
        variables=(
            # Every picker offers only what has a stream online now, so the dashboard opens on a
            # live stream, not on a dropped one kept for stream_retention or an expected name
            # never seen (open those with the URL's var-stream=).
            Variable(
                name="account",
                label="Account",
                query=f"query_result(count by (account) (tencent_live_stream_online{{{everywhere}}} == 1))",
                regex=_label_regex("account"),
                multi=False,
            ),
            Variable(
                name="region",
                label="Region",
                query=f"query_result(count by (region) (tencent_live_stream_online{{{in_account}}} == 1))",
                regex=_label_regex("region"),
                multi=False,
            ),
            Variable(
                name="stream",
                label="Stream (online)",
                query=f"query_result(tencent_live_stream_online{{{in_region}}} == 1)",
                regex=_label_regex("stream"),
                multi=False,
            ),
        ),
        panels=(
            Panel(
                title="Online",
                description="1 while the stream is listed; 0 after a confirmed drop.",
                kind="stat",
                width=4,
                height=4,
                thresholds=((0.0, "red"), (1.0, "green")),
                targets=(Target(expr=f"tencent_live_stream_online{{{s}}}"),),
            ),
            Panel(
                title="Publishers",
                description="Encoders pushing this stream now: 2 or more means a hot backup exists.",
                kind="stat",
                width=4,
                height=4,
                thresholds=((0.0, "red"), (1.0, "orange"), (2.0, "green")),
                targets=(Target(expr=f"tencent_live_stream_publishers{{{s}}}"),),
            ),
            Panel(
                title="Master since",
                description="How long the current master has been publishing (its PublishTime).",
                kind="stat",
                width=4,
                height=4,
                unit="s",
                targets=(
                    Target(expr=f"time() - tencent_live_stream_master_publish_timestamp_seconds{{{s}}}"),
                ),
            ),
            Panel(
                title="Current master",
                description="Domain, app, source and upstream sequence of the publisher served to viewers.",
                kind="table",
                width=12,
                height=4,
                targets=(Target(expr=f"tencent_live_stream_master_info{{{s}}}", instant=True),),
            ),
            Panel(
                title="Publishers over time",
                description="Number of encoders pushing the stream; a dip to 1 is a lost backup.",
                kind="timeseries",
                width=24,
                targets=(Target(expr=f"tencent_live_stream_publishers{{{s}}}", legend="publishers"),),
            ),
            Panel(
                title="Master over time",
                description="One row per upstream sequence: on while that publisher is master.",
                kind="state-timeline",
                width=24,
                targets=(
                    Target(
                        expr=f"tencent_live_stream_master_info{{{s}}}",
                        legend="{{upstream_sequence}} {{domain}}/{{app}} {{source_from}}",
                    ),
                ),
            ),
            Panel(
                title="Switchovers",
                description="Master changes of the stream per interval.",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"increase(tencent_live_stream_switchovers_total{{{s}}}[$__rate_interval])",
                        legend="switchovers",
                    ),
                ),
            ),
            Panel(
                title="Publisher joins and losses",
                description="Encoders that started or stopped pushing the stream per interval.",
                kind="timeseries",
                bars=True,
                targets=(
                    Target(
                        expr=f"increase(tencent_live_stream_publisher_joins_total{{{s}}}[$__rate_interval])",
                        legend="joins",
                    ),
                    Target(
                        expr=f"increase(tencent_live_stream_publisher_losses_total{{{s}}}[$__rate_interval])",
                        legend="losses",
                    ),
                ),
            ),
            Panel(
                title="Stream attributes",
                description="HostGroupName and OptimalEnable of the stream's master/backup group.",
                kind="table",
                width=24,
                height=4,
                targets=(Target(expr=f"tencent_live_stream_info{{{s}}}", instant=True),),
            ),
        ),
    )


def dashboards(config: MixinConfig) -> tuple[Dashboard, ...]:
    """Every dashboard, in file order."""
    from .health import health_dashboard

    return (_fleet(config), _stream(config), health_dashboard(config))
