"""The web server's own metrics, as a prometheus_client collector for the health registry.

The server counts on its loop thread (plain integers, see ``connection.Counters``); this
collector reads them at scrape time, so the hot path never touches a metric object. The
composition root registers it next to the other self-metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .server import WebServer

__all__ = ["WebCollector"]

_P = "tencent_live_http_"


class WebCollector(Collector):
    """``tencent_live_http_connections_{open,max}``, ``..._connections_rejected_total``,
    ``..._requests_shed_total``, ``..._timeouts_total{phase}``."""

    def __init__(self, server: WebServer) -> None:
        self._server = server

    def collect(self) -> Iterable[Metric]:
        counters = self._server.counters
        yield GaugeMetricFamily(_P + "connections_open", "Client connections open now.", value=counters.open)
        yield GaugeMetricFamily(
            _P + "connections_max",
            "Client connections served at once; more are refused (fits the open-files limit).",
            value=self._server.max_connections,
        )
        yield CounterMetricFamily(
            _P + "connections_rejected",
            "Client connections refused at once because connections_max were open.",
            value=counters.rejected,
        )
        yield CounterMetricFamily(
            _P + "requests_shed",
            "Requests refused at once (503) because too many basic-auth checks were already waiting.",
            value=counters.shed,
        )
        timeouts = CounterMetricFamily(
            _P + "timeouts",
            "Connections closed for missing a deadline: TLS handshake, request head, or response write.",
            labels=["phase"],
        )
        for phase, count in sorted(counters.timeouts.items()):
            timeouts.add_metric([phase], count)
        yield timeouts
