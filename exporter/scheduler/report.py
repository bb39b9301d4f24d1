"""What the poll loop tells operators and health: one line per change, not one per poll.

A transient failure is a ``poll_failed`` warning each time (it should be rare); a blocked one
is said once per change at error level with the vendor edge's hint, then at debug until the
code changes or the region recovers (``poll_recovered``). ``ready`` is said once, when every
region has been polled (SPEC section 9 "Self-observability"), and again after a reload that
added regions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from exporter.config import AccountConfig
from exporter.model import RegionKey, Snapshot
from exporter.scheduler.plan import Schedule
from exporter.scheduler.poll import THROTTLED, TRANSIENT, error_class, error_hint
from exporter.scheduler.ports import Health
from exporter.tencent.errors import PollError

__all__ = ["Reporter"]

_BLOCKED_HINT = "fix the cause; polling continues every cycle and logs again when the error changes"


class Reporter:
    """Poll outcomes to health metrics and log lines, remembering each region's last error."""

    def __init__(
        self, health: Health, *, clock: Callable[[], float] = time.time, monotonic: Callable[[], float]
    ) -> None:
        self._health = health
        self._clock = clock
        self._monotonic = monotonic
        self._last_error: dict[RegionKey, str] = {}
        self._since = monotonic()
        self._ready = False
        self._log = structlog.get_logger("exporter.scheduler")

    def restart(self) -> None:
        """Polling (re)starts: ``ready`` is due again once every region has been polled."""
        self._since = self._monotonic()
        self._ready = False

    def forget(self, key: RegionKey) -> None:
        self._last_error.pop(key, None)

    def check_ready(self, keys: Sequence[RegionKey]) -> None:
        if not self._ready and self._health.all_polled():
            self._ready = True
            self._log.info(
                "ready",
                regions=len(keys),
                up=sum(1 for k in keys if k not in self._last_error),
                seconds=round(self._monotonic() - self._since, 3),
            )

    def succeeded(self, key: RegionKey, snapshot: Snapshot, watched: int) -> None:
        self._health.poll_succeeded(key, self._clock(), len(snapshot.streams))
        previous = self._last_error.pop(key, None)
        if previous is not None:
            self._log.info("poll_recovered", account=key.account, region=key.region, after=previous)
        if snapshot.scope is not None and len(snapshot.scope) < watched:
            self._log.warning(
                "poll_partial",
                account=key.account,
                region=key.region,
                queried=watched,
                answered=len(snapshot.scope),
            )

    def failed(self, key: RegionKey, exc: PollError) -> None:
        """One warning per failed poll; a blocked error is said once per change, at error."""
        self._health.poll_failed(key, exc.code)
        previous = self._last_error.get(key)
        self._last_error[key] = exc.code
        kind = error_class(exc)
        fields: dict[str, Any] = {
            "account": key.account,
            "region": key.region,
            "code": exc.code,
            "error_class": str(kind),
            "request_id": exc.request_id,
            "error": exc.message,
        }
        if kind in (TRANSIENT, THROTTLED):
            self._log.warning("poll_failed", **fields)
        elif previous != exc.code:
            self._log.error("poll_blocked", **fields, hint=error_hint(exc) or _BLOCKED_HINT)
        else:
            self._log.debug("poll_failed", **fields)

    def crashed(self, key: RegionKey) -> None:
        self._log.exception("poll_crashed", account=key.account, region=key.region)
        self._health.poll_failed(key, PollError.code)

    def late(self, key: RegionKey, reason: str) -> None:
        self._health.poll_late(key)
        self._log.warning("poll_late", account=key.account, region=key.region, reason=reason)

    def stretched(self, schedule: Schedule, account: AccountConfig) -> None:
        """At start: a schedule the budget cannot cover is stretched, and says why."""
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

    def replanned(self, old: Schedule, new: Schedule, rate: float) -> None:
        """Throttling moved the budget: the cycle stretched, or recovered."""
        self._log.warning(
            "poll_cycle_stretched" if new.cycle > old.cycle else "poll_cycle_restored",
            account=new.account,
            poll_interval=new.poll_interval,
            poll_cycle=round(new.cycle, 3),
            rate=rate,
            reason="API budget lowered after throttling" if new.stretched else "budget covers poll_interval",
        )
