"""One account's credential kept valid: first load, background renewal, file watching, forced renewal.

Decisions:

- Renewal time. A temporary credential is renewed ``RENEW_BEFORE`` (6 min) before it expires, so
  a renewal that needs a minute of retries still lands before fewer than 5 minutes of validity
  remain (requests signed with a credential about to expire fail at the vendor). A credential
  living less than twice that (a demo's) is renewed at half its life.
- A failed renewal keeps the credential that still works, logs ``credential_refresh_failed``
  (account, source, reason: never a secret, never a traceback) and retries with exponential
  backoff from ``RETRY_FIRST`` to ``RETRY_MAX``. ``current()`` raises only once the kept
  credential has really expired.
- Files (``*_file``, the profile file, the TKE token file) are checked by stat (inode, size,
  mtime) at most once per ``FILE_CHECK_INTERVAL``, from ``current()`` and from the background
  timer; a change wakes the renewal task, which re-reads them.
- ``renew()`` always re-reads / re-fetches (used after an AuthFailure that blames the credential,
  and on SIGHUP); concurrent callers share one fetch.
- The clock is injected (Unix seconds); ``step()`` runs one iteration of the background loop, so
  tests drive renewal without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import structlog

from exporter.credentials.files import FileStamp, file_stamp
from exporter.credentials.secret import Credential, CredentialError
from exporter.credentials.sources import Loaded, Source
from exporter.redaction import SECRETS

__all__ = [
    "FILE_CHECK_INTERVAL",
    "RENEW_BEFORE",
    "RETRY_FIRST",
    "RETRY_MAX",
    "OnRefresh",
    "RenewingProvider",
    "renew_all",
]

RENEW_BEFORE = 360.0
RETRY_FIRST = 2.0
RETRY_MAX = 60.0
FILE_CHECK_INTERVAL = 5.0
_MIN_INTERVAL = 5.0  # never hammer a source that hands back the same credential

OnRefresh = Callable[[str, str, float | None], None]
"""``on_refresh(account, "ok" | "error", expiry)``: feeds the credential health metrics."""


class RenewingProvider:
    """A ``CredentialProvider`` over one ``Source``; see the module docstring for the rules."""

    def __init__(
        self,
        source: Source,
        *,
        account: str,
        clock: Callable[[], float] = time.time,
        on_refresh: OnRefresh | None = None,
    ) -> None:
        self._source = source
        self._account = account
        self._clock = clock
        self._on_refresh = on_refresh
        self._loaded: Loaded | None = None
        self._generation = 0
        self._failures = 0
        self._last_error: str | None = None
        self._renew_at: float | None = None
        self._stamps: dict[Path, FileStamp | None] = {}
        self._files_checked = float("-inf")
        self._files_changed = False
        self._lock = asyncio.Lock()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = structlog.get_logger("exporter.credentials").bind(account=account)

    def __repr__(self) -> str:
        return f"RenewingProvider(account={self._account!r}, source={self.source!r})"

    @property
    def source(self) -> str:
        return self._source.name

    @property
    def account(self) -> str:
        return self._account

    @property
    def expiry(self) -> float | None:
        return self._loaded.expiry if self._loaded is not None else None

    @property
    def renew_at(self) -> float | None:
        """When the next background renewal (or retry) is due; None: only on file change or demand."""
        return self._renew_at

    # ----- the CredentialProvider protocol -----------------------------------------------

    def current(self) -> Credential:
        self._check_files()
        loaded = self._loaded
        if loaded is None:
            raise CredentialError(self._message(self._last_error or "no credential loaded yet"))
        if loaded.expiry is not None and self._clock() >= loaded.expiry:
            why = f"renewal failing: {self._last_error}" if self._last_error else "not renewed yet"
            raise CredentialError(self._message(f"credential expired at {int(loaded.expiry)}, {why}"))
        return loaded.credential

    async def renew(self) -> Credential:
        generation = self._generation
        async with self._lock:
            if self._generation == generation:  # nobody renewed while we waited for the lock
                await self._refresh_locked()
        return self.current()

    async def start(self, *, background: bool = True) -> None:
        """First load (raises ``CredentialError`` naming account and source), then the timer task.

        ``background=False`` leaves the task out: tests drive ``step()`` with their own clock.
        """
        async with self._lock:
            await self._refresh_locked()
        if background and self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"credentials-{self._account}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ----- renewal ------------------------------------------------------------------------

    def request_renewal(self) -> None:
        """Mark the credential for re-reading and wake the task (safe from a signal handler)."""
        self._files_changed = True
        if self._wake is not None:
            self._wake.set()

    def due(self) -> bool:
        """True when the background loop should fetch now."""
        if self._files_changed:
            return True
        return self._renew_at is not None and self._clock() >= self._renew_at

    async def step(self) -> bool:
        """One background iteration: fetch when due or when a watched file changed.

        Returns True when a fetch was attempted. Failures are logged and scheduled for retry,
        never raised.
        """
        self._check_files(force=True)
        if not self.due():
            return False
        async with self._lock:
            if not self.due():
                return False
            with contextlib.suppress(CredentialError):
                await self._refresh_locked()
        return True

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            await self.step()
            now = self._clock()
            delay = FILE_CHECK_INTERVAL if self._stamps else RETRY_MAX * 10
            if self._renew_at is not None:
                delay = min(delay, max(0.0, self._renew_at - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.05))

    async def _refresh_locked(self) -> None:
        self._files_changed = False
        try:
            loaded = await self._source.load()
        except CredentialError as exc:
            self._failed(str(exc))
            raise CredentialError(self._message(str(exc))) from None
        except Exception as exc:  # a bug in a source must not kill the renewal task silently
            self._failed(f"{type(exc).__name__}")
            raise CredentialError(self._message(f"unexpected {type(exc).__name__}")) from None
        self._succeeded(loaded)

    def _succeeded(self, loaded: Loaded) -> None:
        SECRETS.add_all(loaded.credential.secret_values(), expires_at=loaded.expiry)
        previous = self._loaded
        self._loaded = loaded
        self._generation += 1
        self._failures = 0
        self._last_error = None
        self._stamps = {p: file_stamp(p) for p in loaded.files}
        self._files_checked = self._clock()
        now = self._clock()
        if loaded.expiry is None:
            self._renew_at = None
        else:
            life = max(0.0, loaded.expiry - now)
            at = loaded.expiry - min(RENEW_BEFORE, life / 2)
            self._renew_at = max(at, now + _MIN_INTERVAL)
        changed = previous is None or previous.credential != loaded.credential
        self._log.info(
            "credential_refreshed",
            source=self._source.name,
            expiry=int(loaded.expiry) if loaded.expiry is not None else None,
            changed=changed,
        )
        if self._on_refresh is not None:
            self._on_refresh(self._account, "ok", loaded.expiry)

    def _failed(self, reason: str) -> None:
        self._failures += 1
        self._last_error = reason
        retry_in = min(RETRY_MAX, RETRY_FIRST * 2 ** (self._failures - 1))
        self._renew_at = self._clock() + retry_in
        if self._loaded is not None:  # a first load that fails is reported by start()'s error
            fields: dict[str, object] = {"retry_in": retry_in}
            if self._loaded.expiry is not None:
                fields["valid_until"] = int(self._loaded.expiry)
            self._log.warning(
                "credential_refresh_failed",
                source=self._source.name,
                error=SECRETS.scrub_text(reason),
                **fields,
            )
        if self._on_refresh is not None:
            self._on_refresh(self._account, "error", self.expiry)

    def _check_files(self, *, force: bool = False) -> None:
        if not self._stamps or self._files_changed:
            return
        now = self._clock()
        if not force and now - self._files_checked < 1.0:
            return
        self._files_checked = now
        if any(file_stamp(p) != stamp for p, stamp in self._stamps.items()):
            self.request_renewal()

    def _message(self, reason: str) -> str:
        return f'account "{self._account}": credential source {self._source.name}: {reason}'


async def renew_all(providers: Iterable[object]) -> None:
    """Force a renewal of every provider (SIGHUP); failures are logged by each provider, not raised."""
    for provider in providers:
        renew = getattr(provider, "renew", None)
        if renew is not None:
            with contextlib.suppress(CredentialError):
                await renew()
