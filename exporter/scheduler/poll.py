"""One request of one region: budget -> client -> reaction to the error class -> parsed snapshot.

Every vendor failure lands in one class (SPEC section 9 "Error classes"), and each class has
exactly one reaction here:

- *throttled*: lower the account's budget (AIMD, :mod:`exporter.scheduler.budget`), retry;
- *transient*: retry with jittered backoff while the poll's deadline allows;
- *credentials*: ``await client.credentials.renew()`` once, then one retry; the retry takes
  budget like any request;
- *blocked*: give up at once; the runner logs ``poll_blocked`` with the error's hint.

The body is handed to a ``parse`` callable (apply.py's scrub and parse) inside the retry
loop, so a malformed reply (``BadResponse``, transient) is retried like a network error.
Nothing here touches detection state: a failure raises ``PollError`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from exporter.model import RegionKey, Snapshot
from exporter.scheduler.budget import SlidingWindowBudget, Slot
from exporter.scheduler.ports import DescribeClient, Health, RetryPolicy
from exporter.tencent.errors import OK_CODE, ErrorClass, PollError

__all__ = [
    "BLOCKED",
    "CREDENTIALS",
    "THROTTLED",
    "TRANSIENT",
    "NoSpareBudget",
    "Parse",
    "Requester",
    "error_class",
    "error_hint",
]

THROTTLED = ErrorClass.THROTTLED
TRANSIENT = ErrorClass.TRANSIENT
CREDENTIALS = ErrorClass.CREDENTIALS
BLOCKED = ErrorClass.BLOCKED

Parse = Callable[[bytes], Awaitable[Snapshot]]
"""Turns one reply body into a Snapshot, or raises ``PollError`` (``ApiError``, ``BadResponse``)."""


class NoSpareBudget(Exception):
    """A low-priority request found no spare budget before its deadline; nothing was sent."""


def error_class(exc: PollError) -> ErrorClass:
    """The error's class (one table in ``exporter.tencent.errors``)."""
    return exc.error_class


def error_hint(exc: PollError) -> str | None:
    """What an operator should check for a blocked error (clock, watch list...), when known."""
    return exc.hint or None


class Requester:
    """Sends budgeted, retried requests for every account; one per pipeline.

    Args:
        clients: one client per account name.
        budgets: one sliding-window budget per account name (shared with the planner).
        health: receives every request's outcome, budget waits and rate changes.
        on_rate_change: called with the account name after throttling lowered the budget or a
            success raised it again, so the schedule can stretch or recover.
    """

    def __init__(
        self,
        *,
        clients: Mapping[str, DescribeClient],
        budgets: Mapping[str, SlidingWindowBudget],
        health: Health,
        retry: RetryPolicy,
        rng: random.Random,
        monotonic: Callable[[], float],
        on_rate_change: Callable[[str], None],
    ) -> None:
        self.clients = clients
        self.budgets = budgets
        self._health = health
        self._retry = retry
        self._rng = rng
        self._monotonic = monotonic
        self._on_rate_change = on_rate_change
        self._log = structlog.get_logger("exporter.scheduler")

    async def fetch(
        self, key: RegionKey, name: str | None, deadline: float, parse: Parse, *, spare: bool = False
    ) -> Snapshot:
        """One request (``name`` None: the full list), parsed; retried while it is worth it.

        Args:
            deadline: monotonic time after which no retry starts (the poll's cycle).
            spare: take only budget nobody else is waiting for (drop confirmations); raises
                :class:`NoSpareBudget` when none frees up before ``deadline``.

        Raises:
            PollError: the last failure once retries are exhausted, or a blocked error at once.
        """
        budget = self.budgets[key.account]
        client = self.clients[key.account]
        retry = 0
        renewed = False
        while True:
            slot = await self._slot(budget, deadline, spare=spare)
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
                snapshot = await parse(body)
            except PollError as exc:
                self._health.observe_request(
                    key, exc.code, elapsed if elapsed is not None else self._monotonic() - started
                )
                kind = error_class(exc)
                if kind == THROTTLED:
                    self._throttled(key.account, budget, sent_at=slot.at)
                if kind == CREDENTIALS:
                    if renewed or not await self._renew(key, client):
                        raise
                    renewed = True
                    continue  # one retry with the renewed credential, through the budget
                if kind not in (THROTTLED, TRANSIENT):
                    raise
                delay = self._retry.backoff(retry, self._rng)
                retry += 1
                # A retry must also fit its budget wait, or it would drag the poll past its cycle.
                ready = self._monotonic() + max(delay, budget.next_delay())
                if retry >= self._retry.attempts or ready >= deadline:
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
                self._on_rate_change(key.account)
            return snapshot

    async def _slot(self, budget: SlidingWindowBudget, deadline: float, *, spare: bool) -> Slot:
        if not spare:
            return await budget.acquire()
        slot = await budget.acquire_spare(deadline)
        if slot is None:
            raise NoSpareBudget
        return slot

    async def _renew(self, key: RegionKey, client: DescribeClient) -> bool:
        """Force one credential renewal after a credentials-class AuthFailure; True when it worked."""
        provider: Any = getattr(client, "credentials", None)
        if provider is None:
            return False
        try:
            await provider.renew()
        except Exception as exc:  # CredentialError, or anything a source raises: the poll fails
            self._log.warning(
                "credential_renewal_failed",
                account=key.account,
                region=key.region,
                error=type(exc).__name__,
                detail=str(exc),
            )
            return False
        self._log.info("credential_renewed", account=key.account, reason="AuthFailure")
        return True

    def _throttled(self, account: str, budget: SlidingWindowBudget, *, sent_at: float) -> None:
        if budget.on_throttled(sent_at):
            self._health.set_rate_limit(account, budget.effective_rate)
            self._log.warning(
                "rate_limit_lowered", account=account, rate=budget.effective_rate, limit=budget.rate
            )
            self._on_rate_change(account)
