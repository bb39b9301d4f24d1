"""Our hand-written exposition against client_python's ``generate_latest`` on odd input.

The reference registry is built straight from the snapshot with client_python's own metric
families; only names, help and label names come from our declarations. Text is compared after
normalising what the format leaves free: label order inside a line and line order inside a
family (``sortLabels``/``compareOutput`` in kube-state-metrics' testutils).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.metrics.exposition import escape_help, go_float, header
from exporter.metrics.families import REGION_FAMILIES, STREAM_FAMILIES
from exporter.metrics.store import MetricStore
from exporter.model import Publisher, Snapshot, Stream
from tests._prom import samples

_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")

_SURROGATES: tuple[Literal["Cs"]] = ("Cs",)  # not encodable as UTF-8
odd_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(['"', "\\", "\n", "中", "文", "🎥", " ", "{", "}", ",", "=", "#", "\t", "a"]),
        st.characters(exclude_categories=_SURROGATES),
    ),
    max_size=12,
)


def _normalise(text: str) -> list[str]:
    """Sort labels within each sample line and lines within each family block."""
    blocks: list[list[str]] = []
    for line in text.split("\n")[:-1]:  # only "\n" ends a line; str.splitlines splits on more
        if line.startswith("# HELP"):
            blocks.append([line])
        elif line.startswith("#"):
            blocks[-1].append(line)
        else:
            match = _LINE.match(line)
            assert match is not None, line
            name, labels, value = match.groups()
            pairs = _LABEL.findall(labels or "")
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == (labels or ""), line
            blocks[-1].append(f"{name}{{{','.join(sorted(f'{k}={v!r}' for k, v in pairs))}}} {value}")
    out: list[str] = []
    for block in blocks:
        comments = [line for line in block if line.startswith("#")]
        out.extend(comments + sorted(line for line in block if not line.startswith("#")))
    return out


class _Reference(Collector):
    """The snapshot as client_python would expose it (first snapshot: counters 0).

    ``expected`` names (``streams.expected`` exact names) not in the snapshot are expected
    streams never seen: ``stream_online 0`` and ``stream_expected 1`` only.
    """

    def __init__(self, snapshot: Snapshot, expected: frozenset[str]) -> None:
        self._snap = snapshot
        self._expected = expected

    def collect(self) -> Iterable[Metric]:
        snap = self._snap
        scope = [snap.account, snap.region]
        streams = list(snap.streams.values())
        region_values = {
            "region_streams": len(streams),
            "region_streams_redundant": sum(len(s.publishers) >= 2 for s in streams),
            "region_streams_without_master": sum(s.master is None for s in streams),
            "region_publishers": sum(len(s.publishers) for s in streams),
            "region_streams_unexported": 0,
        }
        for region_spec in REGION_FAMILIES:
            short = region_spec.name.removeprefix("tencent_live_")
            family = _family(
                region_spec.name,
                region_spec.help,
                region_spec.type,
                ["account", "region", *region_spec.labels],
            )
            if region_spec.labels:
                for reason in ("failover", "handover"):
                    family.add_metric([*scope, reason], 0.0)
            else:
                family.add_metric(scope, float(region_values.get(short, 0)))
            yield family
        for spec in STREAM_FAMILIES:
            short = spec.name.removeprefix("tencent_live_")
            family = _family(spec.name, spec.help, spec.type, ["account", "region", "stream", *spec.labels])
            for name in sorted(self._expected - set(snap.streams)):
                if short in ("stream_online", "stream_expected"):
                    family.add_metric([*scope, name], 0.0 if short == "stream_online" else 1.0)
            for s in streams:
                labels = [*scope, s.name]
                master = s.master
                if short == "stream_online":
                    family.add_metric(labels, 1.0)
                elif short == "stream_expected":
                    if s.name in self._expected:
                        family.add_metric(labels, 1.0)
                elif short == "stream_publishers":
                    family.add_metric(labels, float(len(s.publishers)))
                elif short == "stream_master_info" and master:
                    family.add_metric(
                        [*labels, master.domain, master.app, master.source_from, master.upstream_sequence],
                        1.0,
                    )
                elif short == "stream_master_publish_timestamp_seconds" and master:
                    if master.publish_time is not None:
                        family.add_metric(labels, master.publish_time)
                elif short == "stream_info":
                    optimal = "" if s.optimal_enable is None else str(s.optimal_enable)
                    family.add_metric([*labels, s.host_group, optimal], 1.0)
                elif spec.type == "counter":
                    family.add_metric(labels, 0.0)
            if family.samples:
                yield family


def _family(
    name: str, help_text: str, kind: str, labels: list[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(name, help_text, labels=labels)
    return GaugeMetricFamily(name, help_text, labels=labels)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    streams = {}
    for name in draw(st.lists(odd_text, min_size=1, max_size=4, unique=True)):
        count = draw(st.integers(0, 3))
        master_at = draw(st.integers(-1, count - 1)) if count else -1
        publishers = tuple(
            Publisher(
                upstream_sequence=draw(odd_text),
                domain=draw(odd_text),
                app=draw(odd_text),
                publish_time=draw(st.none() | st.floats(0, 4e9, allow_nan=False)),
                source_from=draw(odd_text),
                is_master=i == master_at,
            )
            for i in range(count)
        )
        streams[name] = Stream(
            name=name,
            host_group=draw(odd_text),
            optimal_enable=draw(st.none() | st.integers(0, 1)),
            publishers=publishers,
        )
    return Snapshot(account=draw(odd_text), region=draw(odd_text), taken_at=0.0, streams=streams)


@dataclass(frozen=True, slots=True)
class _Expected:
    """``streams.expected`` with exact names only, as the store reads it."""

    names: frozenset[str]

    def matches(self, name: str) -> bool:
        return name in self.names

    def __bool__(self) -> bool:
        return bool(self.names)


@settings(max_examples=150, deadline=None)
@given(snapshots(), st.data())
def test_body_matches_generate_latest(snapshot: Snapshot, data: st.DataObject) -> None:
    # Some listed streams expected, and maybe names never seen.
    seen = data.draw(st.sets(st.sampled_from(sorted(snapshot.streams))))
    expected = frozenset(seen | data.draw(st.sets(odd_text, max_size=2)))
    store = MetricStore(expected=_Expected(expected))
    store.apply(snapshot, changed=frozenset(snapshot.streams), dropped=(), events=())
    ours = store.render()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_Reference(snapshot, expected))
    assert _normalise(ours.decode()) == _normalise(generate_latest(registry).decode())
    # And the real parser reads back exactly the label values we were given.
    online = [labels for name, labels in samples(ours) if name == "tencent_live_stream_online"]
    parsed = {dict(labels)["stream"] for labels in online}
    assert parsed == set(snapshot.streams) | expected


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**12), 10**12).map(float))
def test_go_float_matches_client_python(value: float) -> None:
    assert go_float(value) == floatToGoString(value)  # type: ignore[no-untyped-call]


def test_go_float_special_values() -> None:
    assert [go_float(v) for v in (0.0, 1.0, math.nan, math.inf, -math.inf, -0.0, 1530298800.0)] == [
        "0.0",
        "1.0",
        "NaN",
        "+Inf",
        "-Inf",
        "-0.0",
        "1.5302988e+09",
    ]


@given(odd_text)
def test_help_escaping_matches_client_python(text: str) -> None:
    registry = CollectorRegistry(auto_describe=True)

    class _One(Collector):
        def collect(self) -> Iterable[Metric]:
            family = GaugeMetricFamily("x", text)
            family.add_metric([], 1.0)
            yield family

    registry.register(_One())
    expected = generate_latest(registry).decode().split("\n")[0]
    assert header("x", text, "gauge").decode().split("\n")[0] == expected
    assert "\n" not in escape_help(text)
