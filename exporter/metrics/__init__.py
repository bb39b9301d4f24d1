"""Metric sources for ``/metrics``: the cached stream/region store and the health registry.

Composed in one explicit place (:func:`metrics_source`, called from ``cli.py``) rather than
registered by import side effects.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore

__all__ = ["HealthMetrics", "MetricStore", "metrics_source"]

# Health is a few dozen lines, gzipped per scrape; a low level keeps that cheap.
_HEALTH_GZIP_LEVEL = 1


def metrics_source(store: MetricStore, health: HealthMetrics) -> Callable[[bool], bytes]:
    """The ``/metrics`` body: the store's cached text, then the health families.

    With gzip the store's cached member is followed by a member for health; concatenated gzip
    members are one valid gzip stream (RFC 1952 section 2.2), so the store's member is never
    recompressed per scrape.
    """

    def body(gzipped: bool) -> bytes:
        if gzipped:
            return store.render_gzip() + gzip.compress(health.render(), _HEALTH_GZIP_LEVEL, mtime=0)
        return store.render() + health.render()

    return body
