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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.model import RegionKey, RegionStatus

__all__ = ["API_DURATION_BUCKETS", "POLL_DURATION_BUCKETS", "HealthMetrics"]

# A request times out after request_timeout (5 s by default): fine resolution below a second,
# then every second up to the timeout and one bucket just past it, so timeouts stand apart.
API_DURATION_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
# A poll may be several requests (watch list, retries) plus budget waits.
POLL_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0)

_P = "tencent_live_"
_REGION = ("account", "region")
_OK = "OK"


@dataclass(slots=True)
class _Status:
    polled: bool = False
    up: bool = False
    last_success: float | None = None
    last_error: str | None = None
    streams: int = 0


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
            _P + "snapshot_age_seconds",
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
        clock: wall clock for the snapshot age; the runner passes Unix seconds to
            :meth:`poll_succeeded` from the same kind of clock.
    """

    def __init__(self, version: str, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._status: dict[RegionKey, _Status] = {}
        inner = CollectorRegistry(auto_describe=True)
        self._up = Gauge(_P + "up", "1 when the region's last poll succeeded.", _REGION, registry=inner)
        self._last_success = Gauge(
            _P + "last_success_timestamp_seconds",
            "Unix time of the region's last successful poll.",
            _REGION,
            registry=inner,
        )
        self._requests = Counter(
            _P + "api_requests",
            "DescribeBackupStreamList requests by outcome: OK, the API error code, or a transport failure.",
            (*_REGION, "code"),
            registry=inner,
        )
        self._request_seconds = Histogram(
            _P + "api_request_duration_seconds",
            "Duration of DescribeBackupStreamList requests, failures included.",
            _REGION,
            buckets=API_DURATION_BUCKETS,
            registry=inner,
        )
        self._rate = Gauge(
            _P + "rate_limit_requests_per_second",
            "Request budget in force for the account (all its regions share it).",
            ("account",),
            registry=inner,
        )
        self._rate_wait = Counter(
            _P + "rate_limit_wait_seconds",
            "Time requests waited for the account's request budget.",
            ("account",),
            registry=inner,
        )
        self._cycle = Gauge(
            _P + "poll_cycle_seconds",
            "Effective time between two polls of the region (stretched when the budget cannot cover it).",
            _REGION,
            registry=inner,
        )
        self._late = Counter(
            _P + "polls_late",
            "Polls of the region that started later than scheduled.",
            _REGION,
            registry=inner,
        )
        self._poll_seconds = Histogram(
            _P + "poll_duration_seconds",
            "Duration of a region's poll: budget waits, requests and retries, parse, diff and store.",
            _REGION,
            buckets=POLL_DURATION_BUCKETS,
            registry=inner,
        )
        build = Gauge(
            _P + "exporter_build_info", "Version of the exporter; always 1.", ("version",), registry=inner
        )
        build.labels(version).set(1)
        self._registry = CollectorRegistry(auto_describe=True)
        self._registry.register(_WithoutCreated(inner))
        self._registry.register(_SnapshotAge(self))

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

    def observe_request(self, key: RegionKey, code: str, seconds: float) -> None:
        """One API request finished with ``code`` (``OK`` or a ``PollError`` code) after ``seconds``."""
        self.register(key)
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

    def all_polled(self) -> bool:
        """True once every registered region finished at least one poll (``/readyz``)."""
        with self._lock:
            return all(s.polled for s in self._status.values())
