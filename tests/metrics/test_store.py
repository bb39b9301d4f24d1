"""MetricStore behaviour, asserted on the exposition text it serves (as kube-state-metrics tests do)."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import threading
import zlib
from collections.abc import Iterable

import pytest

from exporter.metrics.exposition import CHUNK_LIMIT
from exporter.metrics.families import ALL_FAMILIES
from exporter.metrics.store import MetricStore
from exporter.model import Event, EventKind, Publisher, Snapshot, Stream, SwitchoverReason
from tests import _prom
from tests._prom import family_names, sample_names, samples

ACCOUNT, REGION = "prod", "ap-guangzhou"
P = "tencent_live_"


def pub(
    seq: str, master: bool = False, *, domain: str = "push.example.com", source: str = "直推流"
) -> Publisher:
    return Publisher(
        upstream_sequence=seq,
        domain=domain,
        app="live",
        publish_time=1530298800.0,
        source_from=source,
        is_master=master,
    )


def stream(name: str, *publishers: Publisher, host_group: str = "hg1") -> Stream:
    return Stream(name=name, host_group=host_group, optimal_enable=1, publishers=publishers)


def snap(*streams: Stream, at: float = 1000.0, region: str = REGION) -> Snapshot:
    return Snapshot(account=ACCOUNT, region=region, taken_at=at, streams={s.name: s for s in streams})


def event(kind: EventKind, name: str, reason: SwitchoverReason | None = None, at: float = 1000.0) -> Event:
    return Event(time=at, account=ACCOUNT, region=REGION, stream=name, kind=kind, reason=reason)


def apply(
    store: MetricStore,
    snapshot: Snapshot,
    changed: Iterable[str] = (),
    dropped: Iterable[str] = (),
    events: Iterable[Event] = (),
) -> None:
    store.apply(snapshot, changed=frozenset(changed), dropped=frozenset(dropped), events=tuple(events))


def gz(store: MetricStore) -> bytes:
    """What a gzip scrape receives, inflated."""
    return gzip.decompress(b"".join(store.exposition().gzip(b"")))


def value(body: bytes, name: str, **labels: str) -> float | None:
    return _prom.value(body, P + name, account=ACCOUNT, region=REGION, **labels)


def assert_well_formed(body: bytes) -> None:
    """HELP/TYPE once per family, immediately followed by that family's samples only."""
    text = body.decode()
    seen: set[str] = set()
    current = None
    for line in text.split("\n")[:-1]:  # only "\n" ends a line; str.splitlines splits on more
        if line.startswith("# HELP "):
            current = line.split(" ")[2]
            assert current not in seen, f"{current} declared twice"
            seen.add(current)
        elif line.startswith("# TYPE "):
            assert line.split(" ")[2] == current
        else:
            assert current is not None
            metric = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            assert metric is not None and metric.group(0) == current, line
    assert text.endswith("\n")


