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

Text (log lines, pages, error messages: small) is scrubbed of every value ever added. Vendor reply
bodies (up to megabytes, every poll) are scrubbed through ``scrub_bytes``/``contains(bytes)`` of
the values that can still appear in one: permanent secrets, and temporary ones until
``REFLECT_GRACE`` after their expiry. A reply can only reflect what its request carried, and an
expired token is no longer sent; without this the cost of scrubbing each body would grow with
every renewal (two new values every couple of hours, for the life of the process).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "REFLECT_GRACE", "SECRETS", "Redactor"]

MIN_SECRET_LENGTH = 8
REFLECT_GRACE = 3600.0
REDACTED = "<redacted>"
_REDACTED_BYTES = REDACTED.encode("ascii")


class Redactor:
    """A grow-only set of secret values with fast scrubbing of ``str`` and ``bytes``.

    Thread-safe: values are added from the event loop and renewal tasks while log lines are
    rendered from any thread. Readers work on immutable snapshot tuples, so scrubbing never
    takes the lock.

    Args:
        clock: Unix seconds, to retire expired temporary values from body scrubbing.
    """

    __slots__ = ("_bytes", "_clock", "_expiry", "_lock", "_texts", "_values")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._expiry: dict[str, float | None] = {}  # values still scanned for in bodies
        # Longest first, so a secret containing another is replaced whole.
        self._texts: tuple[str, ...] = ()
        self._bytes: tuple[bytes, ...] = ()

    def add(self, value: str | None, *, expires_at: float | None = None) -> None:
        """Remember ``value`` (ignored when None or shorter than ``MIN_SECRET_LENGTH``).

        ``expires_at``: for a temporary credential's key or token, its expiry (Unix seconds);
        ``REFLECT_GRACE`` later it is no longer looked for in vendor reply bodies (text
        scrubbing keeps it for ever).
        """
        if value is None or len(value) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value in self._expiry:  # known and still scanned for in bodies
                known = self._expiry[value]
                if known is None or (expires_at is not None and expires_at <= known):
                    return  # nothing new: permanent already, or no later expiry
            self._values.add(value)
            self._expiry[value] = expires_at
            now = self._clock()
            for old, until in list(self._expiry.items()):
                if until is not None and until + REFLECT_GRACE < now:
                    del self._expiry[old]
            self._texts = tuple(sorted(self._values, key=len, reverse=True))
            self._bytes = tuple(t.encode("utf-8") for t in sorted(self._expiry, key=len, reverse=True))

    def add_all(self, values: Iterable[str | None], *, expires_at: float | None = None) -> None:
        for value in values:
            self.add(value, expires_at=expires_at)

    def __len__(self) -> int:
        return len(self._texts)

    def scrub_text(self, text: str) -> str:
        """``text`` with every secret ever added replaced by ``<redacted>``."""
        for secret in self._texts:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """``data`` (a vendor reply) with every secret it could carry (UTF-8) replaced."""
        for secret in self._bytes:
            if secret in data:
                data = data.replace(secret, _REDACTED_BYTES)
        return data

    def contains(self, data: bytes | str) -> bool:
        """True when ``data`` holds a secret ``scrub_bytes`` / ``scrub_text`` would replace."""
        if isinstance(data, str):
            return any(secret in data for secret in self._texts)
        return any(secret in data for secret in self._bytes)

    def clear(self) -> None:
        """Forget everything (tests only: a real process never un-learns a secret)."""
        with self._lock:
            self._values.clear()
            self._expiry.clear()
            self._texts = ()
            self._bytes = ()


SECRETS = Redactor()
"""The process-wide store: every secret value the exporter has loaded, renewed ones included."""
