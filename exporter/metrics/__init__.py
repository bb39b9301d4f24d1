"""Metric sources for ``/metrics``: the cached stream/region store and the health registry.

Composed in one explicit place (:func:`metrics_source`, called from ``cli.py``) rather than
registered by import side effects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore

__all__ = ["HealthMetrics", "MetricStore", "metrics_source"]


def metrics_source(
    store: MetricStore, health: HealthMetrics
) -> Callable[[bool], Sequence[bytes | memoryview]]:
    """The ``/metrics`` body as parts: the store's cached text, then the health families.

    With gzip, one member: the store's cached compressed blocks, then health's few lines
    deflated per scrape (:func:`exporter.metrics.exposition.gzip_append_parts`), so the store's
    text is never recompressed per scrape and clients that read only one member get everything.
    Parts are never joined: a scrape costs no copy of the cached (up to 100 MB) body.
    """

    def body(gzipped: bool) -> Sequence[bytes | memoryview]:
        if gzipped:
            return store.render_gzip_parts(health.render())
        return (store.render(), health.render())

    return body
