"""The incremental body (re-splice only changed lines) against bodies built in one go.

Random sequences of polls (streams appearing, changing, dropping, expiring, coming back, in
several regions) are fed to two stores: one scraped after every poll, one scraped only at the
end. Both must serve identical bytes, valid text, and the series the sequence implies.
"""

from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.metrics.store import MetricStore
from exporter.model import Publisher, Snapshot, Stream
from tests._prom import samples

REGIONS = ("ap-beijing", "ap-shanghai")
NAMES = tuple(f"s{i}" for i in range(8))


def _stream(name: str, version: int) -> Stream:
    publishers = tuple(
        Publisher(
            upstream_sequence=f"{name}-{version}-{i}",
            domain="d" * (1 + version % 5),  # line lengths change with the version
            app="live",
            publish_time=float(version),
            source_from="直推流",
            is_master=i == 0,
        )
        for i in range(1 + version % 3)
    )
    return Stream(name=name, host_group="hg", optimal_enable=version % 2, publishers=publishers)


polls = st.lists(
    st.tuples(
        st.sampled_from(REGIONS),
        st.dictionaries(st.sampled_from(NAMES), st.integers(0, 6), max_size=len(NAMES)),
        st.booleans(),  # whether absent known streams count as confirmed drops now
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=120, deadline=None)
@given(polls, st.integers(1, 6))
def test_incremental_equals_batch(sequence: list[tuple[str, dict[str, int], bool]], cap: int) -> None:
    eager = MetricStore(retention=30.0, max_per_region=cap)
    lazy = MetricStore(retention=30.0, max_per_region=cap)
    online: dict[str, dict[str, int]] = {region: {} for region in REGIONS}
    for step, (region, versions, confirm) in enumerate(sequence):
        previous = online[region]
        streams = {name: _stream(name, v) for name, v in versions.items()}
        changed = {name for name, v in versions.items() if previous.get(name) != v}
        dropped = set(previous) - set(versions) if confirm else set()
        online[region] = {
            **versions,
            **{n: v for n, v in previous.items() if n not in versions and not confirm},
        }
        snapshot = Snapshot(account="a", region=region, taken_at=step * 10.0, streams=streams)
        for store in (eager, lazy):
            store.apply(snapshot, changed=changed, dropped=dropped, events=())
        body = eager.render()
        if step % 2:
            assert gzip.decompress(b"".join(eager.exposition().gzip(b""))) == body
    assert lazy.render() == eager.render()
    assert gzip.decompress(b"".join(eager.exposition().gzip(b""))) == eager.render()
    assert gzip.decompress(b"".join(lazy.exposition().gzip(b""))) == lazy.render()
    samples(eager.render())  # parses, and no series twice
