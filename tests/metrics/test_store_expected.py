"""Expected streams (SPEC section 9), declared and removed regions, asserted on the served text."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest

from exporter.metrics.families import ALL_FAMILIES
from exporter.metrics.store import MetricStore
from exporter.model import Event, EventKind, Publisher, RegionKey, Snapshot, Stream
from tests._prom import family_names, samples

ACCOUNT = "prod"
GZ, HK = "ap-guangzhou", "ap-hongkong"
P = "tencent_live_"


@dataclass(frozen=True, slots=True, kw_only=True)
class Expected:
    """The shape of ``streams.expected`` the store reads (the config's type has the same)."""

    names: frozenset[str] = frozenset()
    patterns: tuple[re.Pattern[str], ...] = field(default=())

    def matches(self, name: str) -> bool:
        return name in self.names or any(p.fullmatch(name) for p in self.patterns)

    def __bool__(self) -> bool:
        return bool(self.names or self.patterns)


def expected(*names: str, regex: str | None = None) -> Expected:
    return Expected(names=frozenset(names), patterns=(re.compile(regex),) if regex else ())


def stream(name: str, seq: str = "1") -> Stream:
    master = Publisher(
        upstream_sequence=seq, domain="d", app="live", publish_time=1.0, source_from="x", is_master=True
    )
    return Stream(name=name, host_group="hg", optimal_enable=1, publishers=(master,))


def apply(
    store: MetricStore,
    *names: str,
    region: str = GZ,
    at: float = 1000.0,
    dropped: tuple[str, ...] = (),
    events: tuple[Event, ...] = (),
) -> None:
    snapshot = Snapshot(account=ACCOUNT, region=region, taken_at=at, streams={n: stream(n) for n in names})
    store.apply(snapshot, changed=frozenset(names), dropped=frozenset(dropped), events=events)


def series(store: MetricStore) -> dict[tuple[str, str, str], float]:
    """(family, region, stream) -> value of every per-stream sample; region samples as stream ""."""
    out = {}
    for (name, label_set), value in samples(store.render()).items():
        labels = dict(label_set)
        key = (name.removeprefix(P), labels["region"], labels.get("stream", ""))
        if name.endswith("switchovers_total") and "reason" in labels:
            continue
        assert key not in out, key
        out[key] = value
    return out


def of_stream(store: MetricStore, name: str, region: str = GZ) -> dict[str, float]:
    return {f: v for (f, r, s), v in series(store).items() if s == name and r == region}


NEVER_SEEN = {"stream_online": 0.0, "stream_expected": 1.0}


class TestExactNames:
    def test_declared_region_shows_expected_names_offline_and_nothing_else(self) -> None:
        store = MetricStore(expected=expected("news", "sport"))
        store.declare_region(ACCOUNT, GZ)
        store.declare_region(ACCOUNT, HK)
        assert of_stream(store, "news", GZ) == NEVER_SEEN
        assert of_stream(store, "sport", HK) == NEVER_SEEN
        # Region series (counters at 0 included) start with the region's first snapshot.
        assert not [k for k in series(store) if k[2] == ""]

    def test_seen_in_one_region_offline_in_the_others(self) -> None:
        store = MetricStore(expected=expected("news"))
        store.declare_region(ACCOUNT, HK)
        apply(store, "news", "other")
        seen = of_stream(store, "news", GZ)
        assert seen["stream_online"] == 1.0 and seen["stream_expected"] == 1.0
        assert seen["stream_switchovers_total"] == 0.0  # counters from the first sighting
        assert of_stream(store, "news", HK) == NEVER_SEEN
        assert "stream_expected" not in of_stream(store, "other")

    def test_first_polled_region_gets_them_without_a_declaration(self) -> None:
        store = MetricStore(expected=expected("news"))
        apply(store, "other", region=HK)
        assert of_stream(store, "news", HK) == NEVER_SEEN

    def test_drop_then_retention_goes_back_to_never_seen(self) -> None:
        store = MetricStore(expected=expected("news"), retention=60.0)
        apply(store, "news")
        switch = Event(time=1001.0, account=ACCOUNT, region=GZ, stream="news", kind=EventKind.SWITCHOVER)
        apply(store, "news", at=1001.0, events=(switch,))
        apply(store, at=1002.0, dropped=("news",))
        dropped = of_stream(store, "news")
        assert dropped["stream_online"] == 0.0 and dropped["stream_switchovers_total"] == 1.0
        store.expire(1002.0 + 60.0)
        assert of_stream(store, "news") == NEVER_SEEN
        apply(store, "news", at=2000.0)  # back: a new series, counters from 0
        assert of_stream(store, "news")["stream_switchovers_total"] == 0.0

    def test_restored_counters_reach_a_name_when_it_first_shows(self) -> None:
        store = MetricStore(expected=expected("news"))
        store.declare_region(ACCOUNT, GZ)
        store.restore_counters(
            {"format": 1, "regions": [{"account": ACCOUNT, "region": GZ, "streams": {"news": [4, 5, 6]}}]}
        )
        assert of_stream(store, "news") == NEVER_SEEN
        apply(store, "news")
        values = of_stream(store, "news")
        assert (values["stream_switchovers_total"], values["stream_publisher_losses_total"]) == (4.0, 6.0)


class TestPatterns:
    def test_regex_marks_matching_streams_seen_only(self) -> None:
        store = MetricStore(expected=expected(regex="ch-[0-9]+"))
        apply(store, "ch-1", "ch-2x", "other")
        assert of_stream(store, "ch-1")["stream_expected"] == 1.0
        assert "stream_expected" not in of_stream(store, "ch-2x")  # full match only
        assert {s for (f, _, s) in series(store) if f == "stream_expected"} == {"ch-1"}

    def test_expired_regex_stream_goes_entirely(self) -> None:
        store = MetricStore(expected=expected(regex="ch-.*"), retention=10.0)
        apply(store, "ch-1")
        apply(store, at=1001.0, dropped=("ch-1",))
        store.expire(2000.0)
        assert of_stream(store, "ch-1") == {}


class TestLimits:
    def test_expected_streams_beat_the_cap_and_take_no_slot(self) -> None:
        store = MetricStore(expected=expected("vip", regex="vip-.*"), max_per_region=1)
        apply(store, "a", "b", "vip", "vip-2")
        names = {s for (f, _, s) in series(store) if f == "stream_online"}
        assert names == {"a", "vip", "vip-2"}
        assert series(store)[("region_streams_unexported", GZ, "")] == 1.0  # "b" only

    def test_expected_streams_keep_series_with_per_stream_metrics_off(self) -> None:
        store = MetricStore(expected=expected("vip"), per_stream_metrics=False)
        apply(store, "a", "vip")
        assert {s for (f, _, s) in series(store) if f == "stream_online"} == {"vip"}
        assert series(store)[("region_streams_unexported", GZ, "")] == 0.0


class TestReload:
    def test_set_expected_adds_and_removes(self) -> None:
        store = MetricStore(expected=expected("old"))
        apply(store, "seen")
        assert of_stream(store, "old") == NEVER_SEEN
        store.set_expected(expected("new", "seen"))
        assert of_stream(store, "old") == {}
        assert of_stream(store, "new") == NEVER_SEEN
        assert of_stream(store, "seen")["stream_expected"] == 1.0
        store.set_expected(expected())
        assert "stream_expected" not in of_stream(store, "seen")
        assert of_stream(store, "seen")["stream_online"] == 1.0
        assert of_stream(store, "new") == {}

    def test_remove_region_takes_every_series_of_it_and_only_it(self) -> None:
        store = MetricStore(expected=expected("news"))
        apply(store, "a", region=GZ)
        apply(store, "b", region=HK)
        store.remove_region(RegionKey(ACCOUNT, GZ))
        assert {r for (_, r, _) in series(store)} == {HK}
        assert store.unexported(RegionKey(ACCOUNT, GZ)) == 0
        apply(store, "a", region=GZ)  # polled again later: a new region, counters from 0
        assert of_stream(store, "a", GZ)["stream_online"] == 1.0


def test_every_store_family_is_declared_with_expected_streams() -> None:
    store = MetricStore(expected=expected("s"))
    apply(store, "s")
    declared = {name.removesuffix("_total") for name in family_names(store.render())}
    assert declared == {name.removesuffix("_total") for name in ALL_FAMILIES}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_a_body_with_expected_streams() -> None:
    store = MetricStore(expected=expected("never", "seen", regex="ch-.*"))
    store.declare_region(ACCOUNT, HK)
    apply(store, "seen", "ch-1", "other")
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=store.render(), capture_output=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
