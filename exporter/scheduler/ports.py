"""What the runner needs of the parts it drives, as structural types, and its retry policy.

The runner receives each part from ``cli.py`` and uses only these methods; spelling them out
keeps it honest about its dependencies (STYLE: "each part receives only what it uses") and
lets the scheduler type-check without importing the store, health or client modules.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.model import Event, RegionKey, Snapshot

__all__ = ["DescribeClient", "EventSink", "Health", "RetryPolicy", "Store"]


class DescribeClient(Protocol):
    """What the runner needs of ``TencentClient``: one call, bytes or a ``PollError``."""

    async def describe_backup_stream_list(self, region: str, stream_name: str | None = None) -> bytes: ...


class Store(Protocol):
    """What the runner needs of ``MetricStore``."""

    def apply(
        self,
        snapshot: Snapshot,
        *,
        changed: Collection[str],
        dropped: Collection[str],
        events: Sequence[Event],
    ) -> None: ...

    def expire(self, now: float) -> int: ...

    def unexported(self, key: RegionKey) -> int: ...

    def prepare(self) -> None: ...

    def export_counters(self) -> dict[str, Any]: ...

    def restore_counters(self, data: Mapping[str, Any]) -> None: ...

    def remove_region(self, key: RegionKey) -> None: ...


class Health(Protocol):
    """What the runner needs of ``HealthMetrics``."""

    def register(self, key: RegionKey) -> None: ...

    def observe_request(self, key: RegionKey, code: str, seconds: float) -> None: ...

    def poll_succeeded(self, key: RegionKey, now: float, streams: int) -> None: ...

    def poll_failed(self, key: RegionKey, code: str) -> None: ...

    def observe_poll(self, key: RegionKey, seconds: float) -> None: ...

    def set_rate_limit(self, account: str, rps: float) -> None: ...

    def add_rate_limit_wait(self, account: str, seconds: float) -> None: ...

    def set_poll_cycle(self, key: RegionKey, seconds: float) -> None: ...

    def poll_late(self, key: RegionKey) -> None: ...

    def parse_anomalies(self, key: RegionKey, reason: str, n: int) -> None: ...

    def unregister(self, key: RegionKey) -> None: ...

    def unregister_account(self, account: str) -> None: ...

    def all_polled(self) -> bool: ...


class EventSink(Protocol):
    """What the runner needs of ``EventLog``."""

    def record(self, events: Sequence[Event]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retries of one request within a poll: few, jittered, and never past the poll's deadline."""

    attempts: int = 3  # tries per request, the first included
    base_delay: float = 0.5
    max_delay: float = 4.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Exponential with jitter, so regions throttled together do not retry together."""
        ceiling = min(self.max_delay, self.base_delay * 2.0**retry)
        return ceiling * (0.5 + 0.5 * rng.random())