class TestExpositionText:
    def test_one_stream_exact_text(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s1", pub("11", True), pub("12"))), changed={"s1"})
        body = store.render().decode()
        scope = 'account="prod",region="ap-guangzhou",stream="s1"'
        expected_stream_lines = (
            "# HELP tencent_live_stream_online 1 while the stream is listed, 0 after a confirmed drop"
            " (kept for stream_retention).\n"
            "# TYPE tencent_live_stream_online gauge\n"
            f"tencent_live_stream_online{{{scope}}} 1.0\n"
            "# HELP tencent_live_stream_publishers Number of publishers (BackupList length) of the stream.\n"
            "# TYPE tencent_live_stream_publishers gauge\n"
            f"tencent_live_stream_publishers{{{scope}}} 2.0\n"
            "# HELP tencent_live_stream_master_info 1 for the stream's current master publisher.\n"
            "# TYPE tencent_live_stream_master_info gauge\n"
            f'tencent_live_stream_master_info{{{scope},domain="push.example.com",app="live",'
            'source_from="直推流",upstream_sequence="11"} 1.0\n'
            "# HELP tencent_live_stream_master_publish_timestamp_seconds PublishTime of the stream's current"
            " master as Unix seconds.\n"
            "# TYPE tencent_live_stream_master_publish_timestamp_seconds gauge\n"
            f"tencent_live_stream_master_publish_timestamp_seconds{{{scope}}} 1.5302988e+09\n"
            "# HELP tencent_live_stream_info Stream attributes reported by DescribeBackupStreamList;"
            " always 1.\n"
            "# TYPE tencent_live_stream_info gauge\n"
            f'tencent_live_stream_info{{{scope},host_group="hg1",optimal_enable="1"}} 1.0\n'
        )
        assert expected_stream_lines in body
        assert 'tencent_live_region_streams_redundant{account="prod",region="ap-guangzhou"} 1.0\n' in body
        assert_well_formed(store.render())

    def test_families_grouped_across_regions_and_streams(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("a", pub("1", True)), stream("b", pub("2", True)), region="ap-shanghai"))
        apply(store, snap(stream("c", pub("3", True))))
        body = store.render()
        assert_well_formed(body)
        online = [line for line in body.decode().split("\n") if line.startswith(P + "stream_online{")]
        assert len(online) == 3
        # Regions in (account, region) order, whatever order they were first polled in.
        assert 'region="ap-guangzhou"' in online[0]

    def test_every_store_family_is_declared(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True))))
        declared = {name.removesuffix("_total") for name in family_names(store.render())}
        # stream_expected has samples only with streams.expected (tests/metrics/test_store_expected.py).
        assert declared == {name.removesuffix("_total") for name in ALL_FAMILIES} - {P + "stream_expected"}

    def test_no_streams_omits_stream_headers(self) -> None:
        store = MetricStore()
        apply(store, snap())
        body = store.render().decode()
        assert "stream_online" not in body
        assert value(store.render(), "region_streams") == 0.0

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
    def test_promtool_accepts_body(self) -> None:
        store = MetricStore()
        odd = ['q"uote', "back\\slash", "new\nline", "中文", "emoji 🎥"]
        apply(
            store,
            snap(*(stream(n, pub(n + "1", True, domain=n, source=n), pub("2"), host_group=n) for n in odd)),
        )
        result = subprocess.run(
            ["promtool", "check", "metrics"],
            input=store.render(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode() + result.stdout.decode()


class TestCounters:
    def test_all_counters_zero_from_first_snapshot(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True))), changed={"s"})
        body = store.render()
        for reason in ("failover", "handover"):
            assert value(body, "region_switchovers_total", reason=reason) == 0.0
        for name in ("publisher_joins", "publisher_losses", "stream_starts", "stream_drops"):
            assert value(body, f"region_{name}_total") == 0.0
        for name in ("switchovers", "publisher_joins", "publisher_losses"):
            assert value(body, f"stream_{name}_total", stream="s") == 0.0

    def test_new_stream_counters_start_at_zero(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("a", pub("1", True))))
        apply(
            store,
            snap(stream("a", pub("1", True)), stream("b", pub("2", True))),
            changed={"b"},
            events=[event(EventKind.STREAM_START, "b")],
        )
        body = store.render()
        assert value(body, "stream_switchovers_total", stream="b") == 0.0
        assert value(body, "region_stream_starts_total") == 1.0

    def test_events_count_stream_and_region(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True), pub("2"))))
        apply(
            store,
            snap(stream("s", pub("2", True), pub("3"))),
            changed={"s"},
            events=[
                event(EventKind.SWITCHOVER, "s", SwitchoverReason.FAILOVER),
                event(EventKind.PUBLISHER_JOIN, "s"),
                event(EventKind.PUBLISHER_LOSS, "s"),
            ],
        )
        body = store.render()
        assert value(body, "stream_switchovers_total", stream="s") == 1.0
        assert value(body, "stream_publisher_joins_total", stream="s") == 1.0
        assert value(body, "stream_publisher_losses_total", stream="s") == 1.0
        assert value(body, "region_switchovers_total", reason="failover") == 1.0
        assert value(body, "region_switchovers_total", reason="handover") == 0.0
        master = {k: v for k, v in samples(body).items() if k[0] == P + "stream_master_info"}
        assert [dict(labels)["upstream_sequence"] for _, labels in master] == ["2"]

    def test_export_restore_roundtrip_continues_counters(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True))))
        apply(
            store,
            snap(stream("s", pub("2", True))),
            changed={"s"},
            events=[event(EventKind.SWITCHOVER, "s", SwitchoverReason.HANDOVER)],
        )
        saved = json.loads(json.dumps(store.export_counters()))

        restarted = MetricStore()
        restarted.restore_counters(saved)
        apply(restarted, snap(stream("s", pub("2", True))))
        body = restarted.render()
        assert value(body, "stream_switchovers_total", stream="s") == 1.0
        assert value(body, "region_switchovers_total", reason="handover") == 1.0
        assert value(body, "region_switchovers_total", reason="failover") == 0.0

    def test_restore_after_apply_never_lowers(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True))))
        apply(store, snap(stream("s", pub("1", True))), events=[event(EventKind.STREAM_DROP, "x")] * 3)
        store.restore_counters(
            {"format": 1, "regions": [{"account": ACCOUNT, "region": REGION, "stream_drops": 1}]}
        )
        assert value(store.render(), "region_stream_drops_total") == 3.0
        store.restore_counters(
            {"format": 1, "regions": [{"account": ACCOUNT, "region": REGION, "stream_drops": 7}]}
        )
        assert value(store.render(), "region_stream_drops_total") == 7.0

    @pytest.mark.parametrize(
        "data",
        [
            {},  # no format
            {"format": 99, "regions": []},  # unknown format
            {"format": 1, "regions": [{"account": "a"}]},  # region missing
            {"format": 1, "regions": [{"account": "a", "region": "r", "stream_drops": -1}]},  # negative
            {"format": 1, "regions": [{"account": "a", "region": "r", "streams": {"s": [1, 2]}}]},  # short
        ],
    )
    def test_restore_rejects_foreign_data(self, data: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="counters"):
            MetricStore().restore_counters(data)


