"""Metric sources for ``/metrics``: the cached stream/region store and the health registry.

Composed in one explicit place (:func:`metrics_source`, called from ``cli.py``) rather than
registered by import side effects.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.metrics.exposition import PlainChunks
from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore

__all__ = ["HealthMetrics", "MetricBody", "MetricStore", "PlainChunks", "metrics_source"]

#: A ``/metrics`` body: gzip as buffers of known total length, written in order; plain as
#: :class:`PlainChunks`, an iterable of chunks of at most 64 KiB (``.size`` is the total).
MetricBody = tuple[bytes, ...] | PlainChunks


def metrics_source(store: MetricStore, health: HealthMetrics) -> Callable[[bool], MetricBody]:
    """The ``/metrics`` body: the store's current generation, then the health families.

    Gzip is one member: the generation's deflated pieces as they are, then health's few lines
    deflated per scrape. Plain is the same pieces inflated in bounded chunks while they are
    sent. Either way a scrape holds a reference to a shared immutable generation, never a
    copy of the store's text (~100 MB plain, ~4 MB deflated at 100k streams).
    """

    def body(gzipped: bool) -> MetricBody:
        exposition = store.exposition()
        tail = health.render()
        return exposition.gzip(tail) if gzipped else exposition.plain(tail)

    return body
