"""The poll loop's front: which region is polled when, and what follows a poll.

With ``cli.py`` this is the one place that reaches across the chain; each job lives in its
own module: ``poll.py`` (one request: budget, client, retries, throttling, credential
renewal), ``apply.py`` (scrub, parse, diff, store, events under one lock), ``confirm.py``
(vanished streams asked for by name), ``jobs.py`` (APScheduler), and ``statefile.py``
(file format and lock) with ``persist.py`` (when to restore and save), and ``report.py`` (log
lines and health per outcome). The runner decides the order: poll, apply, report, confirm
drops by name, say ``ready`` once every region has been polled, save now and then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Callable, Mapping
from functools import partial

import structlog

from exporter.config import AccountConfig, Config
from exporter.diff import RegionState
from exporter.model import RegionKey, Snapshot
from exporter.scheduler.apply import Applier
from exporter.scheduler.budget import SlidingWindowBudget
from exporter.scheduler.confirm import confirm_round, select_names
from exporter.scheduler.jobs import Jobs
from exporter.scheduler.persist import Persistence
from exporter.scheduler.plan import (
    DEFAULT_HEADROOM,
    RegionPoll,
    Schedule,
    interleave,
    plan_account,
    start_offsets,
    strategy_for,
)
from exporter.scheduler.poll import Requester
from exporter.scheduler.ports import DescribeClient, EventSink, Health, RetryPolicy, Store
from exporter.scheduler.report import Reporter
from exporter.tencent.errors import PollError

__all__ = ["DescribeClient", "EventSink", "Health", "RetryPolicy", "Runner", "Store"]  # ports re-exported

# Replies larger than this are parsed in a worker thread; a by-name reply is tiny.
_THREAD_PARSE_BYTES = 64 * 1024


class Runner:
    """Polls every configured (account, region) on its schedule and feeds the results downstream.

    Args:
        config: the validated configuration (:meth:`reconfigure` swaps it on reload).
        clients: one client per account name (built in ``cli.py``).
        store, health, events: the parts the results go to.
        clock: wall clock (Unix seconds); monotonic: budgets, durations and deadlines.
        retry: per-request retry policy; budget_margin: jitter margin of every sliding window.
        after_apply: see :class:`~exporter.scheduler.apply.Applier`.

    The daemon uses ``await start()`` / ``await stop()``; tests and ``--demo`` may drive
    ``poll_once`` or ``run_cycle`` directly, without the scheduler.
    """

    def __init__(
        self,
        config: Config,
        *,
        clients: Mapping[str, DescribeClient],
        store: Store,
        health: Health,
        events: EventSink,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
        budget_margin: float = 0.05,
        rng: random.Random | None = None,
        after_apply: Callable[[bool], None] | None = None,
    ) -> None:
        _check_clients(config, clients)
        self._health = health
        self._clock = clock
        self._monotonic = monotonic
        self._margin = budget_margin
        self._log = structlog.get_logger("exporter.scheduler")
        self._applier = Applier(
            config, store=store, health=health, events=events, clock=clock, after_apply=after_apply
        )
        self._clients: dict[str, DescribeClient] = dict(clients)
        self._budgets: dict[str, SlidingWindowBudget] = {}
        self._requester = Requester(
            clients=self._clients,
            budgets=self._budgets,
            health=health,
            retry=retry or RetryPolicy(),
            rng=rng or random.Random(),  # jitter, not crypto
            monotonic=monotonic,
            on_rate_change=self._replan,
        )
        self._report = Reporter(health, clock=clock, monotonic=monotonic)
        self._jobs = Jobs(poll=self._poll_job, housekeeping=self.housekeeping, on_late=self._report.late)
        self._persistence = Persistence(config.state_file, self._applier)
        self._adopt(config)

    def _adopt(self, config: Config) -> None:
        """Accounts, budgets, schedules and keys of ``config`` (state and jobs are the callers')."""
        self._config = config
        self._accounts: dict[str, AccountConfig] = {a.name: a for a in config.accounts}
        for account in config.accounts:
            budget = self._budgets.get(account.name)
            if budget is None or budget.rate != account.rate_limit:
                self._budgets[account.name] = SlidingWindowBudget(
                    account.rate_limit, margin=self._margin, clock=self._monotonic
                )
                self._health.set_rate_limit(account.name, account.rate_limit)
        self._strategies = {a.name: strategy_for(a.stream_names) for a in config.accounts}
        self._schedules = {a.name: self._plan(a.name) for a in config.accounts}
        self._keys = interleave([(a.name, a.regions) for a in config.accounts])
        for key in self._keys:
            self._health.register(key)
            self._health.set_poll_cycle(key, self._schedules[key.account].cycle)

    # ------------------------------------------------------------------------------ inspection

    @property
    def keys(self) -> tuple[RegionKey, ...]:
        return self._keys

    @property
    def schedules(self) -> Mapping[str, Schedule]:
        return dict(self._schedules)

    def budget(self, account: str) -> SlidingWindowBudget:
        return self._budgets[account]

    def state(self, key: RegionKey) -> RegionState | None:
        return self._applier.state(key)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Restore the state file, announce stretched schedules, and start polling."""
        if self._jobs.running:
            raise RuntimeError("runner already started")
        await self.restore()
        for schedule in self._schedules.values():
            self._report.stretched(schedule, self._accounts[schedule.account])
        offsets = start_offsets(self._keys, self._schedules, initial=0.1)
        cycles = {key: self._schedules[key.account].cycle for key in self._keys}
        self._report.restart()
        self._jobs.start(offsets, cycles, self._config.poll_interval)

    async def stop(self, grace: float = 3.0) -> None:
        """Take no new polls, let in-flight ones finish for ``grace`` seconds, cancel the rest, save.

        A cancelled poll changes nothing: its snapshot is never applied (an apply already
        running in a worker thread completes under the lock before the final save).
        """
        cancelled = await self._jobs.stop(grace)
        if cancelled:
            self._log.warning("polls_cancelled", count=cancelled, grace_seconds=grace)
        await self.save_state()
        self._persistence.release()

    async def reconfigure(self, config: Config, clients: Mapping[str, DescribeClient]) -> dict[str, int]:
        """Apply a reloaded config (SPEC 9 "Reload"); the caller has validated all of it already.

        Regions whose account, credentials and endpoint are unchanged keep their state and
        counters; new ones start with a baseline; removed ones (and those whose account
        changed identity) leave ``/metrics``. Returns counts of kept, added and removed regions.
        """
        _check_clients(config, clients)
        old_accounts, old_keys = self._accounts, set(self._keys)
        new_accounts = {a.name: a for a in config.accounts}
        same = {
            n
            for n, a in new_accounts.items()
            if n in old_accounts and _identity(a) == _identity(old_accounts[n])
        }
        removed = [
            k
            for k in self._keys
            if k.account not in same
            or k not in {RegionKey(a.name, r) for a in config.accounts for r in a.regions}
        ]
        for key in removed:
            await self._jobs.remove(key, grace=config.request_timeout + 1.0)
            self._applier.remove(key)
            self._health.unregister(key)
            self._report.forget(key)
        for name in old_accounts.keys() - new_accounts.keys():
            self._budgets.pop(name, None)
            self._health.unregister_account(name)
        if config.state_file != self._config.state_file:
            self._log.warning("reload_needs_restart", setting="state_file", kept=str(self._config.state_file))
            config = dataclasses.replace(config, state_file=self._config.state_file)
        old_cycles = {k: self._schedules[k.account].cycle for k in self._keys}
        self._clients.clear()
        self._clients.update(clients)
        self._applier.configure(config)
        self._adopt(config)
        added = [k for k in self._keys if k not in old_keys or k in removed]
        offsets = start_offsets(added, self._schedules, initial=0.1) if added else {}
        for key in self._keys:
            cycle = self._schedules[key.account].cycle
            if key in offsets:
                self._applier.activate(key)
                self._jobs.add(key, cycle, offsets[key])
            elif not math.isclose(old_cycles.get(key, cycle), cycle):
                self._jobs.reschedule(key, cycle)
        self._jobs.set_housekeeping(config.poll_interval)
        if added:
            self._report.restart()
        return {"kept": len(self._keys) - len(added), "added": len(added), "removed": len(removed)}

    # ------------------------------------------------------------------------------ persistence

    async def restore(self) -> None:
        """Load region states and counters from ``state_file`` (see persist.py)."""
        await self._persistence.restore(self._keys)

    async def housekeeping(self) -> None:
        """Expire long-dropped streams and save the state file if anything changed."""
        removed = await asyncio.to_thread(self._applier.expire, self._clock())
        if removed:
            self._log.debug("streams_expired", count=removed)
        await self.save_state()

    async def save_state(self) -> None:
        """Write the state file when something changed since the last save."""
        await self._persistence.save()

    # ------------------------------------------------------------------------------ polling

    async def run_cycle(self) -> dict[RegionKey, bool]:
        """Poll every region once, concurrently, then do the housekeeping; for tests and demos."""
        results = await asyncio.gather(*(self.poll_once(key) for key in self._keys))
        await self.housekeeping()
        return dict(zip(self._keys, results, strict=True))

    async def _poll_job(self, key: RegionKey) -> bool:
        return await self.poll_once(key, spread=True)

    async def poll_once(self, key: RegionKey, *, spread: bool = False) -> bool:
        """Poll one region once, apply it, then confirm vanished streams by name; True when applied.

        Args:
            spread: space watched-name queries over the cycle as planned (the scheduler's way);
                False sends them as fast as the budget allows.

        A failure changes nothing but ``up`` and the health counters: no gauge moves, no
        pending drop is confirmed or reset.
        """
        started = self._monotonic()
        try:
            return await self._poll(key, spread=spread, started=started)
        finally:
            self._health.observe_poll(key, self._monotonic() - started)
            self._report.check_ready(self._keys)

    async def _poll(self, key: RegionKey, *, spread: bool, started: float) -> bool:
        account = self._accounts[key.account]
        schedule = self._schedules[key.account]
        deadline = started + schedule.cycle

        async def fetch(name: str | None) -> Snapshot:
            return await self._requester.fetch(key, name, deadline, partial(self._parse, key, name=name))

        poll = RegionPoll(
            account=key.account,
            region=key.region,
            names=account.stream_names,
            spacing=schedule.spacing if spread else 0.0,
            fetch=fetch,
            clock=self._clock,
        )
        try:
            snapshot = await self._strategies[key.account](poll)
        except PollError as exc:
            self._report.failed(key, exc)
            return False
        except Exception:
            self._report.crashed(key)
            return False
        await asyncio.to_thread(self._applier.apply, key, snapshot)
        self._report.succeeded(key, snapshot, len(account.stream_names))
        if snapshot.scope is None:
            await self._confirm(key, snapshot, started + schedule.cycle * DEFAULT_HEADROOM)
        return True

    async def _parse(self, key: RegionKey, body: bytes, *, name: str | None) -> Snapshot:
        if name is None and len(body) > _THREAD_PARSE_BYTES:
            return await asyncio.to_thread(self._applier.parse, key, body, name)
        return self._applier.parse(key, body, name)

    async def _confirm(self, key: RegionKey, full: Snapshot, deadline: float) -> None:
        """Ask for streams the full list missed by name, from spare budget (see confirm.py)."""
        names = select_names(self._applier.vanished(key, full), self._config.drop_confirm_queries)
        if names:

            async def fetch(name: str) -> Snapshot:
                parse = partial(self._parse, key, name=name)
                return await self._requester.fetch(key, name, deadline, parse, spare=True)

            await confirm_round(key, names, fetch, self._applier, clock=self._clock)
            if not full.judging_absences:
                # A list at the vendor's ceiling judged no absence, so the reply above was only
                # the first confirmation: ask once more, and a drop takes as long as after a
                # judging list instead of a whole cycle more.
                state = self._applier.state(key)
                again = [name for name in names if state is not None and name in state.absent]
                if again:
                    await confirm_round(key, again, fetch, self._applier, clock=self._clock)

    # ------------------------------------------------------------------------------ schedule

    def _plan(self, account: str) -> Schedule:
        """The account's schedule against the budget in force (lowered while throttled)."""
        settings = self._accounts[account]
        return plan_account(
            account=account,
            poll_interval=self._config.poll_interval,
            regions=len(settings.regions),
            names=len(settings.stream_names),
            capacity=self._budgets[account].capacity,
        )

    def _replan(self, account: str) -> None:
        """Stretch (or restore) the cycle when throttling moved the budget below (or back to) the plan.

        SPEC section 8: when the budget cannot cover the schedule, the schedule stretches and
        says so in logs and metrics, instead of polls queueing behind the limiter.
        """
        if account not in self._accounts:
            return
        old, new = self._schedules[account], self._plan(account)
        if math.isclose(old.cycle, new.cycle):
            return
        self._schedules[account] = new
        for key in self._keys:
            if key.account == account:
                self._health.set_poll_cycle(key, new.cycle)
                self._jobs.reschedule(key, new.cycle)
        self._report.replanned(old, new, self._budgets[account].effective_rate)


def _check_clients(config: Config, clients: Mapping[str, DescribeClient]) -> None:
    missing = [a.name for a in config.accounts if a.name not in clients]
    if missing:
        raise ValueError(f"no client for account(s): {', '.join(missing)}")


def _identity(account: AccountConfig) -> tuple[object, ...]:
    """What makes two configs of an account the same vendor view: endpoint and credentials."""
    return (account.endpoint, account.credentials)