class TestDropAndRetention:
    def _dropped_store(self, retention: float = 600.0) -> MetricStore:
        store = MetricStore(retention=retention)
        apply(store, snap(stream("s", pub("1", True), pub("2")), stream("t", pub("3", True)), at=1000.0))
        apply(
            store,
            snap(stream("t", pub("3", True)), at=1015.0),
            events=[event(EventKind.SWITCHOVER, "s", SwitchoverReason.HANDOVER)],
        )
        apply(
            store,
            snap(stream("t", pub("3", True)), at=1030.0),
            dropped={"s"},
            events=[event(EventKind.STREAM_DROP, "s")],
        )
        return store

    def test_drop_keeps_online_zero_info_and_counters_removes_master(self) -> None:
        body = self._dropped_store().render()
        assert value(body, "stream_online", stream="s") == 0.0
        assert value(body, "stream_publishers", stream="s") == 0.0
        assert value(body, "stream_info", stream="s", host_group="hg1", optimal_enable="1") == 1.0
        assert value(body, "stream_switchovers_total", stream="s") == 1.0
        assert not [
            k for k in samples(body) if k[0].startswith(P + "stream_master") and ("stream", "s") in k[1]
        ]
        assert value(body, "region_stream_drops_total") == 1.0
        assert value(body, "region_streams") == 1.0

    def test_pending_drop_keeps_stream_online(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True)), at=1000.0))
        apply(store, snap(at=1015.0))
        assert value(store.render(), "stream_online", stream="s") == 1.0

    def test_expire_after_retention_from_drop_snapshot(self) -> None:
        store = self._dropped_store(retention=600.0)
        assert store.expire(1629.0) == 0
        assert value(store.render(), "stream_online", stream="s") == 0.0
        assert store.expire(1630.0) == 1
        body = store.render()
        assert not [k for k in samples(body) if ("stream", "s") in k[1]]
        assert value(body, "stream_online", stream="t") == 1.0

    def test_apply_expires_too(self) -> None:
        store = self._dropped_store(retention=600.0)
        apply(store, snap(stream("t", pub("3", True)), at=2000.0))
        assert value(store.render(), "stream_online", stream="s") is None

    def test_restart_within_retention_continues_counters(self) -> None:
        store = self._dropped_store()
        apply(
            store,
            snap(stream("s", pub("5", True)), stream("t", pub("3", True)), at=1100.0),
            changed={"s"},
            events=[event(EventKind.STREAM_START, "s")],
        )
        body = store.render()
        assert value(body, "stream_online", stream="s") == 1.0
        assert value(body, "stream_switchovers_total", stream="s") == 1.0
        assert value(body, "stream_master_info", stream="s", domain="push.example.com", app="live",
                     source_from="直推流", upstream_sequence="5") == 1.0  # fmt: skip
        # Re-started: it is no longer pending expiry.
        store.expire(10_000.0)
        assert value(store.render(), "stream_online", stream="s") == 1.0


