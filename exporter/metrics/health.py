"""Exporter self-metrics: poll success, API calls, rate budget and schedule, on a private registry.

These are a few hundred series at most, so client_python objects are fine here (node_exporter
keeps its own ``exporterMetricsRegistry`` likewise); the per-stream families live in the store.
Nothing is registered on the global ``REGISTRY``: each ``HealthMetrics`` owns its registry,
so tests and a future reload never share state.

Two choices:

- Counters' ``*_created`` samples are left out of the exposition. They double the counter
  series, are only meaningful in OpenMetrics, and Prometheus ignores them in text format.
- ``tencent_live_snapshot_age_seconds`` is computed at scrape time from the injected clock
  (SPEC 5: "its snapshot age keeps growing" while polls fail); a stored gauge would freeze.
- The standard ``process_*`` families come from client_python's ``ProcessCollector`` registered
  on this private registry (it reads ``/proc``; elsewhere it yields nothing), so the exporter's
  own memory and CPU can be alerted on like any Go exporter's.

Every family is declared by its full exposition name; client_python takes a counter's name with
the ``_total`` suffix and strips it internally, so the exposition is the same either way.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.metrics.buildinfo import UNKNOWN_REVISION, build_revision
from exporter.model import RegionKey, RegionStatus

__all__ = [
    "API_DURATION_BUCKETS",
    "POLL_DURATION_BUCKETS",
    "UNKNOWN_REVISION",  # re-exported: tests import it from here
    "HealthMetrics",
    "build_revision",  # re-exported: tests import it from here
]

# A request times out after request_timeout (5 s by default): fine resolution below a second,
# then every second up to the timeout and one bucket just past it, so timeouts stand apart.
API_DURATION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
# A poll may be several requests (watch list, retries) plus budget waits.
POLL_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0)

_REGION = ("account", "region")
_OK = "OK"
_RESULTS = ("ok", "error")  # credential_refreshes_total{result}


@dataclass(slots=True)
class _Status:
    polled: bool = False
    up: bool = False
    last_success: float | None = None
    last_error: str | None = None
    streams: int = 0
    codes: set[str] = field(default_factory=set)
    anomaly_reasons: set[str] = field(default_factory=set)


class _WithoutCreated(Collector):
    """Re-exposes a registry without the OpenMetrics-only ``*_created`` samples."""

    def __init__(self, inner: CollectorRegistry) -> None:
        self._inner = inner

    def collect(self) -> Iterable[Metric]:
        for metric in self._inner.collect():
            metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class _SnapshotAge(Collector):
    """Seconds since each region's last successful snapshot, as of the scrape."""

    def __init__(self, health: HealthMetrics) -> None:
        self._health = health

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "tencent_live_snapshot_age_seconds",
            "Seconds since the region's last successful snapshot; grows while polls fail.",
            labels=_REGION,
        )
        now = self._health.clock()
        for status in self._health.statuses():
            if status.last_success is not None:
                family.add_metric((status.account, status.region), max(0.0, now - status.last_success))
        yield family


