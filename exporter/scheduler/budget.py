"""The per-account request budget: a sliding window over send times, with AIMD on throttling.

Why a sliding window and not a token bucket: the vendor counts arrivals in any one-second
window (SPEC section 8). A bucket whose burst equals the rate lets a full burst go out at the
end of one second and another at the start of the next: almost twice the rate inside one
window. Here a send slot is only granted when the ``N``-th previous slot lies more than
``span + margin`` in the past, so *no* interval of ``span`` seconds, wherever it starts, can
hold more than ``N`` sends. The margin absorbs event-loop and network jitter, since the
server sees arrivals, not our send times.

Slots are handed out in call order and recorded when reserved (not when the sleep ends), so
concurrent callers queue fairly and the arithmetic needs no lock on the event loop. The
budget does no I/O and reads time only through the injected monotonic clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

__all__ = ["SlidingWindowBudget"]


class SlidingWindowBudget:
    """At most ``effective_rate`` requests in any ``window``-second interval, for one account.

    Args:
        rate: the configured ``rate_limit`` (requests per second); the ceiling AIMD recovers to.
        window: the length of the interval the vendor counts over.
        margin: extra spacing added to every window, for jitter between our send and their
            arrival.
        clock: monotonic seconds; injected so tests can step time instead of sleeping.
        min_rate: AIMD never decreases below this.
        increase: requests/second regained per throttle-free window with a success (additive).
        decrease: factor applied on a throttle (multiplicative).
    """

    def __init__(
        self,
        rate: float,
        *,
        window: float = 1.0,
        margin: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        min_rate: float = 1.0,
        increase: float = 1.0,
        decrease: float = 0.5,
    ) -> None:
        if rate <= 0 or window <= 0 or margin < 0:
            raise ValueError("rate and window must be positive, margin non-negative")
        if not 0 < decrease < 1:
            raise ValueError("decrease must be between 0 and 1")
        self._rate = float(rate)
        self._window = float(window)
        self._margin = float(margin)
        self._clock = clock
        self._min_rate = min(float(min_rate), self._rate)
        self._increase = float(increase)
        self._decrease = float(decrease)
        self._effective = self._rate
        # Only the last N slots matter; N never exceeds what the configured rate allows.
        self._slots: deque[float] = deque(maxlen=self._count_for(self._rate))
        self._last_change = -math.inf  # last decrease or increase
        self._last_decrease = -math.inf

    def __repr__(self) -> str:
        return (
            f"SlidingWindowBudget(rate={self._rate:g}, effective_rate={self._effective:g}, "
            f"window={self._window:g}, margin={self._margin:g})"
        )

    @property
    def rate(self) -> float:
        """The configured ceiling."""
        return self._rate

    @property
    def effective_rate(self) -> float:
        """The budget in force now: the ceiling, or less after throttling."""
        return self._effective

    @property
    def margin(self) -> float:
        return self._margin

    @property
    def capacity(self) -> float:
        """Requests per second this budget sustains over a long run (window and margin included).

        The planner stretches schedules against this, not against the nominal rate, so a
        planned cycle never outruns the limiter.
        """
        count, span = self._shape()
        return count / (span + self._margin)

    def _count_for(self, rate: float) -> int:
        return max(1, math.floor(rate * self._window + 1e-9))

    def _shape(self) -> tuple[int, float]:
        """How many sends may share one span, and the span's length.

        At rate >= 1/window this is ``floor(rate * window)`` sends per window. Below that a
        window would still allow one send, which is more than the rate: the span grows to
        ``1 / rate`` so single sends are paced instead.
        """
        count = self._count_for(self._effective)
        span = max(self._window, count / self._effective)
        return count, span

    def next_delay(self) -> float:
        """Seconds until a send would be allowed, without reserving it."""
        return max(0.0, self._next_slot() - self._clock())

    def _next_slot(self) -> float:
        now = self._clock()
        count, span = self._shape()
        slot = now
        if self._slots:
            # Slots are granted in order; never hand one out before an earlier one.
            slot = max(slot, self._slots[-1])
        if len(self._slots) >= count:
            slot = max(slot, self._slots[-count] + span + self._margin)
        return slot

    def reserve(self) -> float:
        """Take the next send slot and return how long the caller must wait before sending.

        Synchronous and side-effect free apart from recording the slot, so tests can reserve
        many slots with a fake clock and check the window property directly.
        """
        slot = self._next_slot()
        self._slots.append(slot)
        return max(0.0, slot - self._clock())

    async def acquire(self) -> float:
        """Reserve a slot and sleep until it; returns the seconds waited (for the wait counter)."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return delay

    def on_throttled(self) -> bool:
        """The vendor said RequestLimitExceeded: halve the rate (at most once per window).

        A burst of in-flight requests is often throttled together; counting each would crash
        the rate to the floor for one event, so decreases are one window apart. Returns whether
        the effective rate changed.
        """
        now = self._clock()
        if now - self._last_decrease < self._window:
            return False
        new = max(self._min_rate, self._effective * self._decrease)
        self._last_change = self._last_decrease = now
        changed = new != self._effective
        self._effective = new
        return changed

    def on_success(self) -> bool:
        """A request succeeded: regain ``increase`` once per window without a throttle.

        Returns whether the effective rate changed.
        """
        if self._effective >= self._rate:
            return False
        now = self._clock()
        if now - self._last_change < self._window:
            return False
        self._effective = min(self._rate, self._effective + self._increase)
        self._last_change = now
        return True
