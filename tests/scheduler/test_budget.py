"""The sliding-window budget: the SPEC section 8 window property, the margin, and AIMD."""

from __future__ import annotations

import asyncio
import bisect
import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.scheduler.budget import SlidingWindowBudget, Slot
from tests._clock import ManualClock


def _max_in_window(sends: list[float], window: float) -> int:
    """Largest number of sends in any closed interval of ``window`` seconds, wherever it starts.

    The busiest interval can always be slid right until it starts on a send, so checking the
    intervals that start at each send is exhaustive.
    """
    ordered = sorted(sends)
    return max(
        (bisect.bisect_right(ordered, start + window) - i for i, start in enumerate(ordered)), default=0
    )


def _simulate(budget: SlidingWindowBudget, clock: ManualClock, arrivals: list[float]) -> list[float]:
    """Callers arrive at the given gaps; each sends once its reserved delay has passed."""
    sends = []
    for gap in arrivals:
        clock.now += gap
        sends.append(clock.now + budget.reserve())
    return sends


class TestWindowProperty:
    @settings(max_examples=200, deadline=None)
    @given(
        rate=st.integers(min_value=1, max_value=40),
        arrivals=st.lists(
            st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1.5, allow_nan=False)),
            min_size=1,
            max_size=300,
        ),
    )
    def test_no_one_second_window_holds_more_than_rate(self, rate: int, arrivals: list[float]) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(rate, clock=clock)
        sends = _simulate(budget, clock, arrivals)
        assert _max_in_window(sends, 1.0) <= rate

    @settings(max_examples=100, deadline=None)
    @given(
        rate=st.integers(min_value=2, max_value=30),
        arrivals=st.lists(st.floats(min_value=0.0, max_value=0.3, allow_nan=False), min_size=1, max_size=200),
        throttles=st.lists(st.booleans(), min_size=1, max_size=200),
    )
    def test_window_holds_while_the_rate_moves(
        self, rate: int, arrivals: list[float], throttles: list[bool]
    ) -> None:
        """AIMD changes N mid-stream; the configured rate must still never be exceeded."""
        clock = ManualClock()
        budget = SlidingWindowBudget(rate, clock=clock)
        sends = []
        for gap, throttled in zip(arrivals, throttles * (len(arrivals) // len(throttles) + 1), strict=False):
            clock.now += gap
            sends.append(clock.now + budget.reserve())
            _ = budget.on_throttled() if throttled else budget.on_success()
        assert _max_in_window(sends, 1.0) <= rate

    def test_a_token_bucket_burst_pattern_is_refused(self) -> None:
        """The pattern a burst=rate bucket allows: N at the end of a second, N at the start of the next."""
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock)
        clock.now = 1000.99
        first = [clock.now + budget.reserve() for _ in range(20)]
        clock.now = 1001.01
        second = [clock.now + budget.reserve() for _ in range(20)]
        assert first == [1000.99] * 20
        # The 21st request waits for the first one's window (plus margin) to pass.
        assert min(second) == pytest.approx(1000.99 + 1.0 + 0.05)
        assert _max_in_window(first + second, 1.0) == 20

    def test_a_burst_within_the_rate_goes_out_at_once(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock)
        assert [budget.reserve() for _ in range(20)] == [0.0] * 20
        assert budget.reserve() == pytest.approx(1.05)

    def test_slots_are_handed_out_in_order(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(2, clock=clock)
        delays = [budget.reserve() for _ in range(6)]
        assert delays == sorted(delays)
        assert delays == pytest.approx([0, 0, 1.05, 1.05, 2.1, 2.1])


class TestMargin:
    @pytest.mark.parametrize("margin", [0.0, 0.05, 0.2])
    def test_margin_is_added_to_every_window(self, margin: float) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(5, margin=margin, clock=clock)
        for _ in range(5):
            budget.reserve()
        assert budget.reserve() == pytest.approx(1.0 + margin)

    def test_margin_survives_arrival_jitter_up_to_its_size(self) -> None:
        """Server arrivals may each be late by up to the margin; the server still sees <= rate."""
        clock = ManualClock()
        budget = SlidingWindowBudget(10, margin=0.05, clock=clock)
        sends = _simulate(budget, clock, [0.013] * 300)
        # Worst case for the server: every Nth send early, the others late, by up to the margin.
        arrivals = [s + (0.0 if i % 10 == 0 else 0.049) for i, s in enumerate(sends)]
        assert _max_in_window(arrivals, 1.0) <= 10

    def test_capacity_accounts_for_the_margin(self) -> None:
        assert SlidingWindowBudget(20, margin=0.05).capacity == pytest.approx(20 / 1.05)

    def test_sub_one_rate_paces_single_sends(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(0.5, margin=0.0, clock=clock, min_rate=0.5)
        assert [budget.reserve() for _ in range(3)] == pytest.approx([0.0, 2.0, 4.0])


class TestAimd:
    def test_throttle_halves_and_successes_recover_one_per_window(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock, increase=2.0)
        assert budget.on_throttled()
        assert budget.effective_rate == 10
        # Within the same window nothing recovers.
        clock.now += 0.5
        assert not budget.on_success()
        steps = []
        for _ in range(8):
            clock.now += 1.0
            budget.on_success()
            steps.append(budget.effective_rate)
        assert steps == [12, 14, 16, 18, 20, 20, 20, 20]

    def test_a_burst_of_throttles_halves_once_per_window(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock)
        results = [budget.on_throttled() for _ in range(10)]
        assert results[0] and not any(results[1:])
        assert budget.effective_rate == 10
        clock.now += 1.0
        budget.on_throttled()
        assert budget.effective_rate == 5

    def test_throttles_of_requests_sent_before_the_decrease_are_stale(self) -> None:
        """Requests paced at the old rate come back throttled later; they must not halve again."""
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock)
        sent_early = clock.now
        clock.now += 0.1
        assert budget.on_throttled(sent_at=sent_early)
        clock.now += 2.0  # long after: the window guard alone would allow another halving
        assert not budget.on_throttled(sent_at=sent_early + 0.05)
        assert budget.effective_rate == 10
        # A request sent at the lowered rate that is still throttled does count.
        assert budget.on_throttled(sent_at=clock.now - 0.01)
        assert budget.effective_rate == 5

    def test_default_recovery_is_a_tenth_of_the_limit(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock)
        budget.on_throttled()
        clock.now += 1.0
        budget.on_success()
        assert budget.effective_rate == 12

    def test_never_below_the_floor(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock, min_rate=2.0)
        for _ in range(10):
            clock.now += 1.0
            budget.on_throttled()
        assert budget.effective_rate == 2.0

    def test_lowered_rate_spaces_sends(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock)
        budget.on_throttled()
        delays = [budget.reserve() for _ in range(11)]
        assert delays[:10] == [0.0] * 10
        assert delays[10] == pytest.approx(1.05)

    def test_a_throttle_right_after_a_recovery_step_still_decreases(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(20, clock=clock, increase=1.0)
        budget.on_throttled()
        clock.now += 1.0
        assert budget.on_success()
        clock.now += 0.1
        assert budget.on_throttled()
        assert budget.effective_rate == pytest.approx(5.5)


def test_acquire_sleeps_for_the_reserved_delay() -> None:
    budget = SlidingWindowBudget(40, margin=0.0, window=0.05)  # 2 per 50 ms

    async def main() -> list[float]:
        waits = []
        for _ in range(3):
            async with budget.request() as slot:
                waits.append(slot.waited)
        return waits

    waits = asyncio.run(main())
    assert waits[0] == 0.0 and waits[1] == 0.0
    assert 0.0 < waits[2] <= 0.05 + 1e-2


async def test_acquire_waits_for_a_reply_and_gives_back_a_cancelled_slot() -> None:
    budget = SlidingWindowBudget(50, margin=0.0, window=0.02)  # 1 per 20 ms

    first = await budget.acquire()
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0.06)  # far beyond the window: only the missing reply blocks it
    assert not waiter.done()
    budget.release(first)
    second = await asyncio.wait_for(waiter, 1.0)
    assert second.waited >= 0.06
    budget.release(second)
    # A waiter cancelled before sending leaves no trace.
    third = await budget.acquire()
    cancelled = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0.01)
    cancelled.cancel()
    budget.release(third)
    await asyncio.sleep(0.03)
    fourth = await asyncio.wait_for(budget.acquire(), 0.01)  # not queued behind a ghost
    assert fourth.waited == 0.0


class TestLatency:
    """Arrivals anywhere between send and reply: the server's view under network delay."""

    @staticmethod
    def _run(
        rate: int, gaps: list[float], latencies: list[float], fractions: list[float]
    ) -> tuple[int, list[float]]:
        clock = ManualClock()
        budget = SlidingWindowBudget(rate, clock=clock)
        queue: list[tuple[float, int, str, int]] = []
        seq = 0

        def at(when: float, action: str, i: int) -> None:
            nonlocal seq
            seq += 1
            heapq.heappush(queue, (when, seq, action, i))

        t = clock.now
        for i, gap in enumerate(gaps):
            t += gap
            at(t, "plan", i)
        slots: dict[int, Slot] = {}
        sends: dict[int, float] = {}
        blocked: list[int] = []
        while queue:
            when, _, action, i = heapq.heappop(queue)
            clock.now = max(clock.now, when)
            if action == "plan":
                slots[i] = budget.plan()
                at(slots[i].at, "try", i)
            elif action == "try":
                delay = budget.try_send(slots[i])
                if delay is None:
                    blocked.append(i)
                elif delay > 0:
                    at(clock.now + delay, "try", i)
                else:
                    sends[i] = clock.now
                    at(clock.now + latencies[i % len(latencies)], "reply", i)
                    for j in blocked:  # the next in line may go now
                        at(clock.now, "try", j)
                    blocked.clear()
            else:
                budget.release(slots[i])
                for j in blocked:
                    at(clock.now, "try", j)
                blocked.clear()
        arrivals = [sends[i] + fractions[i % len(fractions)] * latencies[i % len(latencies)] for i in sends]
        return len(sends), arrivals

    @settings(max_examples=150, deadline=None)
    @given(
        rate=st.integers(min_value=1, max_value=25),
        gaps=st.lists(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), min_size=1, max_size=150),
        latencies=st.lists(st.floats(min_value=0.0, max_value=2.5, allow_nan=False), min_size=1, max_size=20),
        fractions=st.lists(st.floats(min_value=0.0, max_value=1.0, allow_nan=False), min_size=1, max_size=20),
    )
    def test_no_window_of_arrivals_exceeds_the_rate(
        self, rate: int, gaps: list[float], latencies: list[float], fractions: list[float]
    ) -> None:
        sent, arrivals = self._run(rate, gaps, latencies, fractions)
        assert sent == len(gaps)  # every request went out eventually
        assert _max_in_window(arrivals, 1.0) <= rate

    def test_the_loopback_failure_case(self) -> None:
        """What the simulator caught: a first burst delayed ~1 s by TCP connect retries."""
        rate = 20
        latencies = [1.0] * 10 + [0.002] * 30  # ten of the first burst are late
        fractions = [0.99] * 10 + [0.5] * 30
        sent, arrivals = self._run(rate, [0.0] * 40, latencies, fractions)
        assert sent == 40
        assert _max_in_window(arrivals, 1.0) <= rate