class HealthMetrics:
    """Whether polling works, what the API answers, and how the schedule and budget hold up.

    Args:
        version: value of ``tencent_live_exporter_build_info{version}``.
        revision: ``{revision}`` of the same family (see :func:`build_revision`).
        clock: wall clock for the snapshot age; the runner passes Unix seconds to
            :meth:`poll_succeeded` from the same kind of clock.
        process_metrics: register the standard ``process_*`` families (off in tests that
            compare whole bodies, since memory and CPU move between two renders).
    """

    def __init__(
        self,
        version: str,
        *,
        revision: str = UNKNOWN_REVISION,
        clock: Callable[[], float] = time.time,
        process_metrics: bool = True,
    ) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._status: dict[RegionKey, _Status] = {}
        self._accounts: set[str] = set()
        inner = CollectorRegistry(auto_describe=True)
        self._up = Gauge(
            "tencent_live_up", "1 when the region's last poll succeeded.", _REGION, registry=inner
        )
        self._last_success = Gauge(
            "tencent_live_last_success_timestamp_seconds",
            "Unix time of the region's last successful poll.",
            _REGION,
            registry=inner,
        )
        self._requests = Counter(
            "tencent_live_api_requests_total",
            "DescribeBackupStreamList requests by outcome: OK, the API error code, or a transport failure.",
            (*_REGION, "code"),
            registry=inner,
        )
        self._request_seconds = Histogram(
            "tencent_live_api_request_duration_seconds",
            "Duration of DescribeBackupStreamList requests, failures included.",
            _REGION,
            buckets=API_DURATION_BUCKETS,
            registry=inner,
        )
        self._rate = Gauge(
            "tencent_live_rate_limit_requests_per_second",
            "Request budget in force for the account (all its regions share it).",
            ("account",),
            registry=inner,
        )
        self._rate_wait = Counter(
            "tencent_live_rate_limit_wait_seconds_total",
            "Time requests waited for the account's request budget.",
            ("account",),
            registry=inner,
        )
        self._cycle = Gauge(
            "tencent_live_poll_cycle_seconds",
            "Effective time between two polls of the region (stretched when the budget cannot cover it).",
            _REGION,
            registry=inner,
        )
        self._late = Counter(
            "tencent_live_polls_late_total",
            "Polls of the region that started later than scheduled.",
            _REGION,
            registry=inner,
        )
        self._poll_seconds = Histogram(
            "tencent_live_poll_duration_seconds",
            "Duration of a region's poll: budget waits, requests and retries, parse, diff and store.",
            _REGION,
            buckets=POLL_DURATION_BUCKETS,
            registry=inner,
        )
        self._anomalies = Counter(
            "tencent_live_parse_anomalies_total",
            "Odd records in successful replies that were skipped or read leniently, by reason.",
            (*_REGION, "reason"),
            registry=inner,
        )
        self._refreshes = Counter(
            "tencent_live_credential_refreshes_total",
            "Credential loads and renewals of the account by result (ok or error).",
            ("account", "result"),
            registry=inner,
        )
        self._expiry = Gauge(
            "tencent_live_credential_expiry_timestamp_seconds",
            "Unix time the account's temporary credentials expire (absent for long-lived keys).",
            ("account",),
            registry=inner,
        )
        self._reload_ok = Gauge(
            "tencent_live_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded, 0 when it was rejected.",
            registry=inner,
        )
        self._reload_ts = Gauge(
            "tencent_live_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.",
            registry=inner,
        )
        build = Gauge(
            "tencent_live_exporter_build_info",
            "Version, source revision and Python version of the exporter; always 1.",
            ("version", "revision", "python_version"),
            registry=inner,
        )
        build.labels(version, revision, platform.python_version()).set(1)
        self._registry = CollectorRegistry(auto_describe=True)
        self._registry.register(_WithoutCreated(inner))
        self._registry.register(_SnapshotAge(self))
        if process_metrics:
            ProcessCollector(registry=self._registry)

    def register(self, key: RegionKey) -> None:
        """Announce a configured region: its series exist (``up`` 0) before the first poll ends."""
        with self._lock:
            if key in self._status:
                return
            self._status[key] = _Status()
        self._up.labels(*key).set(0)
        self._requests.labels(*key, _OK)
        self._request_seconds.labels(*key)
        self._late.labels(*key)
        self._poll_seconds.labels(*key)

    def register_collector(self, collector: Collector) -> None:
        """Add another part's own families (the web server's connection metrics) to this registry."""
        self._registry.register(collector)

    def unregister(self, key: RegionKey) -> None:
        """Forget a region removed by a reload: every series labelled with it leaves ``/metrics``."""
        with self._lock:
            status = self._status.pop(key, None)
        if status is None:
            return
        for code in status.codes | {_OK}:
            _remove(self._requests, *key, code)
        for reason in status.anomaly_reasons:
            _remove(self._anomalies, *key, reason)
        for metric in (
            self._up,
            self._last_success,
            self._request_seconds,
            self._cycle,
            self._late,
            self._poll_seconds,
        ):
            _remove(metric, *key)

    def unregister_account(self, account: str) -> None:
        """Forget an account removed by a reload: its budget and credential series go too."""
        with self._lock:
            self._accounts.discard(account)
        for metric in (self._rate, self._rate_wait, self._expiry):
            _remove(metric, account)
        for result in _RESULTS:
            _remove(self._refreshes, account, result)

    def observe_request(self, key: RegionKey, code: str, seconds: float) -> None:
        """One API request finished with ``code`` (``OK`` or a ``PollError`` code) after ``seconds``."""
        self.register(key)
        with self._lock:
            status = self._status.get(key)
            if status is not None:
                status.codes.add(code)
        self._requests.labels(*key, code).inc()
        self._request_seconds.labels(*key).observe(seconds)

    def poll_succeeded(self, key: RegionKey, now: float, streams: int) -> None:
        """A poll produced a snapshot of ``streams`` streams at Unix time ``now``."""
        self.register(key)
        with self._lock:
            status = self._status[key]
            status.polled = status.up = True
            status.last_success = now
            status.last_error = None
            status.streams = streams
        self._up.labels(*key).set(1)
        self._last_success.labels(*key).set(now)

    def poll_failed(self, key: RegionKey, code: str) -> None:
        """A poll gave up; the region's other state (snapshot, gauges) stays as it was."""
        self.register(key)
        with self._lock:
            status = self._status[key]
            status.polled = True
            status.up = False
            status.last_error = code
        self._up.labels(*key).set(0)

    def observe_poll(self, key: RegionKey, seconds: float) -> None:
        """A poll of the region, successful or not, took ``seconds`` end to end."""
        self.register(key)
        self._poll_seconds.labels(*key).observe(seconds)

    def parse_anomalies(self, key: RegionKey, reason: str, n: int) -> None:
        """``n`` odd records of kind ``reason`` in one successful reply of the region (SPEC 9)."""
        self.register(key)
        with self._lock:
            status = self._status.get(key)
            if status is not None:
                status.anomaly_reasons.add(reason)
        self._anomalies.labels(*key, reason).inc(max(0, n))

    def credential_refreshed(self, account: str, result: str) -> None:
        """A credential load or renewal of ``account`` ended with ``result`` (``ok`` or ``error``)."""
        self._ensure_account(account)
        self._refreshes.labels(account, result).inc()

    def set_credential_expiry(self, account: str, ts: float | None) -> None:
        """Expiry of the account's temporary credentials; ``None`` (long-lived keys) removes it."""
        if ts is None:
            _remove(self._expiry, account)
        else:
            self._expiry.labels(account).set(ts)

    def config_reloaded(self, success: bool, now: float | None = None) -> None:
        """A configuration load (startup) or reload finished; Prometheus' own reload gauges."""
        self._reload_ok.set(1 if success else 0)
        if success:
            self._reload_ts.set(self.clock() if now is None else now)

    def _ensure_account(self, account: str) -> None:
        with self._lock:
            if account in self._accounts:
                return
            self._accounts.add(account)
        for result in _RESULTS:
            self._refreshes.labels(account, result)

    def set_rate_limit(self, account: str, rps: float) -> None:
        self._rate.labels(account).set(rps)
        self._rate_wait.labels(account)

    def add_rate_limit_wait(self, account: str, seconds: float) -> None:
        self._rate_wait.labels(account).inc(max(0.0, seconds))

    def set_poll_cycle(self, key: RegionKey, seconds: float) -> None:
        self._cycle.labels(*key).set(seconds)

    def poll_late(self, key: RegionKey) -> None:
        self.register(key)
        self._late.labels(*key).inc()

    def render(self) -> bytes:
        """Text exposition of the health families (small; rendered per scrape)."""
        return generate_latest(self._registry)

    def statuses(self) -> list[RegionStatus]:
        """Per-region status for the landing page, in (account, region) order."""
        with self._lock:
            return [
                RegionStatus(
                    account=key.account,
                    region=key.region,
                    polled=s.polled,
                    up=s.up,
                    last_success=s.last_success,
                    last_error=s.last_error,
                    streams=s.streams,
                )
                for key, s in sorted(self._status.items())
            ]

    def keys(self) -> list[RegionKey]:
        """Every region currently registered, in order."""
        with self._lock:
            return sorted(self._status)

    def all_polled(self) -> bool:
        """True once every registered region finished at least one poll (``/readyz``)."""
        with self._lock:
            return all(s.polled for s in self._status.values())


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    """Remove one labelled child; a child that never existed is not an error."""
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
