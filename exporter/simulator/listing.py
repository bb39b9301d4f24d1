"""``StreamInfoList`` bytes, cached per stream and per whole list, dropped on change.

A 20,000-stream region is re-rendered stream by stream after a change, not as a whole, and an
unchanged region is served from one cached byte string. The world calls :meth:`Listings.drop`
for every stream it touches and holds its lock around every call here.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import islice
from typing import Final

import orjson

from exporter.simulator.values import SimStream

__all__ = ["LIST_LIMIT", "Listings"]

LIST_LIMIT: Final = 20_000


class Listings:
    """Rendered JSON of each region's streams; ``limit``: most groups one full list holds."""

    def __init__(self, limit: int = LIST_LIMIT) -> None:
        self.limit = limit
        self._fragments: dict[str, dict[str, bytes]] = {}
        self._joined: dict[str, bytes] = {}

    def set_limit(self, limit: int) -> None:
        self.limit = limit
        self._joined.clear()

    def drop(self, region: str, name: str) -> None:
        """Forget what was rendered for stream ``name`` and for its region's full list."""
        self._fragments.get(region, {}).pop(name, None)
        self._joined.pop(region, None)

    def render(self, region: str, table: Mapping[str, SimStream], stream_name: str | None) -> bytes:
        """An array of groups, or ``null`` when nothing matches (as the vendor sends)."""
        if stream_name is not None:
            stream = table.get(stream_name)
            return b"[" + self._fragment(region, stream) + b"]" if stream is not None else b"null"
        cached = self._joined.get(region)
        if cached is None:
            parts = [self._fragment(region, s) for s in islice(table.values(), self.limit)]
            cached = b"[" + b",".join(parts) + b"]" if parts else b"null"
            self._joined[region] = cached
        return cached

    def _fragment(self, region: str, stream: SimStream) -> bytes:
        cache = self._fragments.setdefault(region, {})
        rendered = cache.get(stream.name)
        if rendered is None:
            rendered = cache[stream.name] = orjson.dumps(stream.to_vendor())
        return rendered
