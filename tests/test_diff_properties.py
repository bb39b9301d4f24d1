"""Random snapshot sequences against a deliberately naive reference of SPEC section 5.

The reference walks each stream's own history one snapshot at a time, with none of the
diff's shortcuts (shared state, set arithmetic, copy-on-write). A snapshot "judges" a name
when it is a full-list snapshot, or a watch-list snapshot whose scope holds the name; a name's
first judging snapshot is its baseline. Failed polls never reach ``diff`` and so do not exist
for the reference either.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.diff import KIND_ORDER, DiffRules, RegionState, diff
from exporter.model import Event, EventKind, Publisher, RegionKey, Snapshot, Stream
from exporter.statefile import load_state, save_state

ACCOUNT, REGION = "prod", "ap-guangzhou"
NAMES = ("a", "b", 'c"\\\n', "直播间")
SEQUENCES = ("1", "2", "3", "4", "5")
FAILED = None  # a failed poll: diff is not called

Row = tuple[str, str, str | None, str | None, str | None]


@st.composite
def streams(draw: st.DrawFn, name: str) -> Stream:
    seqs = draw(st.lists(st.sampled_from(SEQUENCES), unique=True, max_size=3))
    # Mostly one master; sometimes none or two, which the diff must survive.
    masters = draw(st.lists(st.booleans(), min_size=len(seqs), max_size=len(seqs)))
    pubs = tuple(
        Publisher(
            upstream_sequence=seq,
            domain="push.example.com",
            app="live",
            publish_time=float(i),
            source_from="直推流",
            is_master=flag,
        )
        for i, (seq, flag) in enumerate(zip(seqs, masters, strict=True))
    )
    host_group = draw(st.sampled_from(("", "hg")))
    return Stream(name=name, host_group=host_group, optimal_enable=1, publishers=pubs)


@st.composite
def snapshots(draw: st.DrawFn, watch_list: bool) -> Snapshot | None:
    if draw(st.integers(0, 5)) == 0:
        return FAILED
    scope: frozenset[str] | None = None
    judged: Sequence[str] = NAMES
    if watch_list and draw(st.booleans()):
        scope = frozenset(draw(st.lists(st.sampled_from(NAMES), unique=True)))
        judged = sorted(scope)
    present = draw(st.lists(st.sampled_from(judged), unique=True)) if judged else []
    return Snapshot(
        account=ACCOUNT,
        region=REGION,
        taken_at=0.0,  # set by _timed so every step has its own time
        streams={name: draw(streams(name)) for name in present},
        scope=scope,
    )


def runs(watch_list: bool = False) -> st.SearchStrategy[list[Snapshot | None]]:
    return st.lists(snapshots(watch_list), max_size=14).map(_timed)


def _timed(steps: list[Snapshot | None]) -> list[Snapshot | None]:
    out: list[Snapshot | None] = []
    for t, s in enumerate(steps):
        if s is None:
            out.append(None)
        else:
            out.append(
                Snapshot(
                    account=s.account, region=s.region, taken_at=float(t), streams=s.streams, scope=s.scope
                )
            )
    return out


def row(e: Event) -> Row:
    return (e.stream, str(e.kind), None if e.reason is None else str(e.reason), e.from_, e.to)


# ------------------------------------------------------------------------------------ reference


@dataclass
class _Life:
    """One name's story so far, as the reference sees it."""

    judged_before: bool = False
    alive: bool = False
    version: Stream | None = None
    last_master: str | None = None
    missing: int = 0
    out: list[tuple[int, Row]] = field(default_factory=list)


def _master(s: Stream) -> str | None:
    for p in s.publishers:
        if p.is_master:
            return p.upstream_sequence
    return None


def reference(steps: Sequence[Snapshot | None], dc: int) -> list[list[Row]]:
    """Events per successful snapshot, by walking each name's history on its own."""
    ok = [s for s in steps if s is not None]
    lives = {name: _Life() for name in NAMES}
    for k, snap in enumerate(ok):
        for name, life in lives.items():
            if snap.scope is not None and name not in snap.scope and name not in snap.streams:
                continue  # not judged: as if this poll failed for this name
            _step(life, k, name, snap.streams.get(name), dc)
    per_step: list[list[Row]] = [[] for _ in ok]
    for life in lives.values():
        for k, r in life.out:
            per_step[k].append(r)
    rank = {str(kind): i for i, kind in enumerate(KIND_ORDER)}
    return [sorted(rows, key=lambda r: (r[0], rank[r[1]], r[3] or "", r[4] or "")) for rows in per_step]