class TestScopeLimits:
    def test_cap_first_come_keep_series_aggregates_count_all(self) -> None:
        store = MetricStore(max_per_region=2)
        apply(store, snap(stream("a", pub("1", True)), stream("b", pub("2", True))))
        apply(
            store,
            snap(*(stream(n, pub(n, True)) for n in "abcd")),
            changed={"c", "d"},
            events=[event(EventKind.STREAM_START, "c"), event(EventKind.STREAM_START, "d")],
        )
        body = store.render()
        exported = {dict(labels)["stream"] for name, labels in samples(body) if name == P + "stream_online"}
        assert exported == {"a", "b"}
        assert value(body, "region_streams") == 4.0
        assert value(body, "region_streams_unexported") == 2.0
        assert value(body, "region_stream_starts_total") == 2.0

    def test_cap_slot_frees_after_expiry(self) -> None:
        store = MetricStore(max_per_region=1, retention=60.0)
        apply(store, snap(stream("a", pub("1", True)), at=0.0))
        apply(store, snap(stream("b", pub("2", True)), at=10.0), changed={"b"}, dropped={"a"})
        assert value(store.render(), "region_streams_unexported") == 1.0
        apply(store, snap(stream("b", pub("2", True)), at=100.0))
        body = store.render()
        assert value(body, "stream_online", stream="b") == 1.0
        assert value(body, "stream_online", stream="a") is None
        assert value(body, "region_streams_unexported") == 0.0

    def test_per_stream_metrics_off(self) -> None:
        store = MetricStore(per_stream_metrics=False)
        apply(
            store,
            snap(stream("a", pub("1", True), pub("2")), stream("b", pub("3"))),
            events=[event(EventKind.SWITCHOVER, "a", SwitchoverReason.FAILOVER)],
        )
        body = store.render()
        assert not [n for n in sample_names(body) if n.startswith(P + "stream_")]
        assert value(body, "region_streams") == 2.0
        assert value(body, "region_streams_redundant") == 1.0
        assert value(body, "region_streams_without_master") == 1.0
        assert value(body, "region_publishers") == 3.0
        assert value(body, "region_switchovers_total", reason="failover") == 1.0
        assert store.export_counters()["regions"][0]["streams"] == {}


