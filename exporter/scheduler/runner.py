"""The poll loop's front: which region is polled when, and what follows a poll.

With ``cli.py`` this is the one place that reaches across the chain; each job lives in its
own module: ``poll.py`` (one request: budget, client, retries, throttling, credential
renewal), ``apply.py`` (scrub, parse, diff, store, events under one lock), ``confirm.py``
(vanished streams asked for by name), ``jobs.py`` (APScheduler), and ``statefile.py``
(persistence and its lock). The runner decides the order: poll, apply, report, confirm
drops by name, say ``ready`` once every region has been polled, save now and then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from exporter.config import AccountConfig, Config
from exporter.diff import RegionState
from exporter.model import RegionKey, Snapshot
from exporter.scheduler.apply import Applier
from exporter.scheduler.budget import SlidingWindowBudget
from exporter.scheduler.confirm import confirm_by_name, select_names
from exporter.scheduler.jobs import Jobs
from exporter.scheduler.plan import (
    DEFAULT_HEADROOM,
    RegionPoll,
    Schedule,
    plan_account,
    start_offsets,
    strategy_for,
)
from exporter.scheduler.poll import THROTTLED, TRANSIENT, Requester, error_class, error_hint
from exporter.scheduler.ports import DescribeClient, EventSink, Health, RetryPolicy, Store
from exporter.statefile import StateFileError, StateLock, load_state, quarantine, save_state
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
    ) -> None:
        _check_clients(config, clients)
        self._health = health
        self._clock = clock
        self._monotonic = monotonic
        self._margin = budget_margin
        self._log = structlog.get_logger("exporter.scheduler")
        self._applier = Applier(config, store=store, health=health, events=events, clock=clock)
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
        self._jobs = Jobs(poll=self._poll_job, housekeeping=self.housekeeping, on_late=self._late)
        self._last_error: dict[RegionKey, str] = {}
        self._save_lock = asyncio.Lock()
        self._state_lock: StateLock | None = None
        self._state_path: Path | None = config.state_file
        self._started_at = monotonic()
        self._ready = False
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
        self._keys = _interleave(config.accounts)
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

    @property
    def persistent(self) -> bool:
        """True when a state file is in use (configured, and not locked by another exporter)."""
        return self._state_path is not None

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
            self._announce(schedule)
        offsets = start_offsets(self._keys, self._schedules, initial=0.1)
        cycles = {key: self._schedules[key.account].cycle for key in self._keys}
        self._started_at = self._monotonic()
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
        if self._state_lock is not None:
            self._state_lock.release()
            self._state_lock = None

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
        removed = [k for k in self._keys if k.account not in same or k not in _keys_of(config)]
        for key in removed:
            await self._jobs.remove(key, grace=config.request_timeout + 1.0)
            self._applier.remove(key)
            self._health.unregister(key)
            self._last_error.pop(key, None)
        for name in old_accounts.keys() - new_accounts.keys():
            self._budgets.pop(name, None)
            self._health.unregister_account(name)
        if config.state_file != self._config.state_file:
            self._log.warning("reload_needs_restart", setting="state_file", kept=str(self._config.state_file))
            config = _with_state_file(config, self._config.state_file)
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
                self._jobs.add(key, cycle, offsets[key])
            elif not math.isclose(old_cycles.get(key, cycle), cycle):
                self._jobs.reschedule(key, cycle)
        self._jobs.set_housekeeping(config.poll_interval)
        if added:
            self._ready = False
        return {"kept": len(self._keys) - len(added), "added": len(added), "removed": len(removed)}

    # ------------------------------------------------------------------------------ persistence

    def _lock_state_file(self) -> Path | None:
        """Take the state file's lock once; another exporter holding it means no persistence."""
        path = self._state_path
        if path is None or self._state_lock is not None:
            return path
        lock = StateLock(path)
        try:
            lock.acquire()
        except StateFileError as exc:
            self._log.error("state_file_locked", path=str(path), error=str(exc), persistence="off")
            self._state_path = None
            return None
        self._state_lock = lock
        return path

    async def restore(self) -> None:
        """Load region states and counters from ``state_file``; anything unusable means a fresh start.

        Restored regions diff their first poll against the restored state (no new baseline), so
        a switchover that happened while we were down is still counted. A file that fails
        validation at any depth, counters included, is moved aside and logged.
        """
        path = self._lock_state_file()
        if path is None:
            return
        try:
            saved = await asyncio.to_thread(load_state, path)
        except StateFileError as exc:
            self._log.warning("state_restore_failed", error=str(exc))
            return
        if saved is None:
            self._log.info("state_file_absent", path=str(path))
            return
        try:
            restored = await asyncio.to_thread(
                self._applier.restore, saved.regions, saved.counters, set(self._keys)
            )
        except ValueError as exc:
            aside = await asyncio.to_thread(quarantine, path)
            self._log.warning(
                "state_restore_failed",
                error=f"state file {path} is unusable (counters: {exc}); {aside}; starting fresh",
            )
            return
        self._log.info("state_restored", path=str(path), regions=restored)

    async def housekeeping(self) -> None:
        """Expire long-dropped streams and save the state file if anything changed."""
        removed = await asyncio.to_thread(self._applier.expire, self._clock())
        if removed:
            self._log.debug("streams_expired", count=removed)
        await self.save_state()

    async def save_state(self) -> None:
        """Write the state file (off the event loop) when something changed since the last save."""
        path = self._state_path
        if path is None or not self._applier.dirty:
            return
        async with self._save_lock:
            await asyncio.to_thread(self._save_sync, path)

    def _save_sync(self, path: Path) -> None:
        regions, counters = self._applier.export()
        try:
            save_state(path, regions=regions, counters=counters)
        except (StateFileError, OSError) as exc:
            self._applier.dirty = True
            self._log.error("state_save_failed", path=str(path), error=str(exc))

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
            self._check_ready()

    async def _poll(self, key: RegionKey, *, spread: bool, started: float) -> bool:
        account = self._accounts[key.account]
        schedule = self._schedules[key.account]
        deadline = started + schedule.cycle

        async def fetch(name: str | None) -> Snapshot:
            return await self._requester.fetch(key, name, deadline, lambda body: self._parse(key, body, name))

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
            self._failed(key, exc)
            return False
        except Exception:
            self._log.exception("poll_crashed", account=key.account, region=key.region)
            self._health.poll_failed(key, PollError.code)
            return False
        await asyncio.to_thread(self._applier.apply, key, snapshot)
        self._succeeded(key, snapshot)
        if snapshot.scope is None:
            await self._confirm(key, snapshot, started + schedule.cycle * DEFAULT_HEADROOM)
        return True

    async def _parse(self, key: RegionKey, body: bytes, name: str | None) -> Snapshot:
        if name is None and len(body) > _THREAD_PARSE_BYTES:
            return await asyncio.to_thread(self._applier.parse, key, body, name)
        return self._applier.parse(key, body, name)

    async def _confirm(self, key: RegionKey, full: Snapshot, deadline: float) -> None:
        """Ask for streams the full list missed by name, from spare budget (see confirm.py)."""
        limit: int = getattr(self._config, "drop_confirm_queries", 20)
        names = select_names(self._applier.vanished(key, full), limit) if limit > 0 else []
        if not names:
            return

        async def fetch(name: str) -> Snapshot:
            return await self._requester.fetch(
                key, name, deadline, lambda body: self._parse(key, body, name), spare=True
            )

        outcome = await confirm_by_name(names, fetch)
        snapshot = outcome.snapshot(account=key.account, region=key.region, clock=self._clock)
        dropped = 0
        if snapshot is not None:
            dropped = len((await asyncio.to_thread(self._applier.apply, key, snapshot, partial=True)).dropped)
        self._log.debug(
            "drops_confirmed_by_name",
            account=key.account,
            region=key.region,
            asked=len(names),
            found=len(snapshot.streams) if snapshot is not None else 0,
            dropped=dropped,
            failed=len(outcome.failed),
            no_spare_budget=len(outcome.skipped),
        )

    # ------------------------------------------------------------------------------ reporting

    def _check_ready(self) -> None:
        if not self._ready and self._health.all_polled():
            self._ready = True
            self._log.info(
                "ready",
                regions=len(self._keys),
                up=sum(1 for k in self._keys if k not in self._last_error),
                seconds=round(self._monotonic() - self._started_at, 3),
            )

    def _succeeded(self, key: RegionKey, snapshot: Snapshot) -> None:
        self._health.poll_succeeded(key, self._clock(), len(snapshot.streams))
        previous = self._last_error.pop(key, None)
        if previous is not None:
            self._log.info("poll_recovered", account=key.account, region=key.region, after=previous)
        names = self._accounts[key.account].stream_names
        if snapshot.scope is not None and len(snapshot.scope) < len(names):
            self._log.warning(
                "poll_partial",
                account=key.account,
                region=key.region,
                queried=len(names),
                answered=len(snapshot.scope),
            )

    def _failed(self, key: RegionKey, exc: PollError) -> None:
        """One warning per failed poll; a blocked error is said once per change, at error."""
        self._health.poll_failed(key, exc.code)
        previous = self._last_error.get(key)
        self._last_error[key] = exc.code
        fields: dict[str, Any] = {
            "account": key.account,
            "region": key.region,
            "code": exc.code,
            "error_class": error_class(exc),
            "request_id": exc.request_id,
            "error": exc.message,
        }
        if error_class(exc) in (TRANSIENT, THROTTLED):
            self._log.warning("poll_failed", **fields)
        elif previous != exc.code:
            hint = (
                error_hint(exc)
                or "fix the cause; polling continues every cycle and logs again when the error changes"
            )
            self._log.error("poll_blocked", **fields, hint=hint)
        else:
            self._log.debug("poll_failed", **fields)

    def _late(self, key: RegionKey, reason: str) -> None:
        self._health.poll_late(key)
        self._log.warning("poll_late", account=key.account, region=key.region, reason=reason)

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
        self._log.warning(
            "poll_cycle_stretched" if new.cycle > old.cycle else "poll_cycle_restored",
            account=account,
            poll_interval=new.poll_interval,
            poll_cycle=round(new.cycle, 3),
            rate=self._budgets[account].effective_rate,
            reason="API budget lowered after throttling" if new.stretched else "budget covers poll_interval",
        )

    def _announce(self, schedule: Schedule) -> None:
        account = self._accounts[schedule.account]
        if schedule.stretched:
            self._log.warning(
                "poll_cycle_stretched",
                account=schedule.account,
                regions=len(account.regions),
                stream_names=len(account.stream_names),
                rate_limit=account.rate_limit,
                poll_interval=schedule.poll_interval,
                poll_cycle=round(schedule.cycle, 3),
                reason=schedule.reason,
            )


def _check_clients(config: Config, clients: Mapping[str, DescribeClient]) -> None:
    missing = [a.name for a in config.accounts if a.name not in clients]
    if missing:
        raise ValueError(f"no client for account(s): {', '.join(missing)}")


def _identity(account: AccountConfig) -> tuple[object, ...]:
    """What makes two configs of an account the same vendor view: endpoint and credentials."""
    credentials = getattr(account, "credentials", None) or getattr(account, "credential", None)
    return (account.endpoint, credentials)


def _keys_of(config: Config) -> set[RegionKey]:
    return {RegionKey(a.name, r) for a in config.accounts for r in a.regions}


def _with_state_file(config: Config, path: Path | None) -> Config:
    return dataclasses.replace(config, state_file=path)


def _interleave(accounts: Sequence[AccountConfig]) -> tuple[RegionKey, ...]:
    """All keys, region-major, so start offsets alternate between accounts."""
    width = max((len(a.regions) for a in accounts), default=0)
    keys = []
    for i in range(width):
        for account in accounts:
            if i < len(account.regions):
                keys.append(RegionKey(account.name, account.regions[i]))
    return tuple(keys)
