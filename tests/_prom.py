"""Reading an exposition in tests: every sample keyed by (sample name, label set).

One parser for every test folder: client_python's own (which also rejects malformed text), and
a series that appears twice fails the test, since Prometheus would refuse that scrape.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "exported_names", "family_names", "sample_names", "samples", "select", "value"]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(body: bytes | str) -> Samples:
    """Every sample of ``body``; a duplicate series is an assertion error."""
    text = body.decode() if isinstance(body, bytes) else body
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    return out


def value(body: bytes | str, name: str, **labels: str) -> float | None:
    """The value of the series ``name{labels}`` (exactly those labels), None when absent."""
    return samples(body).get((name, frozenset(labels.items())))


def select(body: bytes | str, name: str, **labels: str) -> list[float]:
    """The values of every series ``name`` whose labels include ``labels``."""
    want = labels.items()
    return [v for (n, label_set), v in samples(body).items() if n == name and want <= dict(label_set).items()]


def sample_names(body: bytes | str) -> set[str]:
    """Every sample name in ``body`` (``_bucket``/``_total`` suffixes as exposed)."""
    return {name for name, _ in samples(body)}


def family_names(body: bytes | str) -> set[str]:
    """Every family name in ``body`` as the parser reports it (a counter without ``_total``)."""
    text = body.decode() if isinstance(body, bytes) else body
    return {family.name for family in text_string_to_metric_families(text)}


def exported_names() -> set[str]:
    """Names the exporter can expose: the store's families and every health sample, rendered
    after each health path has run once (what rules and dashboards may refer to)."""
    from exporter.metrics.families import ALL_FAMILIES
    from exporter.metrics.health import HealthMetrics
    from exporter.model import RegionKey

    health = HealthMetrics("test")
    key = RegionKey(account="a", region="ap-guangzhou")
    health.register(key)
    health.observe_request(key, "OK", 0.1)
    health.poll_succeeded(key, 1.0, 3)
    health.set_rate_limit("a", 20)
    health.add_rate_limit_wait("a", 0.5)
    health.set_poll_cycle(key, 15)
    health.poll_late(key)
    health.parse_anomalies(key, "duplicate_stream_name", 1)
    health.credential_refreshed("a", "ok")
    health.set_credential_expiry("a", 2.0)
    health.config_reloaded(True, 1.0)
    return set(ALL_FAMILIES) | sample_names(health.render())