class TestCaching:
    def test_same_generation_while_unchanged(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True))))
        exposition = store.exposition()
        generation = store.generation
        # A poll where nothing changed keeps the generation and the published pieces.
        apply(store, snap(stream("s", pub("1", True)), at=2000.0))
        assert store.generation == generation
        assert store.exposition() is exposition

    def test_prepare_builds_ahead_of_the_scrape(self) -> None:
        store = MetricStore()
        apply(store, snap(stream("s", pub("1", True))))
        store.prepare()
        before = store.exposition()
        apply(store, snap(stream("s", pub("2", True))), changed={"s"})
        assert store.exposition() is not before  # a change is never served stale
        store.prepare()
        assert store.exposition() is store.exposition()
        assert gz(store) == store.render()
        assert b'upstream_sequence="2"' in store.render()

    def test_change_in_one_region_rebuilds_only_it_and_consistently(self) -> None:
        store = MetricStore()
        apply(store, snap(*(stream(f"a{i}", pub(str(i), True)) for i in range(3000)), region="ap-beijing"))
        apply(store, snap(stream("b", pub("2", True)), region="ap-shanghai"))
        first = store.exposition()
        apply(store, snap(stream("b", pub("3", True)), region="ap-shanghai"), changed={"b"})
        second = store.exposition()
        assert second is not first
        # ap-beijing's large blocks are the very objects of the previous generation: most of
        # the new generation's bytes are shared, not rebuilt or copied.
        shared = [p for p in second.pieces if any(p is q for q in first.pieces)]
        assert sum(map(len, shared)) > 0.8 * sum(map(len, second.pieces))
        assert gz(store) == second.text()
        fresh = MetricStore()
        apply(fresh, snap(*(stream(f"a{i}", pub(str(i), True)) for i in range(3000)), region="ap-beijing"))
        apply(fresh, snap(stream("b", pub("3", True)), region="ap-shanghai"))
        assert fresh.render() == second.text()

    def test_families_a_change_leaves_alone_keep_their_blocks(self) -> None:
        streams = [stream(f"room_{i:05d}", pub(str(i), True), pub(f"b{i}")) for i in range(2000)]
        store = MetricStore()
        apply(store, snap(*streams))
        before = store.exposition()
        # A handover in one stream: master_info and the switchover counter change; the other six
        # families (online, publishers, publish time, info, joins, losses) are the same text.
        streams[7] = stream("room_00007", pub("7"), pub("b7", True))
        handover = event(EventKind.SWITCHOVER, "room_00007", SwitchoverReason.HANDOVER)
        apply(store, snap(*streams), changed={"room_00007"}, events=[handover])
        after = store.exposition()
        large = [p for p in before.pieces if len(p) >= 4096]
        kept = [p for p in large if any(p is q for q in after.pieces)]
        assert len(large) == 8 and len(kept) == 6  # 8 stream families with samples, 2 changed
        assert after.text() != before.text()
        fresh = MetricStore()
        apply(fresh, snap(*streams), events=[handover])
        assert fresh.render() == after.text()

    def test_gzip_is_one_member_of_the_plain_body(self) -> None:
        store = MetricStore()
        apply(store, snap(*(stream(f"s{i}", pub(str(i), True)) for i in range(50))))
        packed = b"".join(store.exposition().gzip(b"# tail\n"))
        # One member: a plain zlib decoder reads it whole and leaves nothing over.
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        assert decoder.decompress(packed) == store.render() + b"# tail\n"
        assert decoder.eof and decoder.unused_data == b""

    def test_plain_body_is_streamed_in_bounded_chunks(self) -> None:
        store = MetricStore()
        apply(store, snap(*(stream(f"room_{i:05d}", pub(str(i), True)) for i in range(2000))))
        chunks = list(store.exposition().plain(b"# tail\n"))
        assert len(chunks) > 1 and max(map(len, chunks)) <= CHUNK_LIMIT
        assert b"".join(chunks) == store.render() + b"# tail\n"

    def test_concurrent_scrapes_while_applying(self) -> None:
        store = MetricStore()
        bodies: list[bytes] = []
        stop = threading.Event()

        def scrape() -> None:
            while not stop.is_set():
                bodies.append(b"".join(store.exposition().plain(b"")))
                gzip.decompress(b"".join(store.exposition().gzip(b"")))

        worker = threading.Thread(target=scrape)
        worker.start()
        try:
            for i in range(200):
                apply(
                    store, snap(*(stream(f"s{j}", pub(str(i + j), True)) for j in range(20))), changed={"s0"}
                )
                if i % 3 == 0:
                    store.prepare()
        finally:
            stop.set()
            worker.join(timeout=30)
        assert bodies
        for body in [b for b in bodies if b][-5:]:
            assert_well_formed(body)
            assert samples(body)
