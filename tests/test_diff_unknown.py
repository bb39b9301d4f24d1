"""Unknown names and non-judging snapshots (SPEC section 9 "One odd record never blinds a region").

A step is ``(streams, unknown, judging)``: the streams listed (``"A* B"`` as in test_diff), the
names whose group was unusable, and ``judging_absences``. The expectation is each step's
events as ``(stream, kind)`` and, at the end, which names the state still holds and the
pending-drop counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from exporter.diff import DiffRules, RegionState, diff
from tests.test_diff import snapshot

Step = tuple[Mapping[str, str], frozenset[str], bool]
ONLINE = {"s": "1* 2", "t": "3*"}


def _step(streams: Mapping[str, str], unknown: Sequence[str] = (), judging: bool = True) -> Step:
    return (streams, frozenset(unknown), judging)


# (steps, events per step after the baseline, names kept, pending counts at the end)
ROWS = [
    pytest.param(
        [_step(ONLINE), _step({"t": "3*"}, ["s"])],
        [[]],
        {"s", "t"},
        {},
        id="unknown-online-stream-keeps-its-state",
    ),
    pytest.param(
        [_step(ONLINE), _step({"t": "3*"}), _step({"t": "3*"}, ["s"]), _step({"t": "3*"})],
        [[], [], [("s", "stream_drop")]],
        {"t"},
        {},
        id="absent-unknown-absent-is-two-confirmations",
    ),
    pytest.param(
        [_step(ONLINE), _step({"t": "3*"}), _step({"t": "3*"}, ["s"]), _step(ONLINE)],
        [[], [], []],
        {"s", "t"},
        {},
        id="absent-unknown-back-counts-nothing",
    ),
    pytest.param(
        [_step(ONLINE), _step({"t": "3*"}, judging=False)],
        [[]],
        {"s", "t"},
        {},
        id="non-judging-reply-confirms-no-absence",
    ),
    pytest.param(
        [_step(ONLINE), _step({"t": "3*"}), _step({}, judging=False), _step({"t": "3*"})],
        [[], [], [("s", "stream_drop")]],
        {"t"},
        {},
        id="non-judging-reply-neither-confirms-nor-resets",
    ),
    pytest.param(
        [_step(ONLINE), _step({"t": "3*"}), _step({"t": "3*"}, judging=False)],
        [[], []],
        {"s", "t"},
        {"s": 1},
        id="pending-count-survives-a-non-judging-reply",
    ),
    pytest.param(
        [_step(ONLINE), _step({"s": "2*", "t": "3*"}, judging=False)],
        [[("s", "switchover"), ("s", "publisher_loss")]],
        {"s", "t"},
        {},
        id="present-streams-are-compared-as-usual",
    ),
    pytest.param(
        [_step(ONLINE), _step({"s": "1* 2", "t": "3*", "u": "5*"}, judging=False)],
        [[("u", "stream_start")]],
        {"s", "t", "u"},
        {},
        id="a-new-stream-in-a-non-judging-reply-starts",
    ),
    pytest.param(
        [_step({"t": "3*"}, ["s"]), _step(ONLINE)],
        [[("s", "stream_start")]],
        {"s", "t"},
        {},
        id="a-name-unknown-since-the-baseline-starts-when-readable",
    ),
]


@pytest.mark.parametrize(("steps", "events", "kept", "pending"), ROWS)
def test_unknown_and_non_judging(
    steps: list[Step], events: list[list[tuple[str, str]]], kept: set[str], pending: dict[str, int]
) -> None:
    rules = DiffRules(drop_confirmations=2)
    state: RegionState | None = None
    seen: list[list[tuple[str, str]]] = []
    for index, (streams, unknown, judging) in enumerate(steps):
        snap = replace(snapshot(streams, t=float(index)), unknown=unknown, judging_absences=judging)
        result = diff(state, snap, rules)
        if state is not None:
            seen.append([(e.stream, str(e.kind)) for e in result.events])
        state = result.state
    assert seen == events
    assert state is not None
    assert set(state.streams) == kept
    assert dict(state.absent) == pending


def test_unknown_stream_is_neither_changed_nor_dropped() -> None:
    rules = DiffRules(drop_confirmations=1)
    base = diff(None, snapshot(ONLINE), rules)
    result = diff(base.state, replace(snapshot({"t": "3*"}), unknown=frozenset({"s"})), rules)
    assert result.changed == frozenset() and result.dropped == frozenset()
    assert result.state.streams["s"] is base.state.streams["s"]
    assert result.state.last_master == base.state.last_master


def test_unknown_in_watch_list_mode_keeps_the_pending_count() -> None:
    rules = DiffRules(drop_confirmations=3)
    scope = frozenset({"s"})
    state = diff(None, snapshot({"s": "1*"}, scope=scope), rules).state
    state = diff(state, snapshot({}, scope=scope), rules).state
    assert dict(state.absent) == {"s": 1}
    state = diff(state, replace(snapshot({}, scope=scope), unknown=frozenset({"s"})), rules).state
    assert dict(state.absent) == {"s": 1}
    assert diff(state, snapshot({}, scope=scope), rules).state.absent == {"s": 2}
