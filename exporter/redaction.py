"""The process-wide store of secret values, and scrubbing of any text or bytes that might carry one.

Why one process-wide store (``SECRETS``) rather than a list handed to the log chain at startup:
secrets arrive after startup (a renewed STS token, a rotated ``secret_key_file``), and every output
(log lines, vendor reply bodies before they become labels, pages, ``/events``) must scrub all of
them. Whoever loads a secret calls ``SECRETS.add(value)``; whoever writes anything out scrubs
through the same store. Values are kept for the life of the process: a superseded token reflected
by an upstream is still a credential on a page.

Values shorter than ``MIN_SECRET_LENGTH`` characters are not stored: real SecretKeys (32
characters) and tokens (hundreds) are far longer, while a short test value such as ``"key"`` would
turn every line mentioning a ``key=`` field into ``<redacted>`` soup and hide the real problem.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "SECRETS", "Redactor"]

MIN_SECRET_LENGTH = 8
REDACTED = "<redacted>"
_REDACTED_BYTES = REDACTED.encode("ascii")


class Redactor:
    """A grow-only set of secret values with fast scrubbing of ``str`` and ``bytes``.

    Thread-safe: values are added from the event loop and renewal tasks while log lines are
    rendered from any thread. Readers work on an immutable snapshot tuple, so scrubbing never
    takes the lock.
    """

    __slots__ = ("_bytes", "_lock", "_texts", "_values")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        # Longest first, so a secret containing another is replaced whole.
        self._texts: tuple[str, ...] = ()
        self._bytes: tuple[bytes, ...] = ()

    def add(self, value: str | None) -> None:
        """Remember ``value`` (ignored when None or shorter than ``MIN_SECRET_LENGTH``)."""
        if value is None or len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            texts = tuple(sorted(self._values, key=len, reverse=True))
            self._texts = texts
            self._bytes = tuple(t.encode("utf-8") for t in texts)

    def add_all(self, values: Iterable[str | None]) -> None:
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return len(self._texts)

    def scrub_text(self, text: str) -> str:
        """``text`` with every known secret replaced by ``<redacted>``."""
        for secret in self._texts:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` with every known secret (UTF-8) replaced by ``<redacted>``."""
        for secret in self._bytes:
            if secret in data:
                data = data.replace(secret, _REDACTED_BYTES)
        return data

    def contains(self, data: bytes | str) -> bool:
        """True when ``data`` holds any known secret: the cheap check before ``scrub_*``."""
        if isinstance(data, str):
            return any(secret in data for secret in self._texts)
        return any(secret in data for secret in self._bytes)

    def clear(self) -> None:
        """Forget everything (tests only: a real process never un-learns a secret)."""
        with self._lock:
            self._values.clear()
            self._texts = ()
            self._bytes = ()


SECRETS = Redactor()
"""The process-wide store: every secret value the exporter has loaded, renewed ones included."""
