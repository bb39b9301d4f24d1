"""A scrape never waits for a body build: it gets the previous generation's complete bytes.

At 100k streams a build (``prepare()`` after each poll) holds the store for ~0.12 s; with a
poll a second, scrapes used to queue behind it (load benchmark p99 ~135 ms). The test stands
in for a build under way by holding the store's build lock, the one thing a build holds for
its whole duration, so it needs no timing.
"""

from __future__ import annotations

import gzip

from exporter.metrics.store import MetricStore
from exporter.model import Publisher, Snapshot, Stream

ACCOUNT, REGION = "prod", "ap-guangzhou"


def _snapshot(*names: str, at: float = 1000.0) -> Snapshot:
    master = Publisher(
        upstream_sequence="seq-1",
        domain="push.example.com",
        app="live",
        publish_time=1530298800.0,
        source_from="direct",
        is_master=True,
    )
    streams = {n: Stream(name=n, host_group="hg1", optimal_enable=1, publishers=(master,)) for n in names}
    return Snapshot(account=ACCOUNT, region=REGION, taken_at=at, streams=streams)


def _apply(store: MetricStore, snapshot: Snapshot) -> None:
    store.apply(snapshot, changed=frozenset(snapshot.streams), dropped=(), events=())


def _store_with(*names: str) -> MetricStore:
    store = MetricStore()
    _apply(store, _snapshot(*names))
    store.prepare()
    return store


def test_scrape_during_a_build_gets_the_previous_generation_at_once() -> None:
    store = _store_with("a")
    before_plain = store.render()
    before_gzip = b"".join(store.render_gzip_parts(b"# tail\n"))
    _apply(store, _snapshot("a", "b", at=1001.0))
    with store._build_lock:  # a build of the new generation is under way
        assert store.render() is before_plain
        assert b"".join(store.render_gzip_parts(b"# tail\n")) == before_gzip
        assert b'stream="b"' not in gzip.decompress(store.render_gzip())
    body = store.render()
    assert b'stream="b"' in body
    assert gzip.decompress(store.render_gzip(b"# tail\n")) == body + b"# tail\n"


def test_after_prepare_both_bodies_are_current_and_cached() -> None:
    store = _store_with("a")
    _apply(store, _snapshot("a", "b", at=1001.0))
    store.prepare()
    with store._build_lock:  # nothing left to build: the current bodies are served
        body = store.render()
        member = store.render_gzip()
    assert b'stream="b"' in body
    assert gzip.decompress(member) == body
    assert store.render() is body
    assert store.render_gzip() is member


def test_plain_build_does_not_lose_the_published_gzip() -> None:
    store = _store_with("a")
    old_member = store.render_gzip()
    _apply(store, _snapshot("a", "b", at=1001.0))
    new_body = store.render()  # a plain scrape builds the new text only
    with store._build_lock:
        assert store.render() is new_body
        assert store.render_gzip() is old_member  # previous generation, still complete
    assert gzip.decompress(store.render_gzip()) == new_body


def test_without_concurrency_a_scrape_sees_every_change() -> None:
    store = _store_with("a")
    _apply(store, _snapshot("a", "b", at=1001.0))
    assert b'stream="b"' in store.render()
    _apply(store, _snapshot("a", "b", "c", at=1002.0))
    assert b'stream="c"' in gzip.decompress(store.render_gzip())