def _step(life: _Life, k: int, name: str, now: Stream | None, dc: int) -> None:
    if now is not None:
        if life.alive and life.version is not None:
            _compare(life, k, name, life.version, now)
        elif life.judged_before:
            life.out.append((k, (name, "stream_start", None, None, None)))
        life.alive, life.version, life.missing = True, now, 0
        life.last_master = _master(now) or life.last_master
    elif life.alive:
        life.missing += 1
        if life.missing == dc:
            life.out.append((k, (name, "stream_drop", None, None, None)))
            life.alive, life.version, life.last_master = False, None, None
    life.judged_before = True


def _compare(life: _Life, k: int, name: str, old: Stream, new: Stream) -> None:
    old_seqs = {p.upstream_sequence for p in old.publishers}
    new_seqs = {p.upstream_sequence for p in new.publishers}
    master = _master(new)
    regained = _master(old) is None
    if master is not None and life.last_master is not None and (regained or master != life.last_master):
        reason = "failover" if regained or life.last_master not in new_seqs else "handover"
        life.out.append((k, (name, "switchover", reason, life.last_master, master)))
    life.out.extend((k, (name, "publisher_join", None, None, s)) for s in new_seqs - old_seqs)
    life.out.extend((k, (name, "publisher_loss", None, s, None)) for s in old_seqs - new_seqs)


# ------------------------------------------------------------------------------------ helpers


def run_diff(
    steps: Sequence[Snapshot | None], dc: int, state: RegionState | None = None
) -> tuple[list[list[Row]], RegionState | None]:
    rules = DiffRules(drop_confirmations=dc)
    rows: list[list[Row]] = []
    for snap in steps:
        if snap is None:
            continue
        result = diff(state, snap, rules)
        _check_step(state, snap, result.state, result.events, dc)
        rows.append([row(e) for e in result.events])
        state = result.state
    return rows, state


def _check_step(
    before: RegionState | None, snap: Snapshot, after: RegionState, events: Sequence[Event], dc: int
) -> None:
    """Invariants of one step, stated on the states rather than on history."""
    prev_streams = {} if before is None else before.streams
    prev_absent = {} if before is None else before.absent
    for e in events:
        assert e.time == snap.taken_at
        assert (e.account, e.region) == (ACCOUNT, REGION)
        if e.kind is EventKind.STREAM_DROP:
            # Absent exactly dc consecutive judging snapshots: dc - 1 before, plus this one.
            assert e.stream not in snap.streams
            assert e.stream in prev_streams
            assert prev_absent.get(e.stream, 0) == dc - 1
            assert e.stream not in after.streams
        if e.kind is EventKind.STREAM_START:
            assert e.stream not in prev_streams
            assert e.stream in snap.streams
    assert after.absent.keys() <= after.streams.keys()
    assert all(0 < n < dc for n in after.absent.values())
    assert after.last_master.keys() <= after.streams.keys()
    assert snap.streams.keys() <= after.streams.keys()
    if before is None:
        assert events == ()


# ------------------------------------------------------------------------------------ properties


@settings(max_examples=300, deadline=None)
@given(steps=runs(), dc=st.integers(1, 3))
def test_full_list_matches_reference(steps: list[Snapshot | None], dc: int) -> None:
    rows, _ = run_diff(steps, dc)
    assert rows == reference(steps, dc)


@settings(max_examples=300, deadline=None)
@given(steps=runs(watch_list=True), dc=st.integers(1, 3))
def test_watch_list_matches_reference(steps: list[Snapshot | None], dc: int) -> None:
    rows, _ = run_diff(steps, dc)
    assert rows == reference(steps, dc)


@settings(max_examples=100, deadline=None)
@given(steps=runs(watch_list=True), dc=st.integers(1, 3))
def test_deterministic(steps: list[Snapshot | None], dc: int) -> None:
    assert run_diff(steps, dc) == run_diff(steps, dc)


@settings(max_examples=150, deadline=None)
@given(steps=runs(watch_list=True), dc=st.integers(1, 3), data=st.data())
def test_restart_through_state_file_changes_nothing(
    steps: list[Snapshot | None], dc: int, data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(steps)), label="split")
    whole, whole_state = run_diff(steps, dc)
    first, state = run_diff(steps[:split], dc)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.json"
        key = RegionKey(ACCOUNT, REGION)
        save_state(path, regions={} if state is None else {key: state}, counters={"n": split})
        saved = load_state(path)
    assert saved is not None
    restored = saved.regions.get(key)
    assert restored == state
    second, final_state = run_diff(steps[split:], dc, restored)
    assert first + second == whole
    assert final_state == whole_state
