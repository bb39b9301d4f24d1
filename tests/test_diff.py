"""Every transition of SPEC section 5, one table row each.

A scenario is a list of steps: a dict ``{stream name: publishers}`` is a successful snapshot
(``"A* B"``: A is master, B a backup; ``""`` a group with no publishers) and ``FAILED`` is a
failed poll, which never reaches ``diff``. The expectation is the events of each successful
step as ``(stream, kind[, reason], from, to)`` tuples.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import pytest

from exporter.diff import DiffResult, DiffRules, RegionState, diff
from exporter.model import Event, EventKind, Publisher, Snapshot, Stream, SwitchoverReason

FAILED: Final = "failed"
Step = Mapping[str, str] | str
Row = tuple[str | None, ...]


def publishers(spec: str) -> tuple[Publisher, ...]:
    out = []
    for i, token in enumerate(spec.split()):
        seq = token.rstrip("*")
        out.append(
            Publisher(
                upstream_sequence=seq,
                domain="push.example.com",
                app="live",
                publish_time=1_700_000_000.0 + i,
                source_from="直推流",
                is_master=token.endswith("*"),
            )
        )
    return tuple(out)


def stream(name: str, spec: str, *, host_group: str = "hg") -> Stream:
    return Stream(name=name, host_group=host_group, optimal_enable=1, publishers=publishers(spec))


def snapshot(streams: Mapping[str, str], *, t: float = 0.0, scope: frozenset[str] | None = None) -> Snapshot:
    return Snapshot(
        account="prod",
        region="ap-guangzhou",
        taken_at=t,
        streams={name: stream(name, spec) for name, spec in streams.items()},
        scope=scope,
    )


def row(event: Event) -> Row:
    if event.kind is EventKind.SWITCHOVER:
        assert event.reason is not None
        return (event.stream, str(event.kind), str(event.reason), event.from_, event.to)
    return (event.stream, str(event.kind), event.from_, event.to)


@dataclass
class Run:
    results: list[DiffResult]

    @property
    def rows(self) -> list[list[Row]]:
        return [[row(e) for e in r.events] for r in self.results]

    @property
    def state(self) -> RegionState:
        return self.results[-1].state


def run(steps: Sequence[Step], *, confirmations: int = 2) -> Run:
    rules = DiffRules(drop_confirmations=confirmations)
    state: RegionState | None = None
    results = []
    for t, step in enumerate(steps):
        if isinstance(step, str):
            assert step == FAILED
            continue  # a failed poll changes nothing: diff is not called
        result = diff(state, snapshot(step, t=float(t)), rules)
        results.append(result)
        state = result.state
    return Run(results)


def sw(stream: str, reason: str, from_: str, to: str) -> Row:
    return (stream, "switchover", reason, from_, to)


def join(stream: str, seq: str) -> Row:
    return (stream, "publisher_join", None, seq)


def loss(stream: str, seq: str) -> Row:
    return (stream, "publisher_loss", seq, None)


def start(stream: str) -> Row:
    return (stream, "stream_start", None, None)


def drop(stream: str) -> Row:
    return (stream, "stream_drop", None, None)


S = "s"

# (id, steps, drop_confirmations, expected events per successful step)
CASES: list[tuple[str, list[Step], int, list[list[Row]]]] = [
    ("baseline emits nothing", [{S: "A* B", "t": ""}], 2, [[]]),
    ("unchanged emits nothing", [{S: "A* B"}, {S: "A* B"}], 2, [[], []]),
    # The old master is still listed, as a backup.
    ("handover", [{S: "A* B"}, {S: "A B*"}], 2, [[], [sw(S, "handover", "A", "B")]]),
    # The old master left: a switchover and, since it left an online stream, a loss.
    (
        "failover is also a loss",
        [{S: "A* B"}, {S: "B*"}],
        2,
        [[], [sw(S, "failover", "A", "B"), loss(S, "A")]],
    ),
    # B was master between two polls; we only ever see A then C.
    (
        "double switch A->B->C seen as A->C (failover)",
        [{S: "A* B"}, {S: "C* B"}],
        2,
        [[], [sw(S, "failover", "A", "C"), join(S, "C"), loss(S, "A")]],
    ),
    (
        "double switch seen as A->C (handover)",
        [{S: "A* B C"}, {S: "A B C*"}],
        2,
        [[], [sw(S, "handover", "A", "C")]],
    ),
    ("backup lost", [{S: "A* B"}, {S: "A*"}], 2, [[], [loss(S, "B")]]),
    # The encoder reconnects with a fresh UpstreamSequence: a new publisher.
    (
        "backup rejoins with new sequence",
        [{S: "A* B"}, {S: "A*"}, {S: "A* B2"}],
        2,
        [[], [loss(S, "B")], [join(S, "B2")]],
    ),
    ("backup replaced between polls", [{S: "A* B"}, {S: "A* B2"}], 2, [[], [join(S, "B2"), loss(S, "B")]]),
    ("stream start", [{}, {S: "A* B"}], 2, [[], [start(S)]]),
    ("absent once then back: nothing", [{S: "A*"}, {}, {S: "A*"}], 2, [[], [], []]),
    ("absent twice: one drop", [{S: "A*"}, {}, {}, {}], 2, [[], [], [drop(S)], []]),
    ("drop_confirmations 1", [{S: "A*"}, {}, {}], 1, [[], [drop(S)], []]),
    ("drop_confirmations 3", [{S: "A*"}, {}, {}, {}], 3, [[], [], [], [drop(S)]]),
    ("drop_confirmations 3, back after two", [{S: "A*"}, {}, {}, {S: "A*"}], 3, [[], [], [], []]),
    # A missing stream resets its count when it shows again: the absences must be consecutive.
    ("absences not consecutive", [{S: "A*"}, {}, {S: "A*"}, {}, {S: "A*"}], 2, [[], [], [], [], []]),
    ("absent, failed, absent = drop", [{S: "A*"}, {}, FAILED, {}], 2, [[], [], [drop(S)]]),
    ("absent, failed, back = nothing", [{S: "A*"}, {}, FAILED, {S: "A*"}], 2, [[], [], []]),
    ("failed polls only", [{S: "A*"}, FAILED, FAILED, {S: "A*"}], 2, [[], []]),
    # StreamInfoList: null is a successful empty snapshot: it confirms drops, sorted by name.
    ("empty snapshot confirms drops", [{"t": "X*", S: "A*"}, {}, {}], 2, [[], [], [drop(S), drop("t")]]),
    ("drop then start again, new master", [{S: "A*"}, {}, {}, {S: "B*"}], 2, [[], [], [drop(S)], [start(S)]]),
    # Returns before the drop is confirmed, with other publishers: no start, but it changed.
    (
        "back before drop with a new master",
        [{S: "A* B"}, {}, {S: "B*"}],
        2,
        [[], [], [sw(S, "failover", "A", "B"), loss(S, "A")]],
    ),
    ("first master appears: no switchover", [{S: "A B"}, {S: "A* B"}], 2, [[], []]),
    ("first master after zero publishers", [{S: ""}, {S: "A*"}], 2, [[], [join(S, "A")]]),
    # The loss is counted when A leaves; the failover when B is made master.
    (
        "master, masterless, other master: failover",
        [{S: "A* B"}, {S: "B"}, {S: "B*"}],
        2,
        [[], [loss(S, "A")], [sw(S, "failover", "A", "B")]],
    ),
    # SPEC: gaining a master after having none is a failover whenever it had a master before.
    (
        "master, masterless, same master again: failover",
        [{S: "A* B"}, {S: "A B"}, {S: "A* B"}],
        2,
        [[], [], [sw(S, "failover", "A", "A")]],
    ),
    (
        "master, masterless, old master present: failover",
        [{S: "A* B"}, {S: "A B"}, {S: "A B*"}],
        2,
        [[], [], [sw(S, "failover", "A", "B")]],
    ),
    ("zero publishers stays online", [{S: "A*"}, {S: ""}, {S: ""}, {S: ""}], 2, [[], [loss(S, "A")], [], []]),
    # Two masters: the first flagged one counts.
    ("two masters, unchanged", [{S: "A* B*"}, {S: "A* B*"}], 2, [[], []]),
    ("two masters, order flips", [{S: "A* B*"}, {S: "B* A*"}], 2, [[], [sw(S, "handover", "A", "B")]]),
    ("second master joins", [{S: "A*"}, {S: "A* B*"}], 2, [[], [join(S, "B")]]),
    # Several streams and kinds in one snapshot: by stream, then kind, then sequence.
    (
        "deterministic order",
        [
            {"b": "A* B", "a": "A* B", "c": "X*"},
            {"b": "C D* E", "a": "B*", "d": "Y*"},
            {"b": "C D* E", "a": "B*", "d": "Y*"},
        ],
        2,
        [
            [],
            [
                sw("a", "failover", "A", "B"),
                loss("a", "A"),
                sw("b", "failover", "A", "D"),
                join("b", "C"),
                join("b", "D"),
                join("b", "E"),
                loss("b", "A"),
                loss("b", "B"),
                start("d"),
            ],
            [drop("c")],
        ],
    ),
]


@pytest.mark.parametrize(
    ("steps", "confirmations", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_transitions(steps: list[Step], confirmations: int, expected: list[list[Row]]) -> None:
    assert run(steps, confirmations=confirmations).rows == expected


class TestResultSets:
    def test_baseline_changes_every_stream(self) -> None:
        result = run([{S: "A*", "t": ""}]).results[0]
        assert result.changed == {S, "t"}
        assert result.dropped == frozenset()
        assert result.state.last_master == {S: "A"}

    def test_unchanged_stream_is_not_changed(self) -> None:
        result = run([{S: "A*", "t": "B*"}, {S: "A*", "t": "C*"}]).results[1]
        assert result.changed == {"t"}

    def test_data_change_without_publisher_change_is_changed_but_silent(self) -> None:
        state = diff(None, snapshot({S: "A*"}), DiffRules()).state
        moved = Snapshot(
            account="prod",
            region="ap-guangzhou",
            taken_at=1.0,
            streams={S: stream(S, "A*", host_group="other")},
        )
        result = diff(state, moved, DiffRules())
        assert result.changed == {S}
        assert result.events == ()

    def test_pending_drop_stays_in_state_and_is_not_changed(self) -> None:
        r = run([{S: "A*"}, {}, {S: "A*"}])
        assert r.results[1].state.streams.keys() == {S}
        assert r.results[1].state.absent == {S: 1}
        assert r.results[1].changed == frozenset()
        assert r.results[2].changed == frozenset()
        assert r.state.absent == {}

    def test_confirmed_drop_leaves_state(self) -> None:
        r = run([{S: "A*", "t": "B*"}, {"t": "B*"}, {"t": "B*"}])
        assert r.results[2].dropped == {S}
        assert S not in r.state.streams
        assert S not in r.state.last_master
        assert S not in r.state.absent

    def test_last_master_survives_masterless_spell(self) -> None:
        r = run([{S: "A* B"}, {S: "B"}])
        assert r.state.last_master == {S: "A"}

    def test_input_state_is_not_edited(self) -> None:
        state = run([{S: "A* B", "t": "X*"}, {S: "A* B"}]).state
        before = copy.deepcopy((dict(state.streams), dict(state.absent), dict(state.last_master)))
        diff(state, snapshot({S: "C*"}), DiffRules())
        diff(state, snapshot({}), DiffRules())
        assert (dict(state.streams), dict(state.absent), dict(state.last_master)) == before


class TestEventFields:
    def test_fields_come_from_the_snapshot(self) -> None:
        state = diff(None, snapshot({S: "A* B"}, t=10.0), DiffRules()).state
        (event, loss_event) = diff(state, snapshot({S: "B*"}, t=25.5), DiffRules()).events
        assert event == Event(
            time=25.5,
            account="prod",
            region="ap-guangzhou",
            stream=S,
            kind=EventKind.SWITCHOVER,
            reason=SwitchoverReason.FAILOVER,
            from_="A",
            to="B",
        )
        assert loss_event.kind is EventKind.PUBLISHER_LOSS
        assert loss_event.reason is None
        assert loss_event.to is None

    def test_odd_values_pass_through_untouched(self) -> None:
        name = 'live"room\\1\n直播间 ✓'
        seq_a, seq_b = '12"3', "4\\5\n6 7"

        def odd(master: str) -> Snapshot:
            pubs = tuple(
                Publisher(
                    upstream_sequence=seq,
                    domain='d"\\',
                    app="直播",
                    publish_time=0.0,
                    source_from="拉流转推(123)",
                    is_master=seq == master,
                )
                for seq in (seq_a, seq_b)
            )
            streams = {name: Stream(name=name, host_group="", optimal_enable=0, publishers=pubs)}
            return Snapshot(account='acc"\\', region="ap-hongkong", taken_at=0.0, streams=streams)

        (event,) = diff(diff(None, odd(seq_a), DiffRules()).state, odd(seq_b), DiffRules()).events
        assert (event.account, event.stream, event.from_, event.to) == ('acc"\\', name, seq_a, seq_b)

    def test_same_input_same_events(self) -> None:
        steps: list[Step] = [{"b": "A* B", "a": "C*"}, {"b": "B* D", "a": "E*", "c": "F*"}]
        assert run(steps).rows == run(steps).rows


class TestWatchList:
    """``Snapshot.scope``: only the names queried successfully this cycle can be absent."""

    rules = DiffRules(drop_confirmations=2)

    def scoped(self, streams: Mapping[str, str], scope: set[str], t: float = 0.0) -> Snapshot:
        return snapshot(streams, t=t, scope=frozenset(scope))

    def test_out_of_scope_name_is_untouched(self) -> None:
        state = diff(None, self.scoped({S: "A*", "t": "B*"}, {S, "t"}), self.rules).state
        for t in range(1, 6):  # t's query keeps failing: never absent, never dropped
            result = diff(state, self.scoped({S: "A*"}, {S}, t), self.rules)
            assert result.events == ()
            assert result.changed == frozenset()
            state = result.state
        assert state.streams.keys() == {S, "t"}
        assert state.absent == {}

    def test_empty_result_in_scope_means_offline(self) -> None:
        state = diff(None, self.scoped({S: "A*"}, {S}), self.rules).state
        state = diff(state, self.scoped({}, {S}, 1), self.rules).state
        result = diff(state, self.scoped({}, {S}, 2), self.rules)
        assert [row(e) for e in result.events] == [drop(S)]

    def test_failed_query_neither_confirms_nor_resets(self) -> None:
        state = diff(None, self.scoped({S: "A*", "t": "B*"}, {S, "t"}), self.rules).state
        state = diff(state, self.scoped({"t": "B*"}, {S, "t"}, 1), self.rules).state
        assert state.absent == {S: 1}
        state = diff(state, self.scoped({"t": "B*"}, {"t"}, 2), self.rules).state  # S's query failed
        assert state.absent == {S: 1}
        result = diff(state, self.scoped({"t": "B*"}, {S, "t"}, 3), self.rules)
        assert [row(e) for e in result.events] == [drop(S)]

    def test_first_sighting_of_a_never_judged_name_is_silent(self) -> None:
        # The baseline cycle could not query t; when it first answers, that is t's baseline.
        state = diff(None, self.scoped({S: "A*"}, {S}), self.rules).state
        result = diff(state, self.scoped({S: "A*", "t": "B*"}, {S, "t"}, 1), self.rules)
        assert result.events == ()
        assert result.changed == {"t"}
        assert result.state.seen_scope == frozenset({S, "t"})

    def test_name_judged_absent_before_then_present_is_a_start(self) -> None:
        state = diff(None, self.scoped({}, {S}), self.rules).state
        result = diff(state, self.scoped({S: "A*"}, {S}, 1), self.rules)
        assert [row(e) for e in result.events] == [start(S)]

    def test_full_list_after_watch_list_judges_only_known_names(self) -> None:
        state = diff(None, self.scoped({}, {S}), self.rules).state
        result = diff(state, snapshot({S: "A*", "t": "B*"}, t=1), self.rules)
        assert [row(e) for e in result.events] == [start(S)]  # t was never looked for
        assert result.state.seen_scope is None
        after = diff(result.state, snapshot({S: "A*", "t": "B*", "u": "C*"}, t=2), self.rules)
        assert [row(e) for e in after.events] == [start("u")]

    def test_full_list_state_judges_every_watched_name(self) -> None:
        state = diff(None, snapshot({}), self.rules).state
        result = diff(state, self.scoped({S: "A*"}, {S}, 1), self.rules)
        assert [row(e) for e in result.events] == [start(S)]
        assert result.state.seen_scope is None


def test_drop_confirmations_must_be_positive() -> None:
    with pytest.raises(ValueError, match="drop_confirmations"):
        DiffRules(drop_confirmations=0)
