"""The poll loop: budget -> client -> parse -> diff -> store, health, events and state file.

This is one of the two places (with ``cli.py``) allowed to reach across the whole chain. It
owns the only mutable detection state (each region's ``RegionState``) and is the only writer
of the store, the health metrics and the event log.

Threading: parse, diff and ``store.apply`` of a 20k-stream region take long enough to stall
the event loop, so they run in worker threads. Everything that mutates detection state (the
region states, the store, the event log) happens inside one worker-thread function under one
``threading.Lock``, so a poll cancelled mid-way (on stop) can never leave the store and the
diff state disagreeing, and a state-file save never sees half an update.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporter.config import AccountConfig, Config
from exporter.diff import DiffResult, DiffRules, RegionState, diff
from exporter.events import event_to_dict
from exporter.model import Event, RegionKey, Snapshot
from exporter.parse import ParseCache, parse_snapshot, parse_snapshot_cached
from exporter.scheduler.budget import SlidingWindowBudget
from exporter.scheduler.plan import (
    PollStrategy,
    RegionPoll,
    Schedule,
    plan_account,
    start_offsets,
    strategy_for,
)
from exporter.scheduler.ports import DescribeClient, EventSink, Health, RetryPolicy, Store
from exporter.statefile import StateFileError, load_state, save_state
from exporter.tencent.errors import OK_CODE, PollError, Throttled

__all__ = ["DescribeClient", "EventSink", "Health", "RetryPolicy", "Runner", "Store"]  # ports re-exported

# Replies larger than this are parsed in a worker thread; a watched name's reply is tiny and
# not worth the hop.
_THREAD_PARSE_BYTES = 64 * 1024


class Runner:
    """Polls every configured (account, region) on its schedule and feeds the results downstream.

    Args:
        config: the validated configuration.
        clients: one client per account name (built in ``cli.py`` around a shared httpx client).
        store: the metric store; health: the exporter-health metrics; events: the event ring.
        clock: wall clock (Unix seconds): snapshot times, ``last_success``, retention.
        monotonic: monotonic clock for the budgets, request durations and retry deadlines.
        retry: per-request retry policy.
        budget_margin: jitter margin of every account's sliding window (SPEC section 8).
        rng: source of retry jitter.

    Use ``await start()`` / ``await stop()`` in the daemon; tests drive ``poll_once`` or
    ``run_cycle`` directly, without the scheduler.
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
        missing = [a.name for a in config.accounts if a.name not in clients]
        if missing:
            raise ValueError(f"no client for account(s): {', '.join(missing)}")
        self._config = config
        self._clients = clients
        self._store = store
        self._health = health
        self._events = events
        self._clock = clock
        self._monotonic = monotonic
        self._retry = retry or RetryPolicy()
        self._rng = rng or random.Random()  # jitter, not crypto
        self._rules = DiffRules(drop_confirmations=config.drop_confirmations)
        self._log = structlog.get_logger(__name__)
        self._accounts: dict[str, AccountConfig] = {a.name: a for a in config.accounts}
        self._budgets = {
            a.name: SlidingWindowBudget(a.rate_limit, margin=budget_margin, clock=monotonic)
            for a in config.accounts
        }
        self._strategies: dict[str, PollStrategy] = {
            a.name: strategy_for(a.stream_names) for a in config.accounts
        }
        self._schedules = {a.name: self._plan(a.name) for a in config.accounts}
        self._keys = _interleave(config.accounts)
        self._lock = threading.Lock()  # region states + store + event log, see module docstring
        self._states: dict[RegionKey, RegionState] = {}
        self._parse_caches: dict[RegionKey, ParseCache] = {}  # full-list replies only
        self._dirty = False
        self._unexported: dict[RegionKey, int] = {}
        self._last_error: dict[RegionKey, str] = {}
        self._save_lock = asyncio.Lock()
        self._scheduler: AsyncIOScheduler | None = None
        self._job_keys: dict[str, RegionKey] = {}
        self._inflight: set[asyncio.Task[bool]] = set()
        for account in config.accounts:
            health.set_rate_limit(account.name, account.rate_limit)
        for key in self._keys:
            health.register(key)
            health.set_poll_cycle(key, self._schedules[key.account].cycle)

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
        with self._lock:
            return self._states.get(key)

    # ------------------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Restore the state file, announce stretched schedules, and start polling."""
        if self._scheduler is not None:
            raise RuntimeError("runner already started")
        await self.restore()
        self._announce()
        loop = asyncio.get_running_loop()
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        scheduler.add_listener(self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        now = datetime.now(UTC)
        offsets = start_offsets(self._keys, self._schedules, initial=0.1)
        for key in self._keys:
            cycle = self._schedules[key.account].cycle
            job_id = f"poll:{key.account}/{key.region}"
            self._job_keys[job_id] = key
            first = now + timedelta(seconds=offsets[key])
            scheduler.add_job(
                self._scheduled_poll,
                "interval",
                seconds=cycle,
                start_date=first,
                next_run_time=first,
                args=[key],
                id=job_id,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(cycle / 2)),
            )
        interval = self._config.poll_interval
        scheduler.add_job(
            self.housekeeping,
            "interval",
            seconds=interval,
            next_run_time=now + timedelta(seconds=interval),
            id="housekeeping",
            max_instances=1,
            coalesce=True,
        )
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self, grace: float = 3.0) -> None:
        """Take no new polls, let in-flight ones finish for ``grace`` seconds, cancel the rest, save.

        A cancelled poll changes nothing: its snapshot is never applied (and an apply already
        running in a worker thread completes under the lock before the final save).
        """
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()
        pending = {task for task in self._inflight if not task.done()}
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if late:
                self._log.warning("polls_cancelled", count=len(late), grace_seconds=grace)
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        await self.save_state()

    async def restore(self) -> None:
        """Load region states and counters from ``state_file``; a bad file means a fresh start.

        Restored regions diff their first poll against the restored state (no new baseline), so
        a switchover that happened while we were down is still counted.
        """
        path = self._config.state_file
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
        wanted = set(self._keys)
        await asyncio.to_thread(self._restore_sync, saved.regions, saved.counters, wanted)
        self._log.info("state_restored", path=str(path), regions=len(wanted & set(saved.regions)))

    def _restore_sync(
        self, regions: Mapping[RegionKey, RegionState], counters: Mapping[str, Any], wanted: set[RegionKey]
    ) -> None:
        """Adopt the saved states and counters, and export them at once.

        The last saved snapshot of each region goes to the store as it was (no events), so
        counters continue on the very first scrape after a restart instead of vanishing until
        the region's first poll; the first poll then diffs against that same state.
        """
        now = self._clock()
        with self._lock:
            self._store.restore_counters(dict(counters))
            for key, region_state in regions.items():
                if key not in wanted:
                    continue
                self._states[key] = region_state
                last = Snapshot(
                    account=key.account, region=key.region, taken_at=now, streams=region_state.streams
                )
                self._store.apply(
                    last, changed=frozenset(region_state.streams), dropped=frozenset(), events=()
                )
        self._store.prepare()

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
        says so in logs and metrics, instead of polls queueing behind the limiter and
        overrunning their interval.
        """
        old, new = self._schedules[account], self._plan(account)
        if math.isclose(old.cycle, new.cycle):
            return
        self._schedules[account] = new
        for key in self._keys:
            if key.account != account:
                continue
            self._health.set_poll_cycle(key, new.cycle)
            if self._scheduler is not None:
                self._scheduler.reschedule_job(
                    f"poll:{key.account}/{key.region}", trigger="interval", seconds=new.cycle
                )
        self._log.warning(
            "poll_cycle_stretched" if new.cycle > old.cycle else "poll_cycle_restored",
            account=account,
            poll_interval=new.poll_interval,
            poll_cycle=round(new.cycle, 3),
            rate=self._budgets[account].effective_rate,
            reason="API budget lowered after throttling" if new.stretched else "budget covers poll_interval",
        )

    def _announce(self) -> None:
        for schedule in self._schedules.values():
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

    def _on_job_event(self, event: JobEvent) -> None:
        key = self._job_keys.get(event.job_id)
        if key is None:
            return
        reason = "missed" if event.code == EVENT_JOB_MISSED else "previous_poll_still_running"
        self._health.poll_late(key)
        self._log.warning("poll_late", account=key.account, region=key.region, reason=reason)

    async def _scheduled_poll(self, key: RegionKey) -> None:
        """Scheduler entry point: one tracked poll, so ``stop`` can wait for or cancel it."""
        task = asyncio.create_task(self.poll_once(key, spread=True))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we ourselves are being cancelled, not just the poll by stop()

    # ------------------------------------------------------------------------------ polling

    async def run_cycle(self) -> dict[RegionKey, bool]:
        """Poll every region once, concurrently, then do the housekeeping; for tests and demos.

        Watched names are sent as fast as the budget allows (no spreading), so a test's wall
        time is the budget's, not the schedule's.
        """
        results = await asyncio.gather(*(self.poll_once(key) for key in self._keys))
        await self.housekeeping()
        return dict(zip(self._keys, results, strict=True))

    async def housekeeping(self) -> None:
        """Expire long-dropped streams and save the state file if anything changed."""
        now = self._clock()

        def expire() -> int:
            with self._lock:
                return self._store.expire(now)

        removed = await asyncio.to_thread(expire)
        if removed:
            self._log.debug("streams_expired", count=removed)
        await self.save_state()

    async def save_state(self) -> None:
        """Write the state file (off the event loop) when something changed since the last save."""
        path = self._config.state_file
        if path is None or not self._dirty:
            return
        async with self._save_lock:
            await asyncio.to_thread(self._save_sync, path)

    def _save_sync(self, path: Path) -> None:
        with self._lock:
            regions = dict(self._states)
            counters = self._store.export_counters()
            self._dirty = False
        try:
            save_state(path, regions=regions, counters=counters)
        except (StateFileError, OSError) as exc:
            self._dirty = True
            self._log.error("state_save_failed", path=str(path), error=str(exc))

    async def poll_once(self, key: RegionKey, *, spread: bool = False) -> bool:
        """Poll one region once and apply the result; True when a snapshot was applied.

        Args:
            spread: space watched-name queries over the cycle as planned (the scheduler's way);
                False sends them as fast as the budget allows.

        A failure changes nothing but ``up`` and the health counters: no gauge moves, no
        pending drop is confirmed or reset.
        """
        started = self._monotonic()
        try:
            return await self._poll(key, spread=spread)
        finally:
            self._health.observe_poll(key, self._monotonic() - started)

    async def _poll(self, key: RegionKey, *, spread: bool) -> bool:
        account = self._accounts[key.account]
        schedule = self._schedules[key.account]
        deadline = self._monotonic() + schedule.cycle

        async def fetch(name: str | None) -> Snapshot:
            return await self._fetch(key, name, deadline)

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
        await asyncio.to_thread(self._apply, key, snapshot)
        self._succeeded(key, snapshot)
        return True

    async def _fetch(self, key: RegionKey, name: str | None, deadline: float) -> Snapshot:
        """One request through the account's budget, parsed; retried while it is worth it."""
        budget = self._budgets[key.account]
        client = self._clients[key.account]
        retry = 0
        while True:
            slot = await budget.acquire()
            if slot.waited > 0:
                self._health.add_rate_limit_wait(key.account, slot.waited)
            started = self._monotonic()
            elapsed: float | None = None
            try:
                try:
                    body = await client.describe_backup_stream_list(key.region, name)
                finally:
                    budget.release(slot)  # the reply bounds the arrival: see budget.py
                elapsed = self._monotonic() - started
                snapshot = await self._parse(key, body, name)
            except PollError as exc:
                self._health.observe_request(
                    key, exc.code, elapsed if elapsed is not None else self._monotonic() - started
                )
                if isinstance(exc, Throttled):
                    self._throttled(key.account, budget, sent_at=slot.at)
                delay = self._retry.backoff(retry, self._rng)
                retry += 1
                # A retry must also fit its budget wait, or it would drag the poll past its cycle.
                ready = self._monotonic() + max(delay, budget.next_delay())
                if not exc.retryable or retry >= self._retry.attempts or ready >= deadline:
                    raise
                self._log.debug(
                    "request_retry",
                    account=key.account,
                    region=key.region,
                    stream=name,
                    code=exc.code,
                    request_id=exc.request_id,
                    retry_in=round(delay, 3),
                )
                await asyncio.sleep(delay)
                continue
            self._health.observe_request(key, OK_CODE, elapsed)
            if budget.on_success():
                self._health.set_rate_limit(key.account, budget.effective_rate)
                if budget.effective_rate >= budget.rate:
                    self._log.info("rate_limit_recovered", account=key.account, rate=budget.rate)
                self._replan(key.account)
            return snapshot

    def _throttled(self, account: str, budget: SlidingWindowBudget, *, sent_at: float) -> None:
        if budget.on_throttled(sent_at):
            self._health.set_rate_limit(account, budget.effective_rate)
            self._log.warning(
                "rate_limit_lowered", account=account, rate=budget.effective_rate, limit=budget.rate
            )
            self._replan(account)

    async def _parse(self, key: RegionKey, body: bytes, name: str | None = None) -> Snapshot:
        def parse() -> Snapshot:
            admit = self._config.streams.admits
            if name is not None:  # one watched name: nothing worth remembering
                return parse_snapshot(
                    body, account=key.account, region=key.region, taken_at=self._clock(), admit=admit
                )
            # Reuses the Stream of every group unchanged since the last reply (see parse.py).
            snapshot, self._parse_caches[key] = parse_snapshot_cached(
                body,
                account=key.account,
                region=key.region,
                taken_at=self._clock(),
                previous=self._parse_caches.get(key),
                admit=admit,
            )
            return snapshot

        if len(body) > _THREAD_PARSE_BYTES:
            return await asyncio.to_thread(parse)
        return parse()

    def _apply(self, key: RegionKey, snapshot: Snapshot) -> DiffResult:
        """Diff and store, in a worker thread, atomically with respect to saves and other regions."""
        with self._lock:
            previous = self._states.get(key)
            result = diff(previous, snapshot, self._rules)
            self._store.apply(snapshot, changed=result.changed, dropped=result.dropped, events=result.events)
            self._states[key] = result.state
            self._events.record(result.events)
            if (
                result.events
                or result.changed
                or result.dropped
                or previous is None
                or previous.absent != result.state.absent
                or previous.seen_scope != result.state.seen_scope
            ):
                self._dirty = True
        for event in result.events:
            self._log_event(event)
        self._log_anomalies(snapshot, result.changed)
        self._log_cap(key)
        # Render the scrape bodies here, in the worker thread, rather than in the next scrape.
        self._store.prepare()
        return result

    def _log_anomalies(self, snapshot: Snapshot, changed: Collection[str]) -> None:
        """Vendor groups that break the one-master rule, logged once when they change."""
        for name in sorted(changed):
            stream = snapshot.streams.get(name)
            if stream is None:
                continue
            masters = sum(1 for p in stream.publishers if p.is_master)
            problem = _group_problem(len(stream.publishers), masters)
            if problem is not None:
                self._log.info(
                    "stream_anomaly",
                    account=snapshot.account,
                    region=snapshot.region,
                    stream=name,
                    problem=problem,
                    publishers=len(stream.publishers),
                    masters=masters,
                )

    def _log_cap(self, key: RegionKey) -> None:
        """Say when max_per_region starts or stops hiding streams, not on every poll."""
        unexported = self._store.unexported(key)
        if unexported == self._unexported.get(key, 0):
            return
        self._unexported[key] = unexported
        self._log.warning(
            "per_stream_series_capped",
            account=key.account,
            region=key.region,
            unexported=unexported,
            max_per_region=self._config.streams.max_per_region,
            metric="tencent_live_region_streams_unexported",
        )

    def _log_event(self, event: Event) -> None:
        """The same fields as on /events; the log line carries its own timestamp."""
        fields = event_to_dict(event)
        del fields["time"]
        self._log.info("stream_event", **fields)

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
        """One warning per failed poll; a non-retryable error is said once per state change."""
        self._health.poll_failed(key, exc.code)
        previous = self._last_error.get(key)
        self._last_error[key] = exc.code
        fields = {
            "account": key.account,
            "region": key.region,
            "code": exc.code,
            "request_id": exc.request_id,
            "error": exc.message,
        }
        if exc.retryable:
            self._log.warning("poll_failed", **fields)
        elif previous != exc.code:
            self._log.error(
                "poll_blocked",
                **fields,
                hint="not retryable (credentials, permissions or service state); "
                "polling continues every cycle and logs again when the error changes",
            )
        else:
            self._log.debug("poll_failed", **fields)


def _interleave(accounts: Sequence[AccountConfig]) -> tuple[RegionKey, ...]:
    """All keys, region-major, so start offsets alternate between accounts."""
    width = max((len(a.regions) for a in accounts), default=0)
    keys = []
    for i in range(width):
        for account in accounts:
            if i < len(account.regions):
                keys.append(RegionKey(account.name, account.regions[i]))
    return tuple(keys)


def _group_problem(publishers: int, masters: int) -> str | None:
    if publishers == 0:
        return "no_publishers"
    if masters == 0:
        return "no_master"
    if masters > 1:
        return "several_masters"
    return None
