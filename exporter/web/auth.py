"""Basic auth and rate limiting for the web server, as exporter-toolkit's ``webHandler`` does.

Timing: a wrong username must cost what a wrong password costs, or the response time tells
an attacker which usernames exist. So the username is looked up with constant-time compares
over every configured user, and an unknown user still pays one bcrypt compare against a
dummy hash of the same cost. bcrypt is CPU-bound and holds the GIL for long stretches in
places, so one compare runs at a time (a lock), as in exporter-toolkit.

Caching: a scrape every 15 s must not pay ~70 ms of bcrypt each time, so successful checks
are remembered as an HMAC of (user, password) under a per-process random key. The password
itself is never kept, and the digest is useless outside this process. Failures are never
cached: they pay bcrypt every time, which also slows guessing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping

import bcrypt

__all__ = ["BasicAuth", "TokenBucket"]

_BCRYPT_MAX = 72  # bcrypt only ever reads 72 bytes; Go's CompareHashAndPassword truncates too


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes], *, cache_size: int = 64) -> None:
        self._users = tuple((name.encode("utf-8"), hashed) for name, hashed in users.items())
        self._dummy = _dummy_hash(users.values())
        self._bcrypt_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._cache_key = secrets.token_bytes(32)

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def cached(self, authorization: str | None) -> bool:
        """True when this header was verified before (no bcrypt); False means "call ``check``".

        Lets an event loop answer a returning scraper inline and send only cache misses,
        which pay bcrypt, to a worker thread.
        """
        credentials = _parse_basic(authorization)
        if credentials is None or not self._users:
            return False
        digest = hmac.new(self._cache_key, _frame(credentials[0]) + credentials[1], hashlib.sha256).digest()
        with self._cache_lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return True
        return False

    def check(self, authorization: str | None) -> bool:
        """True when the header carries a configured user with the right password."""
        credentials = _parse_basic(authorization)
        if credentials is None or not self._users:
            return False
        user, password = credentials
        digest = hmac.new(self._cache_key, _frame(user) + password, hashlib.sha256).digest()
        with self._cache_lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return True
        hashed = self._lookup(user)
        with self._bcrypt_lock:
            matches = bcrypt.checkpw(password[:_BCRYPT_MAX], hashed if hashed is not None else self._dummy)
        if not (matches and hashed is not None):
            return False
        with self._cache_lock:
            self._cache[digest] = None
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return True

    def _lookup(self, user: bytes) -> bytes | None:
        """The user's hash; visits every user and compares in constant time, so no early exit."""
        found: bytes | None = None
        for name, hashed in self._users:
            if hmac.compare_digest(name, user):
                found = hashed
        return found


class TokenBucket:
    """exporter-toolkit's ``rate_limit``: a token every ``interval`` seconds, at most ``burst`` saved."""

    def __init__(self, *, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self._burst), self._tokens + (now - self._last) / self._interval)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


def _parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _frame(user: bytes) -> bytes:
    """Length-prefixes the user so ("ab", "c") and ("a", "bc") never share a cache digest."""
    return len(user).to_bytes(4, "big") + user


def _dummy_hash(hashes: Iterable[bytes]) -> bytes:
    """A throwaway hash at the most common configured cost, so unknown users take as long."""
    costs = Counter(int(h[-56:-54]) for h in hashes)
    if not costs:
        return b""  # no users: check() is never reached with auth disabled
    cost = max(costs.items(), key=lambda item: (item[1], item[0]))[0]
    hashed: bytes = bcrypt.hashpw(secrets.token_bytes(16).hex().encode("ascii"), bcrypt.gensalt(rounds=cost))
    return hashed
