"""What one poll of a region sends, and how long a cycle must be for the budget to cover it.

Two polling modes share one signature (``PollStrategy``) and are chosen once per account by
``strategy_for``: the full list (one empty-body request per region) or the watch list (one
exact ``StreamName`` query per watched name). Nothing else in the scheduler asks which mode
it is in.

The schedule math lives here too, because only the planner knows how many requests a cycle
costs. When the account's budget cannot carry ``names x regions`` requests within
``poll_interval``, the cycle stretches rather than the budget breaking, and ``Schedule``
carries the reason so the runner can say so in a log line and a metric.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from exporter.model import RegionKey, Snapshot, Stream
from exporter.tencent.errors import PollError

__all__ = [
    "DEFAULT_HEADROOM",
    "Fetch",
    "PollStrategy",
    "RegionPoll",
    "Schedule",
    "assemble_by_name",
    "interleave",
    "plan_account",
    "poll_full_list",
    "poll_watch_list",
    "start_offsets",
    "strategy_for",
]

# Share of a cycle over which a region's queries are spread, and of the budget the plan may
# use: the rest is left for retries, latency and the budget's own margin.
DEFAULT_HEADROOM = 0.8

Fetch = Callable[[str | None], Awaitable[Snapshot]]
"""One budgeted, retried request: ``None`` for the full list, else an exact StreamName.

Returns the parsed reply as a Snapshot; raises ``PollError`` once retries are exhausted or the
error is not retryable.
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """The plan for one account: how often each region is polled and how queries are spaced."""

    account: str
    poll_interval: float
    cycle: float  # seconds between two polls of one region; >= poll_interval
    requests_per_cycle: int  # for the whole account
    spacing: float  # seconds between two watched-name queries of one region; 0 in full-list mode
    stretched: bool

    @property
    def reason(self) -> str:
        """Why the cycle is longer than asked, for the start-up warning; empty when it is not."""
        if not self.stretched:
            return ""
        return (
            f"{self.requests_per_cycle} requests per cycle do not fit the rate budget within "
            f"{self.poll_interval:g}s; each region is polled every {self.cycle:.1f}s instead"
        )


def plan_account(
    *,
    account: str,
    poll_interval: float,
    regions: int,
    names: int,
    capacity: float,
    headroom: float = DEFAULT_HEADROOM,
) -> Schedule:
    """Size one account's cycle against what its budget can sustain.

    Args:
        poll_interval: the configured target time between two snapshots of a region.
        regions: how many regions the account polls.
        names: watched stream names (0 for full-list mode: one request per region).
        capacity: sustained requests/second of the account's budget (``SlidingWindowBudget.capacity``).
        headroom: share of the budget and of the cycle the plan may fill.

    The cycle is the larger of ``poll_interval`` and the time the budget needs for one cycle's
    requests at ``headroom x capacity``. Each region's queries are then spread evenly over
    ``headroom x cycle``, so every poll finishes before its next run is due.
    """
    if poll_interval <= 0 or capacity <= 0 or not 0 < headroom <= 1:
        raise ValueError("poll_interval and capacity must be positive, headroom in (0, 1]")
    per_region = max(1, names)
    requests = max(0, regions) * per_region
    needed = requests / (capacity * headroom)
    stretched = needed > poll_interval
    cycle = needed if stretched else poll_interval
    spacing = cycle * headroom / per_region if names else 0.0
    return Schedule(
        account=account,
        poll_interval=poll_interval,
        cycle=cycle,
        requests_per_cycle=requests,
        spacing=spacing,
        stretched=stretched,
    )


def interleave(accounts: Sequence[tuple[str, Sequence[str]]]) -> tuple[RegionKey, ...]:
    """All (account, region) keys, region-major, so start offsets alternate between accounts."""
    width = max((len(regions) for _, regions in accounts), default=0)
    return tuple(
        RegionKey(name, regions[i]) for i in range(width) for name, regions in accounts if i < len(regions)
    )


