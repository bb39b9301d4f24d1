"""Secret files: read safely, and notice when they change.

Why stat before reading and open with ``O_NONBLOCK``: a ``*_file`` path pointing at a FIFO would
block the exporter forever on ``open()``, and one pointing at ``/dev/zero`` or a huge file would
read until memory runs out. Only regular files up to ``MAX_SECRET_FILE_BYTES`` are read.

``*_file`` contents are stripped of surrounding whitespace, as Prometheus does for its ``*_file``
settings (a trailing newline from ``echo`` or a Kubernetes secret must not become part of the key).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from exporter.credentials.secret import Secret, SecretFileError

__all__ = ["MAX_SECRET_FILE_BYTES", "FileStamp", "file_stamp", "read_secret_file"]

MAX_SECRET_FILE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class FileStamp:
    """What changes when a file is rewritten or replaced (Kubernetes swaps a symlink: new inode)."""

    inode: int
    device: int
    size: int
    mtime_ns: int


def file_stamp(path: Path) -> FileStamp | None:
    """The file's current stamp (following symlinks), or None when it cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return FileStamp(inode=st.st_ino, device=st.st_dev, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _read_bounded(path: Path) -> bytes:
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SecretFileError(f'cannot read "{path}": {exc.strerror or type(exc).__name__}') from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretFileError(f'"{path}" is {_kind(st.st_mode)}, not a regular file')
    if st.st_size > MAX_SECRET_FILE_BYTES:
        raise SecretFileError(f'"{path}" is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB')
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO between stat and open, open returns at once.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SecretFileError(f'cannot read "{path}": {exc.strerror or type(exc).__name__}') from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SecretFileError(f'"{path}" is not a regular file')
        raw = os.read(fd, MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(f'cannot read "{path}": {exc.strerror or type(exc).__name__}') from None
    finally:
        os.close(fd)
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise SecretFileError(f'"{path}" is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB')
    return raw


def read_secret_file(path: Path) -> Secret:
    """Read a secret file, stripped of surrounding whitespace as Prometheus ``*_file`` settings are.

    Raises:
        SecretFileError: missing, not a regular file, over 64 KiB, unreadable, not UTF-8, or empty
            after stripping. The message names the path and never quotes the content (not even
            the bad byte a ``UnicodeDecodeError`` would show).
    """
    raw = _read_bounded(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretFileError(f'"{path}" is not valid UTF-8') from None
    text = text.strip()
    if not text:
        raise SecretFileError(f'"{path}" is empty')
    return Secret(text)
