"""APScheduler glue: one interval job per region plus housekeeping; start, stop, reschedule, reload.

Nothing here knows what a poll does. Each region's job runs one tracked task at a time
(``max_instances=1``, ``coalesce``), so :meth:`Jobs.stop` and :meth:`Jobs.remove` can wait
for or cancel exactly the polls in flight. A late or skipped run is reported to ``on_late``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from exporter.model import RegionKey

__all__ = ["Jobs", "job_id"]

_HOUSEKEEPING = "housekeeping"


def job_id(key: RegionKey) -> str:
    return f"poll:{key.account}/{key.region}"


class Jobs:
    """The schedule of every region's poll.

    Args:
        poll: polls one region once (errors are the callee's to handle).
        housekeeping: periodic expiry and state save.
        on_late: ``(key, reason)`` when a run was missed or the previous one was still running.
    """

    def __init__(
        self,
        *,
        poll: Callable[[RegionKey], Awaitable[object]],
        housekeeping: Callable[[], Awaitable[None]],
        on_late: Callable[[RegionKey, str], None],
    ) -> None:
        self._poll = poll
        self._housekeeping = housekeeping
        self._on_late = on_late
        self._scheduler: AsyncIOScheduler | None = None
        self._keys: dict[str, RegionKey] = {}
        self._inflight: dict[RegionKey, asyncio.Task[object]] = {}

    @property
    def running(self) -> bool:
        return self._scheduler is not None

    def start(
        self, first_delays: dict[RegionKey, float], cycles: dict[RegionKey, float], housekeeping: float
    ) -> None:
        """Start polling every key after its first delay, then every cycle."""
        if self._scheduler is not None:
            raise RuntimeError("already started")
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        scheduler.add_listener(self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._scheduler = scheduler
        for key, delay in first_delays.items():
            self.add(key, cycles[key], delay)
        self.set_housekeeping(housekeeping)
        scheduler.start()

    def add(self, key: RegionKey, cycle: float, first_delay: float) -> None:
        """Schedule a (new) region: first run after ``first_delay`` seconds, then every ``cycle``."""
        if self._scheduler is None:
            return
        first = datetime.now(UTC) + timedelta(seconds=first_delay)
        self._keys[job_id(key)] = key
        self._scheduler.add_job(
            self._run,
            "interval",
            seconds=cycle,
            start_date=first,
            next_run_time=first,
            args=[key],
            id=job_id(key),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(cycle / 2)),
            replace_existing=True,
        )

    def reschedule(self, key: RegionKey, cycle: float) -> None:
        if self._scheduler is not None and job_id(key) in self._keys:
            self._scheduler.reschedule_job(job_id(key), trigger="interval", seconds=cycle)

    def set_housekeeping(self, interval: float) -> None:
        if self._scheduler is None:
            return
        self._scheduler.add_job(
            self._housekeeping,
            "interval",
            seconds=interval,
            next_run_time=datetime.now(UTC) + timedelta(seconds=interval),
            id=_HOUSEKEEPING,
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )

    async def remove(self, key: RegionKey, grace: float) -> None:
        """Unschedule a region; wait ``grace`` seconds for its poll in flight, then cancel it."""
        if self._keys.pop(job_id(key), None) is not None and self._scheduler is not None:
            self._scheduler.remove_job(job_id(key))
        task = self._inflight.get(key)
        if task is not None and not task.done():
            await _finish({task}, grace)

    async def stop(self, grace: float) -> int:
        """No new polls; wait ``grace`` seconds for the ones in flight, cancel the rest.

        Returns how many polls had to be cancelled.
        """
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()
        cancelled = await _finish({t for t in self._inflight.values() if not t.done()}, grace)
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        self._keys.clear()
        return cancelled

    async def _run(self, key: RegionKey) -> None:
        """Scheduler entry point: one tracked poll, so stop/remove can wait for or cancel it."""
        task: asyncio.Task[object] = asyncio.create_task(self._poll(key))  # type: ignore[arg-type]
        self._inflight[key] = task
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # we ourselves are being cancelled, not just the poll by stop()
        finally:
            if self._inflight.get(key) is task:
                del self._inflight[key]

    def _on_job_event(self, event: JobEvent) -> None:
        key = self._keys.get(event.job_id)
        if key is not None:
            reason = "missed" if event.code == EVENT_JOB_MISSED else "previous_poll_still_running"
            self._on_late(key, reason)


async def _finish(tasks: set[asyncio.Task[object]], grace: float) -> int:
    if not tasks:
        return 0
    _, late = await asyncio.wait(tasks, timeout=grace)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    return len(late)