def start_offsets(
    keys: Sequence[RegionKey], schedules: Mapping[str, Schedule], *, initial: float = 0.0
) -> dict[RegionKey, float]:
    """First-run delay per region, spreading all regions evenly over their account's cycle.

    Regions of one account share a budget; firing them in the same instant would queue them
    behind each other and bunch their requests. Keys are spread in the given order across the
    whole set, so two accounts' regions interleave instead of coinciding.
    """
    total = len(keys)
    return {key: initial + schedules[key.account].cycle * i / total for i, key in enumerate(keys)}


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionPoll:
    """Everything one poll of one region needs; built by the runner, consumed by a strategy."""

    account: str
    region: str
    names: tuple[str, ...]  # the watch list; empty in full-list mode
    spacing: float  # seconds between two name queries; 0 sends them as fast as the budget allows
    fetch: Fetch
    clock: Callable[[], float] = time.time  # wall clock: ``taken_at`` of an assembled snapshot


PollStrategy = Callable[[RegionPoll], Awaitable[Snapshot]]
"""Poll one region once: a Snapshot, or ``PollError`` when nothing usable came back."""


async def poll_full_list(poll: RegionPoll) -> Snapshot:
    """One empty-body request: the reply lists every online stream (scope ``None``)."""
    return await poll.fetch(None)


async def poll_watch_list(poll: RegionPoll) -> Snapshot:
    """One exact query per watched name, spread ``spacing`` apart, assembled into one Snapshot.

    ``scope`` is the names whose query succeeded: a name whose retries ran out is unknown this
    cycle, not absent. A non-retryable error (credentials, permissions, service state) would
    fail every name alike, so it cancels the rest of the cycle and is raised at once. When no
    query succeeded the last error is raised: the poll failed as a whole.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    results: dict[str, Snapshot] = {}
    failures: list[PollError] = []

    async def one(name: str) -> None:
        try:
            results[name] = await poll.fetch(name)
        except PollError as exc:
            if not exc.retryable:
                raise
            failures.append(exc)

    try:
        async with asyncio.TaskGroup() as group:
            for i, name in enumerate(poll.names):
                due = start + i * poll.spacing
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                group.create_task(one(name))
    except BaseExceptionGroup as grouped:
        first = _first_poll_error(grouped)
        if first is None:
            raise
        raise first from None
    if not results and failures:
        raise failures[-1]
    return _assemble(poll, results)


def _first_poll_error(grouped: BaseExceptionGroup[BaseException]) -> PollError | None:
    for exc in grouped.exceptions:
        if isinstance(exc, PollError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_poll_error(exc)
            if inner is not None:
                return inner
    return None


def _assemble(poll: RegionPoll, results: Mapping[str, Snapshot]) -> Snapshot:
    return assemble_by_name(poll.account, poll.region, results, taken_at=poll.clock())


def assemble_by_name(
    account: str, region: str, results: Mapping[str, Snapshot], *, taken_at: float
) -> Snapshot:
    """Exact-name replies as one snapshot judging exactly the names answered (``scope``).

    Names go in sorted order, so the result does not depend on reply timing. A reply that
    cannot judge its name (its group was unusable: ``unknown``, or a group without a usable
    ``StreamName``) leaves the name unknown, neither present nor absent; anomalies add up.
    """
    streams: dict[str, Stream] = {}
    unknown: set[str] = set()
    anomalies: Counter[str] = Counter()
    request_id = ""
    for name in sorted(results):
        part = results[name]
        anomalies.update(part.anomalies)
        request_id = part.request_id or request_id
        if name in part.unknown or (name not in part.streams and not part.judging_absences):
            unknown.add(name)
            continue
        streams.update((n, s) for n, s in part.streams.items() if n == name)
    return Snapshot(
        account=account,
        region=region,
        taken_at=taken_at,
        streams=streams,
        request_id=request_id,
        scope=frozenset(results),
        anomalies=dict(anomalies),
        unknown=frozenset(unknown),
    )


def strategy_for(stream_names: Sequence[str]) -> PollStrategy:
    """Pick the polling mode once, from the account's watch list."""
    return poll_watch_list if stream_names else poll_full_list
