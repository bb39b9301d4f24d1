"""The per-account request budget: a sliding window over requests, with AIMD on throttling.

Why a sliding window and not a token bucket: the vendor counts arrivals in any one-second
window (SPEC section 8). A bucket whose burst equals the rate lets a full burst go out at the
end of one second and another at the start of the next: almost twice the rate inside one
window. Here a request may only go out when fewer than ``N`` earlier requests could still
share a window with it.

Why the window runs over *send-to-reply* intervals, not just send times: the server counts
arrivals, and an arrival lies somewhere between our send and the reply. A request whose TCP
connect is retried, or that waits in a proxy, arrives late and can land in the next second's
window next to requests sent a full second after it. So an earlier request counts against a
new send while it is in flight, and after its reply until ``span + margin`` has passed since
that reply. Then no interval of ``span`` seconds can hold more than ``N`` arrivals, whatever
the latency (the proof is in ``_earliest``). With instant replies this is exactly a sliding
window over send times.

Slots are planned in call order (``plan``), so concurrent callers queue fairly and the
arithmetic needs no lock on the event loop; each one is checked again, pessimistically, at
the moment it is to be sent (``try_send``). The budget does no I/O and reads time only
through the injected monotonic clock; ``plan``/``try_send``/``release`` and ``reserve`` are
synchronous, so tests drive them with a fake clock and no sleeping.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

__all__ = ["SlidingWindowBudget", "Slot"]


@dataclass(eq=False, slots=True)
class Slot:
    """One request's place in the budget.

    ``at`` is the planned (then actual) send time, ``done`` the time its reply came (``None``
    while planned or in flight), ``waited`` how long the caller waited for it.
    """

    at: float
    done: float | None = None
    sent: bool = False
    waited: float = 0.0
    wake: asyncio.Event | None = field(default=None, repr=False)  # set when it may try again

    @property
    def end(self) -> float | None:
        """The latest moment its arrival can have happened; ``None`` while unknown."""
        return None if self.done is None else max(self.at, self.done)


class SlidingWindowBudget:
    """At most ``effective_rate`` requests in any ``window``-second interval, for one account.

    Args:
        rate: the configured ``rate_limit`` (requests per second); the ceiling AIMD recovers to.
        window: the length of the interval the vendor counts over.
        margin: extra spacing added to every window, for jitter between our send and their
            arrival.
        clock: monotonic seconds; injected so tests can step time instead of sleeping.
        min_rate: AIMD never decreases below this.
        increase: requests/second regained per throttle-free window with a success (additive);
            default a tenth of ``rate`` (at least 1), so a halved budget is back in ~5 windows.
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
        increase: float | None = None,
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
        self._increase = float(increase) if increase is not None else max(1.0, self._rate / 10)
        self._decrease = float(decrease)
        self._effective = self._rate
        # Sent requests still relevant to the window (in flight, or replied within a span),
        # and planned ones waiting their turn, strictly first come first served. Only the head
        # of the queue may send, so it is checked against ``_sent`` alone: at most ~N slots,
        # however many requests are queued behind it.
        self._sent: deque[Slot] = deque()
        self._queue: deque[Slot] = deque()
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
        """Seconds until a new request could be sent, planning nothing (optimistic)."""
        now = self._clock()
        return max(0.0, self._optimistic(now) - now)

    def _optimistic(self, now: float) -> float:
        """When a request planned now would go out if every reply came at once (a hint only)."""
        count, _ = self._shape()
        tail = list(self._sent)[-count:] + list(self._queue)[-count:]
        at = self._earliest(tail, now, pessimistic=False)
        return now if at is None else at

    def _earliest(self, before: Iterable[Slot], now: float, *, pessimistic: bool) -> float | None:
        """Earliest time >= ``now`` a request may be sent, given the requests planned before it.

        Soundness: take any ``span``-long interval holding the arrivals of a set of requests,
        and ``j`` the one of them sent last. Every other one was planned before ``j``, and at
        ``j``'s send time it was in flight or had replied at most ``span`` earlier (its arrival
        is in the interval, and its reply after its arrival). Such requests are exactly the
        ones counted here, and ``j`` waits until fewer than ``N`` of them remain: the interval
        holds at most ``N`` arrivals. The margin adds a safety gap on top.

        ``pessimistic`` counts requests still in flight as never ending (``None`` is returned
        when ``N`` of them block); optimistic planning pretends they end at their send time.
        """
        count, span = self._shape()
        gap = span + self._margin
        ends: list[float] = []
        inflight = 0
        for slot in before:
            end = slot.end
            if end is None:
                if pessimistic:
                    inflight += 1
                    continue
                end = slot.at
            ends.append(end)
        room = count - 1 - inflight  # earlier requests that may still share the window
        if room < 0:
            return None
        if len(ends) <= room:
            return now
        ends.sort(reverse=True)
        return max(now, ends[room] + gap)

    def _prune(self, now: float) -> None:
        _, span = self._shape()
        horizon = now - span - self._margin
        while self._sent:
            end = self._sent[0].end
            if end is None or end > horizon:
                break
            self._sent.popleft()

    def plan(self) -> Slot:
        """Queue a request; ``at`` is a hint of when it may go out (``try_send`` decides).

        The slot counts against later requests from when it is sent until ``window + margin``
        after ``release``.
        """
        now = self._clock()
        slot = Slot(at=self._optimistic(now))
        self._queue.append(slot)
        return slot

    def try_send(self, slot: Slot) -> float | None:
        """Check a planned slot at send time: ``0.0`` (now marked sent), seconds to wait, or
        ``None`` when it must wait for a ``release`` or for the requests queued before it."""
        if not self._queue or self._queue[0] is not slot:
            return None
        now = self._clock()
        self._prune(now)
        at = self._earliest(self._sent, now, pessimistic=True)
        if at is None:
            return None
        if at > now:
            slot.at = at
            return at - now
        slot.at = now
        slot.sent = True
        self._queue.popleft()
        self._sent.append(slot)
        self._wake_head()
        return 0.0

    def release(self, slot: Slot) -> None:
        """The request's reply came (or it failed); a slot never sent is simply forgotten."""
        if slot.sent:
            if slot.done is None:
                slot.done = self._clock()
        else:
            with suppress(ValueError):  # already forgotten
                self._queue.remove(slot)
        self._wake_head()

    def _wake_head(self) -> None:
        if self._queue and self._queue[0].wake is not None:
            self._queue[0].wake.set()

    def reserve(self) -> float:
        """Plan, send and complete a request at once; returns the delay before its send.

        The instant-reply case of the budget, for callers (and tests) that do not track
        replies: a pure sliding window over send times. It does not queue behind ``acquire``
        callers, so use one style per budget.
        """
        now = self._clock()
        self._prune(now)
        at = self._earliest(self._sent, now, pessimistic=False)
        at = now if at is None else at
        self._sent.append(Slot(at=at, done=at, sent=True))
        return at - now

    async def acquire(self) -> Slot:
        """Wait until a request may go out; the caller must ``release`` the slot after the reply.

        Cancellation while waiting gives the slot back. ``Slot.waited`` is the time spent here.
        """
        started = self._clock()
        slot = self.plan()
        first = True
        try:
            while True:
                delay = self.try_send(slot)
                if delay == 0.0:
                    slot.waited = 0.0 if first else max(0.0, self._clock() - started)
                    return slot
                first = False
                if delay is None:
                    slot.wake = asyncio.Event()
                    await slot.wake.wait()
                    slot.wake = None
                else:
                    await asyncio.sleep(delay)
        except BaseException:
            self.release(slot)
            raise

    def spare(self) -> int:
        """Sends the window would still take right now, before any reserve (0 when full)."""
        now = self._clock()
        self._prune(now)
        count, span = self._shape()
        gap = span + self._margin
        used = sum(1 for slot in self._sent if slot.end is None or slot.end + gap > now)
        return max(0, count - used)

    async def acquire_spare(
        self, deadline: float, *, reserve: float = 0.25, poll: float = 0.02
    ) -> Slot | None:
        """Like :meth:`acquire`, but only with budget that regular requests do not need.

        For low-priority requests (drop confirmations by name). One goes out only while no
        :meth:`acquire` caller is queued AND the window keeps ``reserve`` of its sends free
        after it (at least one, when the window holds more than one), so a regular poll of
        another region always finds room at once. Returns ``None`` (nothing sent, nothing
        held) when no spare room appears before the monotonic ``deadline``.
        """
        started = self._clock()
        while True:
            count, _ = self._shape()
            keep = min(count - 1, max(1, math.ceil(count * reserve)))
            if not self._queue and self.spare() > keep:
                slot = self.plan()
                if self.try_send(slot) == 0.0:
                    slot.waited = max(0.0, self._clock() - started)
                    return slot
                self.release(slot)  # never sent: simply forgotten
            wait = max(poll, self._next_leave() - self._clock())
            if self._clock() + wait >= deadline:
                return None
            await asyncio.sleep(wait)

    def _next_leave(self) -> float:
        """When the next replied request leaves the window (a waiter need not look before)."""
        _, span = self._shape()
        gap = span + self._margin
        ends = [slot.end + gap for slot in self._sent if slot.end is not None]
        return min(ends) if ends else -math.inf

    @asynccontextmanager
    async def request(self) -> AsyncIterator[Slot]:
        """``async with budget.request() as slot:`` send inside; released on exit, however it ends."""
        slot = await self.acquire()
        try:
            yield slot
        finally:
            self.release(slot)

    def on_throttled(self, sent_at: float | None = None) -> bool:
        """The vendor said RequestLimitExceeded: halve the rate, once per episode.

        Requests already on their way (or with slots reserved) when the rate was lowered were
        paced at the old rate; their throttles say nothing new. So a throttle of a request
        sent before the last decrease (``sent_at``, on this budget's clock) is ignored, and
        decreases are at least one window apart. Without this, one burst of throttles would
        crash the rate to the floor. Returns whether the effective rate changed.
        """
        now = self._clock()
        if sent_at is not None and sent_at < self._last_decrease:
            return False
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
