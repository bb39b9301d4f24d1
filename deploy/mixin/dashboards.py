"""The three Grafana dashboards: fleet overview, one stream, exporter health.

Fleet and exporter-health panels read recording rules (recording.py) so they stay cheap with
100k streams; the stream drill-down reads one stream's raw series. Raw-series selectors carry
the mixin's job and extra matchers, like the rules, so a dashboard never mixes in another job.
"""

from __future__ import annotations

from .grafana import Dashboard, Panel, Target, Variable
from .health import health_dashboard
from .panels import AR, REC, A, dashboard, per_region, stat, table, timeseries, with_job
from .settings import MixinConfig

__all__ = ["dashboards"]


def _label_regex(label: str) -> str:
    """Grafana regex taking one label's value out of a query_result() line."""
    return f'/{label}="([^"]+)"/'


def _online_picker(name: str, label: str, query: str) -> Variable:
    """A single-value picker of one label out of a query_result() of streams online now."""
    return Variable(name=name, label=label, query=query, regex=_label_regex(name), multi=False)


def _green_red(limit: float) -> tuple[tuple[float, str], ...]:
    return ((0.0, "green"), (limit, "red"))


def _fleet(c: MixinConfig) -> Dashboard:
    raw = with_job(c, AR)
    everywhere = with_job(c)
    in_account = with_job(c, A)
    return dashboard(
        c,
        "fleet",
        title="Tencent Live / Fleet overview",
        description="Master/backup push streams across accounts and regions.",
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
            stat(
                "Online streams",
                "Streams listed by DescribeBackupStreamList in the selected regions now.",
                f"sum({REC}streams:sum{{{AR}}})",
            ),
            stat(
                "Redundant share",
                "Streams with at least two publishers (a hot backup) among online streams.",
                f"sum({REC}streams_redundant:sum{{{AR}}}) / sum({REC}streams:sum{{{AR}}})",
                unit="percentunit",
                decimals=1,
                thresholds=((0.0, "red"), (0.9, "orange"), (0.99, "green")),
            ),
            stat(
                "Expected streams off air",
                "Streams listed in streams.expected that are online in none of their account's "
                "regions (TencentLiveExpectedStreamOffline pages for these).",
                f"sum(account:tencent_live_expected_streams_offline:count{{{A}}}) or vector(0)",
                thresholds=_green_red(1),
            ),
            stat(
                "Streams without master",
                "Listed streams none of whose publishers is flagged as master.",
                f"sum({REC}streams_without_master:sum{{{AR}}})",
                thresholds=_green_red(1),
            ),
            stat(
                "Regions not polling",
                "Regions whose last DescribeBackupStreamList poll failed: their data is stale.",
                f"count(tencent_live_up{{{raw}}} == 0) or vector(0)",
                thresholds=_green_red(1),
            ),
            stat(
                "Firing alerts",
                "Alerts of this exporter's rules firing now (the ALERTS series of Prometheus).",
                'count(ALERTS{alertstate="firing",alertname=~"TencentLive.*"}) or vector(0)',
                thresholds=_green_red(1),
            ),
            timeseries(
                "Online streams by region",
                "Streams listed per account and region.",
                per_region(f"{REC}streams:sum{{{AR}}}"),
            ),
            timeseries(
                "Redundant share by region",
                "Share of online streams with at least two publishers, per account and region.",
                per_region(f"{REC}streams_redundant:sum{{{AR}}} / {REC}streams:sum{{{AR}}}"),
                unit="percentunit",
                max=1,
            ),
            timeseries(
                "Streams without master by region",
                "Listed streams without a master publisher, per account and region.",
                per_region(f"{REC}streams_without_master:sum{{{AR}}}"),
            ),
            timeseries(
                "Switchovers per 5m by region and reason",
                "failover: the old master left; handover: it stayed as a backup.",
                Target(
                    expr=f"account_region_reason:tencent_live_switchovers:rate5m{{{AR}}} * 300",
                    legend="{{account}}/{{region}} {{reason}}",
                ),
                stack=True,
                bars=True,
            ),
            timeseries(
                "Stream drops and starts per 5m by region",
                "Confirmed drops (after drop_confirmations judging polls) and new streams.",
                per_region(f"{REC}stream_drops:rate5m{{{AR}}} * 300", "drops "),
                per_region(f"{REC}stream_starts:rate5m{{{AR}}} * 300", "starts "),
                bars=True,
            ),
            timeseries(
                "Publisher losses and joins per 5m by region",
                "Encoders that stopped or started pushing to a stream that stayed listed.",
                per_region(f"{REC}publisher_losses:rate5m{{{AR}}} * 300", "losses "),
                per_region(f"{REC}publisher_joins:rate5m{{{AR}}} * 300", "joins "),
                bars=True,
            ),
            table(
                "Expected streams off air",
                "Streams in streams.expected online in none of their account's regions now, one row per "
                "account and stream (as TencentLiveExpectedStreamOffline, without its for:).",
                f"max by (account, stream) (tencent_live_stream_expected{{{in_account}}} == 1)\n"
                "unless on (account, stream)\n"
                f"max by (account, stream) (tencent_live_stream_online{{{in_account}}} == 1)\n"
                "unless on (account, stream)\n"
                f"max by (account, stream) (tencent_live_stream_expected{{{in_account}}} == 1\n"
                f"  and on (account, region) tencent_live_up{{{in_account}}} == 0)",
                width=24,
                height=6,
            ),
            table(
                "Online streams without a backup",
                "Fewer than two publishers: one encoder failure away from going off air.",
                f"tencent_live_stream_publishers{{{raw}}} < 2 and tencent_live_stream_online{{{raw}}} == 1",
            ),
            table(
                "Most switchovers in the selected range",
                "The 20 streams whose master changed most often in the dashboard's time range.",
                f"sort_desc(topk(20, increase(tencent_live_stream_switchovers_total{{{raw}}}[$__range])))",
            ),
        ),
    )


