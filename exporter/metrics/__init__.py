"""Metric sources for ``/metrics``: the cached stream/region store and the health registry.

Composed in one explicit place (:func:`metrics_source`, called from ``cli.py``) rather than
registered by import side effects.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore

__all__ = ["HealthMetrics", "MetricStore", "metrics_source"]


def metrics_source(store: MetricStore, health: HealthMetrics) -> Callable[[bool], bytes]:
    """The ``/metrics`` body: the store's cached text, then the health families.

    With gzip, one member: the store's cached compressed blocks, then health's few lines
    deflated per scrape (:func:`exporter.metrics.exposition.gzip_append`), so the store's text
    is never recompressed per scrape and clients that read only one member get everything.
    """

    def body(gzipped: bool) -> bytes:
        if gzipped:
            return store.render_gzip(health.render())
        return store.render() + health.render()

    return body