class TestSpare:
    def test_spare_sends_keep_room_for_regular_requests(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(8, margin=0.0, clock=clock)

        async def main() -> list[Slot | None]:
            return [await budget.acquire_spare(clock.now, poll=0.0) for _ in range(8)]

        got = asyncio.run(main())
        sent = [slot for slot in got if slot is not None]
        assert len(sent) == 6  # 8 per window, a quarter (2) kept free
        assert budget.spare() == 2
        for slot in sent:
            budget.release(slot)
        assert budget.reserve() == 0.0  # a regular request still goes out at once

    def test_spare_never_jumps_the_queue(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(5, margin=0.0, clock=clock)
        queued = budget.plan()  # a regular request waiting its turn

        async def main() -> Slot | None:
            return await budget.acquire_spare(clock.now, poll=0.0)

        assert asyncio.run(main()) is None
        assert budget.try_send(queued) == 0.0

    def test_nothing_before_the_deadline_means_none_and_nothing_held(self) -> None:
        clock = ManualClock()
        budget = SlidingWindowBudget(2, margin=0.0, clock=clock)
        held = [budget.reserve() for _ in range(2)]
        assert held == [0.0, 0.0]

        async def main() -> Slot | None:
            return await budget.acquire_spare(clock.now, poll=0.005)

        assert asyncio.run(main()) is None
        assert budget.spare() == 0
