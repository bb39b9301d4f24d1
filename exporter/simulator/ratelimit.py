"""The vendor's per-key request budget and the request log tests judge our poller by.

SPEC section 8 defines the budget over "any one-second window": no interval of ``window``
seconds, wherever it starts, may hold more than ``limit`` arrivals. The limiter admits a
request when fewer than ``limit`` admitted arrivals lie in ``(now - window, now]``;
``max_requests_in_window`` measures the same quantity after the fact, so a poller that never
makes the limiter refuse also passes the log check, and the other way round.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RequestLog", "RequestRecord", "SlidingWindowLimiter", "max_requests_in_window"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRecord:
    """One request that reached the vendor path ``/``.

    ``arrival`` is the simulator's monotonic clock; ``secret_id`` is the one the request
    claimed (also when its signature was wrong), ``None`` without a parsable Authorization;
    ``code`` is ``OK``, the vendor error code, or the fault that replaced the reply
    (``Fault.http_status`` -> ``HTTP502`` ...).
    """

    arrival: float
    secret_id: str | None
    region: str | None
    stream_name: str | None
    code: str


class RequestLog:
    """Thread-safe, bounded record of vendor-path requests."""

    def __init__(self, maxlen: int = 500_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=maxlen)

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


def max_requests_in_window(
    log: RequestLog | Iterable[RequestRecord], secret_id: str, window: float = 1.0
) -> int:
    """Most arrivals from ``secret_id`` (all regions, all outcomes) within any ``window``.

    Two arrivals are in one window when they are less than ``window`` apart. Measured by
    replaying the arrivals through the limiter with no limit, so the check and the limiter
    cannot disagree about what a window is.
    """
    records = log.records() if isinstance(log, RequestLog) else log
    replay = SlidingWindowLimiter(window)
    times = sorted(r.arrival for r in records if r.secret_id == secret_id)
    return max((replay.admit(secret_id, t, math.inf)[1] for t in times), default=0)


class SlidingWindowLimiter:
    """Per-key sliding log of admitted arrivals."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, key: str, now: float, limit: float) -> tuple[bool, int]:
        """Admit (and record) one arrival unless ``limit`` were admitted in the last window.

        Returns whether it was admitted and how many arrivals the window would hold with it.
        """
        with self._lock:
            arrivals = self._admitted.setdefault(key, deque())
            while arrivals and arrivals[0] <= now - self.window:
                arrivals.popleft()
            if len(arrivals) >= limit:
                return False, len(arrivals) + 1
            arrivals.append(now)
            return True, len(arrivals)
