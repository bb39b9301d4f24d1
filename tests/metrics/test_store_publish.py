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


def _snapshot(*names: str, at: float = 1000.0, region: str = REGION) -> Snapshot:
    master = Publisher(
        upstream_sequence="seq-1",
        domain="push.example.com",
        app="live",
        publish_time=1530298800.0,
        source_from="direct",
        is_master=True,
    )
    streams = {n: Stream(name=n, host_group="hg1", optimal_enable=1, publishers=(master,)) for n in names}
    return Snapshot(account=ACCOUNT, region=region, taken_at=at, streams=streams)


def _apply(store: MetricStore, snapshot: Snapshot) -> None:
    store.apply(snapshot, changed=frozenset(snapshot.streams), dropped=(), events=())


def _store_with(*names: str) -> MetricStore:
    store = MetricStore()
    _apply(store, _snapshot(*names))
    store.prepare()
    return store


def test_scrape_during_a_build_gets_the_previous_generation_at_once() -> None:
    store = _store_with("a")
    before = store.exposition()
    _apply(store, _snapshot("a", "b", at=1001.0))
    with store._build_lock:  # a build of the new generation is under way
        assert store.exposition() is before
        assert b'stream="b"' not in gzip.decompress(b"".join(store.exposition().gzip(b"")))
    body = store.render()
    assert b'stream="b"' in body
    assert gzip.decompress(b"".join(store.exposition().gzip(b"# tail\n"))) == body + b"# tail\n"


def test_after_prepare_the_current_generation_is_served_during_a_build() -> None:
    store = _store_with("a")
    _apply(store, _snapshot("a", "b", at=1001.0))
    store.prepare()
    with store._build_lock:  # nothing left to build: the current generation is served
        exposition = store.exposition()
    assert b'stream="b"' in exposition.text()
    assert store.exposition() is exposition


def test_a_scrape_in_flight_keeps_its_generation() -> None:
    store = _store_with("a")
    chunks = iter(store.exposition().plain(b""))
    first = next(chunks)
    store.apply(_snapshot("b", at=1001.0), changed={"b"}, dropped={"a"}, events=())
    store.prepare()
    online_a = b'tencent_live_stream_online{account="prod",region="ap-guangzhou",stream="a"}'
    old = first + b"".join(chunks)
    assert online_a + b" 1.0\n" in old and b'stream="b"' not in old  # the old generation, whole
    assert online_a + b" 0.0\n" in store.render()


def test_first_scrape_waits_for_the_first_build() -> None:
    store = MetricStore()
    _apply(store, _snapshot("a"))
    assert b'stream="a"' in store.render()  # nothing published yet: it builds, not serves empty


def test_without_concurrency_a_scrape_sees_every_change() -> None:
    store = _store_with("a")
    _apply(store, _snapshot("a", "b", at=1001.0))
    assert b'stream="b"' in store.render()
    _apply(store, _snapshot("a", "b", "c", at=1002.0))
    assert b'stream="c"' in gzip.decompress(b"".join(store.exposition().gzip(b"")))


def test_slow_clients_of_many_generations_pin_only_what_changed() -> None:
    """25 plain scrapes stalled mid-body, one per generation, while a small region keeps changing.

    Each holds its generation; together they hold one copy of the large unchanged blocks plus
    the few small pieces each generation rebuilt, not 25 copies of the text.
    """
    store = MetricStore()
    _apply(store, _snapshot(*(f"room_{i:05d}" for i in range(3000)), region="ap-beijing"))
    stalled = []
    for step in range(25):
        _apply(store, _snapshot(f"s{step}", at=1001.0 + step))  # ap-guangzhou changes every time
        exposition = store.exposition()
        chunks = iter(exposition.plain(b""))
        next(chunks)  # the client read one chunk and stopped reading
        stalled.append((exposition, chunks))
    held = {id(piece): len(piece) for exposition, _ in stalled for piece in exposition.pieces}
    one = sum(map(len, stalled[-1][0].pieces))
    assert one > 64 * 1024  # large enough for sharing to matter
    assert sum(held.values()) < one + 25 * 8 * 1024
