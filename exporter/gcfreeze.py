"""Keep the cyclic garbage collector off the detection state, so a full collection stays short.

At 100k streams the detection state (streams, publishers, diff state, parse caches) is ~500k
objects that the GC tracks but that never form cycles: they are freed by reference counting
the moment a newer version replaces them. CPython still walks all of them on every full
collection (0.1-1 s holding the GIL), and that pause lands on whatever scrape is being served:
it is the scrape p99. ``gc.freeze()`` moves every tracked object into the permanent
generation, which collections skip; reference counting still frees frozen objects.

When: right after a poll's snapshot is applied (the new state is live, the replaced one
already freed), at most every ``interval`` seconds, and at once after a region's baseline
(where most objects appear). Before each freeze a young-generation collection (cheap: only
what is new since the last one) clears fresh cyclic garbage, so it is not frozen with the
state. Cyclic garbage that grew old before it died would stay frozen; every ``full_every``
seconds everything is unfrozen and collected once (one full pause an hour, not one a minute).
Daemon only: ``build_pipeline(freeze_gc=True)`` from ``cli``; tests leave the GC as it is.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

__all__ = ["GcFreezer"]


class GcFreezer:
    """Call after each apply (any thread): freezes the GC's view of the heap when it is time.

    Args:
        interval: least seconds between two freezes (a baseline freezes at once).
        full_every: seconds between two full collections over unfrozen objects.
        monotonic: injected clock.
    """

    def __init__(
        self,
        *,
        interval: float = 10.0,
        full_every: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval
        self._full_every = full_every
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last = -float("inf")
        self._last_full = monotonic()
        self.freezes = 0
        self.full_collections = 0

    def after_apply(self, baseline: bool) -> None:
        """One snapshot was applied; ``baseline``: the region's first (most objects are new)."""
        now = self._monotonic()
        if not baseline and now - self._last < self._interval:
            return
        if not self._lock.acquire(blocking=False):  # another worker is freezing right now
            return
        try:
            self._last = now
            if now - self._last_full >= self._full_every:
                self._last_full = now
                gc.unfreeze()
                gc.collect()
                self.full_collections += 1
            else:
                gc.collect(1)
            gc.freeze()
            self.freezes += 1
        finally:
            self._lock.release()
