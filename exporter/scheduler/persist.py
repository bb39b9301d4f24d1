"""The state file seen from the poll loop: lock it, restore it, save it now and then.

File format, atomic writes and validation live in :mod:`exporter.statefile`; this decides
when they happen and what a failure means. A restart without the file is a new baseline, so
nothing here may stop the exporter: an unusable file (at any depth, the store's counters
included) is moved aside and logged, and a state file locked by another exporter means this
one runs without persistence, saying so once at error level.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path

import structlog

from exporter.model import RegionKey
from exporter.scheduler.apply import Applier
from exporter.statefile import StateFileError, load_state, quarantine, save_state
from exporter.statelock import StateFileLocked, StateLock

__all__ = ["Persistence"]


class Persistence:
    """One state file for one runner; ``path`` None means persistence is off."""

    def __init__(self, path: Path | None, applier: Applier) -> None:
        self.path = path
        self._applier = applier
        self._lock: StateLock | None = None
        self._unlockable = False
        self._save_lock = asyncio.Lock()
        self._log = structlog.get_logger("exporter.scheduler")

    def _take_lock(self) -> Path | None:
        """Take the state file's lock once; another exporter holding it turns persistence off."""
        path = self.path
        if path is None or self._lock is not None or self._unlockable:
            return path
        lock = StateLock(path)
        try:
            lock.acquire()
        except StateFileLocked as exc:
            self._log.error("state_file_locked", path=str(path), error=str(exc), persistence="off")
            self.path = None
            return None
        except StateFileError as exc:
            # The directory is unusable: saves will fail and say so (state_save_failed) each time.
            self._log.warning("state_file_unlocked", path=str(path), error=str(exc))
            self._unlockable = True
            return path
        self._lock = lock
        return path

    async def restore(self, keys: Collection[RegionKey]) -> None:
        """Adopt what the file holds for ``keys``; anything unusable means a fresh start.

        Restored regions diff their first poll against the restored state (no new baseline), so
        a switchover that happened while we were down is still counted.
        """
        path = self._take_lock()
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
                self._applier.restore, saved.regions, saved.counters, set(keys)
            )
        except ValueError as exc:  # the store rejected the counters: nothing was adopted
            aside = await asyncio.to_thread(quarantine, path)
            self._log.warning(
                "state_restore_failed",
                error=f"state file {path} is unusable (counters: {exc}); {aside}; starting fresh",
            )
            return
        self._log.info("state_restored", path=str(path), regions=restored)

    async def save(self) -> None:
        """Write the file (off the event loop) when something changed since the last save."""
        path = self._take_lock()
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

    def release(self) -> None:
        """Give the lock back (after the final save)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
