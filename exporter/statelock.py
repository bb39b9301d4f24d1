"""One exporter per state file: an exclusive ``flock`` on a sidecar ``<path>.lock``.

Two exporters sharing one state file would each overwrite the other's history. The lock is
held for the process's lifetime; the second exporter is told who holds it and runs without
persistence (``scheduler/persist.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from exporter.statefile import StateFileError

__all__ = ["StateFileLocked", "StateLock"]


class StateFileLocked(StateFileError):
    """Another process holds the state file's lock."""


class StateLock:
    """An exclusive ``flock`` on ``<path>.lock``, held while the exporter runs.

    ``flock`` dies with the process (no stale lock after a crash or SIGKILL). The file holds
    the holder's pid, for the message the second exporter prints.
    """

    def __init__(self, path: Path) -> None:
        self.state_path = path
        self.path = Path(f"{path}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            StateFileLocked: another process holds it (the message names its pid).
            StateFileError: the lock file cannot be opened (the directory is unusable).
        """
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateFileError(f"cannot open lock file {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise StateFileLocked(
                f"state file {self.state_path} is in use by {who} (lock {self.path}); "
                "two exporters must not share one state file"
            ) from exc
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race a newcomer's open)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""
