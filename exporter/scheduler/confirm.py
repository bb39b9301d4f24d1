"""Drops confirmed by name (SPEC section 9): ask for each vanished stream at once, from spare budget.

An exact ``StreamName`` reply is a judging snapshot for that one name. When streams vanish
from a full list, asking for each by name right away confirms a drop about a second after the
full poll that missed it (with ``drop_confirmations: 2``) instead of a whole cycle later, and
a name found again is simply not absent.

Bounds, so a mass vanish (an ingest outage: thousands of streams gone at once) can neither
flood the account's budget nor starve another region's full list:

- at most ``drop_confirm_queries`` names per region per cycle (0 turns this off); the rest
  wait for full lists, which confirm them as before;
- each query takes only *spare* budget (``SlidingWindowBudget.acquire_spare``): it goes out
  while no regular poll is queued, under the same sliding window, and gives up at the deadline;
- a failed query confirms nothing and resets nothing (its name is left out of ``scope``);
  none of this touches ``up``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog

from exporter.model import RegionKey, Snapshot
from exporter.scheduler.apply import Applier
from exporter.scheduler.plan import assemble_by_name
from exporter.scheduler.poll import BLOCKED, CREDENTIALS, NoSpareBudget, error_class
from exporter.tencent.errors import PollError

__all__ = ["ConfirmOutcome", "confirm_by_name", "confirm_round", "select_names"]


def select_names(vanished: Sequence[str], limit: int) -> list[str]:
    """The names to ask about this cycle: the first ``limit`` in name order (0: none)."""
    return list(vanished[: max(0, limit)])


class ConfirmOutcome:
    """What one round of by-name queries found: answered names, failures, names never sent."""

    __slots__ = ("answered", "failed", "skipped")

    def __init__(self) -> None:
        self.answered: dict[str, Snapshot] = {}
        self.failed: dict[str, str] = {}  # name -> code
        self.skipped: list[str] = []  # no spare budget before the deadline, or stopped early

    def snapshot(
        self, *, account: str, region: str, clock: Callable[[], float] = time.time
    ) -> Snapshot | None:
        """The answered names as one judging snapshot (``scope`` = answered names), or None."""
        if not self.answered:
            return None
        return assemble_by_name(account, region, self.answered, taken_at=clock())


async def confirm_by_name(
    names: Sequence[str], fetch: Callable[[str], Awaitable[Snapshot]]
) -> ConfirmOutcome:
    """Ask for every name at once; ``fetch`` takes spare budget and raises ``NoSpareBudget``.

    A blocked or credentials error would fail every name alike: the names not yet sent are
    skipped rather than spending budget on certain failures.
    """
    outcome = ConfirmOutcome()
    stop = False

    async def one(name: str) -> None:
        nonlocal stop
        if stop:
            outcome.skipped.append(name)
            return
        try:
            outcome.answered[name] = await fetch(name)
        except NoSpareBudget:
            outcome.skipped.append(name)
        except PollError as exc:
            outcome.failed[name] = exc.code
            if error_class(exc) in (BLOCKED, CREDENTIALS):
                stop = True

    await asyncio.gather(*(one(name) for name in names))
    return outcome


async def confirm_round(
    key: RegionKey,
    names: Sequence[str],
    fetch: Callable[[str], Awaitable[Snapshot]],
    applier: Applier,
    *,
    clock: Callable[[], float] = time.time,
) -> int:
    """Ask for ``names``, apply the answers as one judging snapshot; returns drops confirmed."""
    outcome = await confirm_by_name(names, fetch)
    snapshot = outcome.snapshot(account=key.account, region=key.region, clock=clock)
    dropped = 0
    if snapshot is not None:
        dropped = len((await asyncio.to_thread(applier.apply, key, snapshot, partial=True)).dropped)
    structlog.get_logger("exporter.scheduler").debug(
        "drops_confirmed_by_name",
        account=key.account,
        region=key.region,
        asked=len(names),
        found=len(snapshot.streams) if snapshot is not None else 0,
        dropped=dropped,
        failed=len(outcome.failed),
        no_spare_budget=len(outcome.skipped),
    )
    return dropped
