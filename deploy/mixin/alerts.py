"""Alerting rules of tencent-live-exporter, as data built from the mixin settings.

Why these pages and not others: a page means a viewer-facing channel is off air, one failure
from it, visibly glitching, or that we are blind to those. A stream ending on purpose is not an
incident, so plain drops open a ticket; only streams declared in ``streams.expected`` page when
they go off air. Every paging rule has a ``for:`` longer than a planned stop takes to play out
(backup encoder stopped first, master a moment later), so stopping a channel on purpose pages
nobody; the rule tests in deploy/prometheus/tests/ hold that.
"""

from __future__ import annotations

import re
from typing import Any

from .recording import expected_offline
from .settings import MixinConfig

__all__ = ["alert_groups", "seconds"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> int:
    """Seconds in a Prometheus duration (``1h30m`` -> 5400), for comparisons with ``time()``."""
    total = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))
    return int(total)


def _sel(config: MixinConfig, *matchers: str) -> str:
    parts = [config.selector, *matchers]
    return "{" + ", ".join(p for p in parts if p) + "}"


def _alert(
    config: MixinConfig,
    name: str,
    *,
    expr: str,
    page: bool,
    summary: str,
    description: str,
    hold: str | None = None,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr.strip() + "\n" if "\n" in expr.strip() else expr}
    if hold:
        rule["for"] = hold
    rule["labels"] = {"severity": config.page if page else config.ticket, **config.alert_labels}
    rule["annotations"] = {
        "summary": summary,
        "description": " ".join(description.split()),
        "runbook_url": config.runbook(name),
    }
    return rule


def _stream_alerts(c: MixinConfig) -> list[dict[str, Any]]:
    t = c.thresholds
    s = _sel(c)
    offline_matchers = ", ".join(p for p in (c.selector, "account=%q, region=%q") if p)
    where = "{{ $labels.account }}/{{ $labels.region }}"
    return [
        _alert(
            c,
            "TencentLiveExpectedStreamOffline",
            # An exact expected name is declared in every region of its account (the exporter
            # cannot know which one it is pushed to), so "offline" means online in none of them.
            # A region not polling (or not polled yet since a start) is unknown, not offline:
            # TencentLiveRegionPollingDown pages for it instead.
            expr=f"\n{expected_offline(s)}\n",
            hold=t.expected_offline_for,
            page=True,
            summary="Expected stream {{ $labels.stream }} is off air",
            description=f"""
                Stream {{{{ $labels.stream }}}} is listed in streams.expected of account
                {{{{ $labels.account }}}} but has been online in none of its regions for
                {t.expected_offline_for}.""",
        ),
        _alert(
            c,
            "TencentLiveStreamBackupLost",
            # Only streams that had a backup recently: single-encoder channels are by design. Once
            # firing it stays so (its own ALERTS series) until the backup returns or the stream
            # drops, instead of resolving itself when the backup left longer ago than the lookback.
            expr=f"""
tencent_live_stream_publishers{s} < 2
and
tencent_live_stream_online{s} == 1
and on (job, instance, account, region, stream)
(
  max_over_time(tencent_live_stream_publishers{s}[{t.backup_lookback}]) >= 2
  or
  ALERTS{{alertname="TencentLiveStreamBackupLost", alertstate="firing"}}
)
""",
            hold=t.backup_lost_for,
            page=True,
            summary="Stream {{ $labels.stream }} has no backup publisher",
            description=f"""
                Stream {{{{ $labels.stream }}}} in {where} has had {{{{ $value }}}} publisher(s) for
                {t.backup_lost_for} after running with a backup within the last {t.backup_lookback}:
                one encoder failure away from going off air.""",
        ),
        _alert(
            c,
            "TencentLiveStreamNoMaster",
            expr=f"""
tencent_live_stream_online{s} == 1
unless on (job, instance, account, region, stream)
tencent_live_stream_master_info{s}
""",
            hold=t.no_master_for,
            page=True,
            summary="Stream {{ $labels.stream }} has no master publisher",
            description=f"""
                Stream {{{{ $labels.stream }}}} in {where} has been listed for {t.no_master_for}
                without any publisher flagged as master.""",
        ),
        _alert(
            c,
            "TencentLiveStreamFlapping",
            expr=(
                f"increase(tencent_live_stream_switchovers_total{s}[{t.flapping_window}])"
                f" >= {t.flapping_switchovers}"
            ),
            hold=t.flapping_for,
            page=True,
            summary="Stream {{ $labels.stream }} is flapping between encoders",
            description=f"""
                Stream {{{{ $labels.stream }}}} in {where} switched master
                {{{{ $value | printf "%.0f" }}}} times in the last {t.flapping_window}.""",
        ),
        _alert(
            c,
            "TencentLiveRegionSwitchoverBurst",
            # Switchovers minus drops: a stream stopped on purpose (master first) counts one
            # failover and one drop, so a planned mass stop is not an ingest incident.
            expr=f"""
(
  sum without (reason) (increase(tencent_live_region_switchovers_total{s}[5m]))
  - increase(tencent_live_region_stream_drops_total{s}[5m])
) >= {t.burst_switchovers}
and
(
  sum without (reason) (increase(tencent_live_region_switchovers_total{s}[5m]))
  - increase(tencent_live_region_stream_drops_total{s}[5m])
) >= {t.burst_share} * tencent_live_region_streams{s}
""",
            hold=t.burst_for,
            page=True,
            summary=f"Switchover burst in {where}",
            description=f"""
                {{{{ $value | printf "%.0f" }}}} master switchovers of streams still on air in
                {where} in the last 5 minutes.""",
        ),
        _alert(
            c,
            "TencentLiveStreamsDropped",
            expr=f"increase(tencent_live_region_stream_drops_total{s}[10m]) > 0",
            page=False,
            summary=f"Streams dropped in {where}",
            description=(
                f"""{{{{ $value | printf "%.0f" }}}} stream(s) went off air in {where} in the last
                10 minutes (confirmed by consecutive polls). Offline now:
                """
                # A Go template raw string (backquotes), so the selector's own quotes need no escaping.
                "{{ range $i, $s := printf "
                f"`tencent_live_stream_online{{{offline_matchers}}} == 0` "
                '$labels.account $labels.region | query | sortByLabel "stream" }}'
                "{{ if $i }}, {{ end }}{{ $s.Labels.stream }}{{ end }}."
            ),
        ),
    ]