def _stream(c: MixinConfig) -> Dashboard:
    s = with_job(c, 'account="$account",region="$region",stream="$stream"')
    everywhere = with_job(c)
    in_account = with_job(c, 'account="$account"')
    in_region = with_job(c, 'account="$account",region="$region"')

    def increase(counter: str, legend: str) -> Target:
        return Target(
            expr=f"increase(tencent_live_stream_{counter}_total{{{s}}}[$__rate_interval])", legend=legend
        )

    return dashboard(
        c,
        "stream",
        title="Tencent Live / Stream",
        description="One stream: publishers, master over time, switchovers.",
        variables=(
            # Every picker offers only what has a stream online now, so the dashboard opens on a
            # live stream, not on a dropped one kept for stream_retention or an expected name
            # never seen (open those with the URL's var-stream=).
            _online_picker(
                "account",
                "Account",
                f"query_result(count by (account) (tencent_live_stream_online{{{everywhere}}} == 1))",
            ),
            _online_picker(
                "region",
                "Region",
                f"query_result(count by (region) (tencent_live_stream_online{{{in_account}}} == 1))",
            ),
            _online_picker(
                "stream", "Stream (online)", f"query_result(tencent_live_stream_online{{{in_region}}} == 1)"
            ),
        ),
        panels=(
            stat(
                "Online",
                "1 while the stream is listed; 0 after a confirmed drop.",
                f"tencent_live_stream_online{{{s}}}",
                thresholds=((0.0, "red"), (1.0, "green")),
            ),
            stat(
                "Publishers",
                "Encoders pushing this stream now: 2 or more means a hot backup exists.",
                f"tencent_live_stream_publishers{{{s}}}",
                thresholds=((0.0, "red"), (1.0, "orange"), (2.0, "green")),
            ),
            stat(
                "Master since",
                "How long the current master has been publishing (its PublishTime).",
                f"time() - tencent_live_stream_master_publish_timestamp_seconds{{{s}}}",
                unit="s",
            ),
            table(
                "Current master",
                "Domain, app, source and upstream sequence of the publisher served to viewers.",
                f"tencent_live_stream_master_info{{{s}}}",
                height=4,
            ),
            timeseries(
                "Publishers over time",
                "Number of encoders pushing the stream; a dip to 1 is a lost backup.",
                Target(expr=f"tencent_live_stream_publishers{{{s}}}", legend="publishers"),
                width=24,
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
            timeseries(
                "Switchovers",
                "Master changes of the stream per interval.",
                increase("switchovers", "switchovers"),
                bars=True,
            ),
            timeseries(
                "Publisher joins and losses",
                "Encoders that started or stopped pushing the stream per interval.",
                increase("publisher_joins", "joins"),
                increase("publisher_losses", "losses"),
                bars=True,
            ),
            table(
                "Stream attributes",
                "HostGroupName and OptimalEnable of the stream's master/backup group.",
                f"tencent_live_stream_info{{{s}}}",
                width=24,
                height=4,
            ),
        ),
    )


def dashboards(config: MixinConfig) -> tuple[Dashboard, ...]:
    """Every dashboard, in file order."""
    return (_fleet(config), _stream(config), health_dashboard(config))