def _exporter_alerts(c: MixinConfig) -> list[dict[str, Any]]:
    t = c.thresholds
    s = _sel(c)
    throttled = _sel(c, 'code=~"RequestLimitExceeded.*"')
    failed = _sel(c, 'code!="OK"')
    refresh_error = _sel(c, 'result="error"')
    refresh_ok = _sel(c, 'result="ok"')
    where = "{{ $labels.account }}/{{ $labels.region }}"
    return [
        _alert(
            c,
            "TencentLiveRegionPollingDown",
            expr=f"tencent_live_up{s} == 0",
            hold=t.polling_down_for,
            page=True,
            summary=f"Polling {where} is failing",
            description=f"""
                Every DescribeBackupStreamList poll of {where} has failed for {t.polling_down_for}:
                stream alerts for this region cannot fire.""",
        ),
        _alert(
            c,
            "TencentLiveApiThrottled",
            expr=(f"sum without (code) (rate(tencent_live_api_requests_total{throttled}[5m])) > 0"),
            hold="10m",
            page=False,
            summary=f"Tencent Cloud API throttles {where}",
            description=f"""
                DescribeBackupStreamList calls of {where} have been rejected with
                RequestLimitExceeded for 10 minutes ({{{{ $value | printf "%.2f" }}}}/s); another
                client probably shares the account's budget.""",
        ),
        _alert(
            c,
            "TencentLiveApiErrors",
            expr=f"""
sum without (code) (rate(tencent_live_api_requests_total{failed}[5m]))
/
sum without (code) (rate(tencent_live_api_requests_total{s}[5m]))
> {t.api_error_ratio}
""",
            hold="10m",
            page=False,
            summary=f"Tencent Cloud API errors for {where}",
            description=f"""
                {{{{ $value | humanizePercentage }}}} of DescribeBackupStreamList calls of {where}
                failed over the last 5 minutes.""",
        ),
        _alert(
            c,
            "TencentLiveStaleData",
            expr=f"""
time() - tencent_live_last_success_timestamp_seconds{s} > {seconds(t.stale_after)}
and
tencent_live_last_success_timestamp_seconds{s} > 0
""",
            hold="5m",
            page=False,
            summary=f"No fresh snapshot of {where}",
            description=f"""
                The last successful snapshot of {where} is {{{{ $value | humanizeDuration }}}}
                old.""",
        ),
        _alert(
            c,
            "TencentLivePollsLate",
            expr=f"increase(tencent_live_polls_late_total{s}[15m]) > 0",
            hold="15m",
            page=False,
            summary=f"Poll schedule of {where} is stretched",
            description=f"""
                Polls of {where} have been starting late for 15 minutes: the account's rate budget
                cannot cover poll_interval.""",
        ),
        _alert(
            c,
            "TencentLiveParseAnomalies",
            # Persistent, not a stray record: some in every 15m window for 30m.
            expr=f"sum without (reason) (increase(tencent_live_parse_anomalies_total{s}[15m])) > 0",
            hold="30m",
            page=False,
            summary=f"Odd records in DescribeBackupStreamList replies of {where}",
            description=f"""
                Replies of {where} have carried odd records for 30 minutes
                ({{{{ $value | printf "%.0f" }}}} in the last 15) that were skipped or read
                leniently (see the reason label of tencent_live_parse_anomalies_total); skipped
                streams keep their last state.""",
        ),
        _alert(
            c,
            "TencentLiveCredentialRefreshFailing",
            expr=f"""
increase(tencent_live_credential_refreshes_total{refresh_error}[30m]) > 0
unless ignoring (result)
increase(tencent_live_credential_refreshes_total{refresh_ok}[30m]) > 0
""",
            hold="5m",
            page=False,
            summary="Credentials of account {{ $labels.account }} cannot be renewed",
            description="""
                Every credential load or renewal of account {{ $labels.account }} in the last 30
                minutes failed. The exporter keeps the credentials it has until they expire.""",
        ),
        _alert(
            c,
            "TencentLiveCredentialExpiringSoon",
            expr=(
                f"tencent_live_credential_expiry_timestamp_seconds{s} - time()"
                f" < {seconds(t.credential_expiry_within)}"
            ),
            hold="1m",
            page=True,
            summary="Credentials of account {{ $labels.account }} expire in {{ $value | humanizeDuration }}",
            description="""
                The temporary credentials of account {{ $labels.account }} expire in
                {{ $value | humanizeDuration }} and have not been renewed (renewal starts 5 minutes
                before expiry). After expiry every poll of the account fails.""",
        ),
        _alert(
            c,
            "TencentLiveConfigReloadFailed",
            expr=f"max_over_time(tencent_live_config_last_reload_successful{s}[5m]) == 0",
            hold="10m",
            page=False,
            summary="tencent-live-exporter {{ $labels.instance }} rejected its configuration",
            description="""
                The last configuration reload of {{ $labels.instance }} failed: it keeps running
                with the previous configuration, and the next restart will fail the same way.""",
        ),
        _alert(
            c,
            "TencentLiveExporterMemoryHigh",
            expr=f"process_resident_memory_bytes{s} > {t.exporter_memory_bytes}",
            hold="15m",
            page=False,
            summary=(
                "tencent-live-exporter {{ $labels.instance }} uses {{ $value | humanize1024 }}B of memory"
            ),
            description=f"""
                The exporter process {{{{ $labels.instance }}}} has held more than
                {t.exporter_memory_bytes // 1048576} MiB resident for 15 minutes; at its memory limit
                it is killed and every alert goes blind until it has polled again.""",
        ),
        _alert(
            c,
            "TencentLiveExporterDown",
            expr=f"up{_sel(c)} == 0",
            hold=t.exporter_down_for,
            page=True,
            summary="tencent-live-exporter {{ $labels.instance }} cannot be scraped",
            description=f"""
                Prometheus has failed to scrape {{{{ $labels.instance }}}} for {t.exporter_down_for}:
                no stream alert can fire.""",
        ),
        _alert(
            c,
            "TencentLiveExporterAbsent",
            expr=f"absent(up{_sel(c)})",
            hold="10m",
            page=True,
            summary="No tencent-live-exporter target",
            description=f"""
                Prometheus has had no target matching {c.selector} for 10 minutes: no stream
                alert can fire.""",
        ),
    ]


def alert_groups(config: MixinConfig) -> list[dict[str, Any]]:
    """The alerting rule groups, in file order."""
    return [
        {"name": "tencent-live.streams", "rules": _stream_alerts(config)},
        {"name": "tencent-live.exporter", "rules": _exporter_alerts(config)},
    ]
