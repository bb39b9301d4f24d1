"""The detection core: what changed between a region's state and its newest snapshot.

Pure by design (SPEC section 5, STYLE anti-patterns): no clock, no logging, no I/O, no metric
calls. Time arrives on ``Snapshot.taken_at``; events leave as values; the runner logs and
records them. That is what lets the property tests replay any sequence of snapshots, and a
state file resume a run as if it had never stopped.

Choices the SPEC leaves open, decided here:

- **Judged names.** A stream can only be *absent* from a snapshot that looked for it: every
  name in a full-list poll, only the names in ``Snapshot.scope`` in watch-list mode. Names
  outside the scope keep their state untouched (no absence counted, no reset, not changed).
- **First sighting is a baseline, per name.** ``stream_start`` needs a name that an earlier
  snapshot already judged (``RegionState.seen_scope``). A watched name whose queries kept
  failing until now, or one added to the watch list, is first seen silently, exactly like
  the region's baseline. ``state is None`` is simply "nothing judged yet".
- **A stream that returns before its drop is confirmed** counts no drop and no start, but it
  is compared with its last seen version: a different master is a switchover, new or missing
  sequences are joins and losses. The publishers really did change while it was away.
- **A failover's publisher_loss is the old master leaving.** Joins and losses come from the
  sequences of consecutive versions of a stream, so the loss is counted in the snapshot where
  the old master disappeared; a master that left during a masterless spell was counted then
  and is not counted again when the new master appears.
- **A master regained after a masterless spell** is a ``failover`` switchover from the last
  known master whenever the stream had one, even if that same publisher is master again: the
  previous snapshot had no master, so there was nothing to hand over from (SPEC precise rules).
- **Unknown is neither present nor absent.** A name in ``Snapshot.unknown`` (its group was
  unusable) keeps its last state and its pending drop count, unconfirmed and unreset; a
  snapshot with ``judging_absences=False`` (a nameless group was skipped, or the list may be
  truncated) does the same for every name it does not list. Present streams are compared as
  usual either way.
- **Two masters** in one group: ``Stream.master`` takes the first, so a vendor glitch is at
  worst a spurious handover, never a crash. **Zero publishers**: online, masterless.
- **Event order** is deterministic: by stream name, then :data:`KIND_ORDER`, then sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .model import Event, EventKind, Snapshot, Stream, SwitchoverReason

__all__ = ["KIND_ORDER", "DiffResult", "DiffRules", "RegionState", "diff"]

#: Order of events of one stream within one snapshot.
KIND_ORDER: tuple[EventKind, ...] = (
    EventKind.SWITCHOVER,
    EventKind.PUBLISHER_JOIN,
    EventKind.PUBLISHER_LOSS,
    EventKind.STREAM_START,
    EventKind.STREAM_DROP,
)
_KIND_RANK: Mapping[EventKind, int] = {kind: rank for rank, kind in enumerate(KIND_ORDER)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffRules:
    """Knobs of the detection, from the config."""

    drop_confirmations: int = 2

    def __post_init__(self) -> None:
        if self.drop_confirmations < 1:
            raise ValueError(f"drop_confirmations must be at least 1, got {self.drop_confirmations}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionState:
    """Everything the diff remembers about one region between snapshots.

    Treated as immutable: :func:`diff` builds new mappings (or reuses unchanged ones), it never
    edits the ones it was given.

    Attributes:
        streams: last seen version of every stream believed online, pending drops included.
        absent: name -> consecutive judging snapshots without it (only pending drops; a key
            is always also in ``streams``).
        last_master: last known master sequence per stream in ``streams``; survives a
            masterless spell, forgotten with a confirmed drop.
        seen_scope: names some snapshot has already judged; ``None`` once a full-list snapshot
            was applied (then every name has been judged). Decides whether a newly seen
            stream is a ``stream_start`` or a silent first sighting.
    """

    streams: Mapping[str, Stream]
    absent: Mapping[str, int]
    last_master: Mapping[str, str]
    seen_scope: frozenset[str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffResult:
    """The new state plus what the store and event log need to hear about.

    Attributes:
        changed: names in the snapshot that are new or whose data differs from the state's
            version (the store re-renders only these).
        dropped: names whose drop this snapshot confirmed.
    """

    state: RegionState
    events: tuple[Event, ...]
    changed: frozenset[str]
    dropped: frozenset[str]


# The region's baseline: nothing seen, nothing judged.
_NOTHING_JUDGED = RegionState(streams={}, absent={}, last_master={}, seen_scope=frozenset())


def diff(state: RegionState | None, snapshot: Snapshot, rules: DiffRules) -> DiffResult:
    """Compare a successful snapshot with the region's state.

    Args:
        state: the previous result's state, or one restored from the state file; ``None`` for
            the region's first successful snapshot (baseline: no events, every stream changed).
        snapshot: a successful poll; failed polls never get here, so they neither confirm nor
            reset a pending drop.
        rules: drop confirmation count.
    """
    prev = _NOTHING_JUDGED if state is None else state
    builder = _Builder(prev, snapshot)
    builder.compare_present()
    builder.count_absent(rules.drop_confirmations)
    return builder.result()


class _Builder:
    """One diff in progress; lets the steps stay small without passing ten arguments around."""

    __slots__ = ("_absent", "_changed", "_dropped", "_events", "_last_master", "_prev", "_snap", "_streams")

    def __init__(self, prev: RegionState, snapshot: Snapshot) -> None:
        self._prev = prev
        self._snap = snapshot
        self._events: list[Event] = []
        self._changed: set[str] = set()
        self._dropped: set[str] = set()
        # Copy-on-write: most polls change few streams, so last_master is copied only if touched.
        self._last_master: dict[str, str] | None = None
        self._absent: dict[str, int] = {}
        # Every present stream plus, from the previous state, pending drops and unjudged names.
        self._streams: dict[str, Stream] = dict(snapshot.streams)

    def compare_present(self) -> None:
        prev_streams = self._prev.streams
        for name, stream in self._snap.streams.items():
            old = prev_streams.get(name)
            if old is stream or old == stream:
                continue  # the common case at 100k streams: nothing to do
            self._changed.add(name)
            if old is None:
                self._first_seen(name, stream)
            else:
                self._compare(name, old, stream)

    def _first_seen(self, name: str, stream: Stream) -> None:
        seen = self._prev.seen_scope
        if seen is None or name in seen:
            self._event(name, EventKind.STREAM_START)
        master = stream.master
        if master is not None:
            self._set_master(name, master.upstream_sequence)

    def _compare(self, name: str, old: Stream, new: Stream) -> None:
        old_seqs = old.sequences
        new_seqs = new.sequences
        master = new.master
        if master is not None:
            to = master.upstream_sequence
            previous = self._prev.last_master.get(name)
            reason = _switchover_reason(previous, to, regained=old.master is None, present=new_seqs)
            if reason is not None:
                self._event(name, EventKind.SWITCHOVER, reason=reason, from_=previous, to=to)
            if previous != to:
                self._set_master(name, to)
        if old_seqs != new_seqs:
            for seq in new_seqs - old_seqs:
                self._event(name, EventKind.PUBLISHER_JOIN, to=seq)
            for seq in old_seqs - new_seqs:
                self._event(name, EventKind.PUBLISHER_LOSS, from_=seq)

    def count_absent(self, confirmations: int) -> None:
        prev = self._prev
        snap = self._snap
        if snap.judging_absences:
            for name in self._absent_names():
                count = prev.absent.get(name, 0) + 1
                if count >= confirmations:
                    self._dropped.add(name)
                    self._event(name, EventKind.STREAM_DROP)
                    if name in prev.last_master:
                        self._master_map().pop(name, None)
                else:
                    self._absent[name] = count
                    self._streams[name] = prev.streams[name]
        if snap.scope is None and snap.judging_absences and not snap.unknown:
            return  # a full list judged every name: nothing left to carry over
        # Carry over what this snapshot did not judge (out of scope, unknown, or a reply that
        # judges no absence), with its pending count neither confirmed nor reset.
        present = snap.streams
        for name, old in prev.streams.items():
            if name not in present and name not in self._streams and name not in self._dropped:
                self._streams[name] = old
                if name in prev.absent:
                    self._absent[name] = prev.absent[name]

    def _absent_names(self) -> Iterable[str]:
        """State streams this snapshot looked for and did not find (unknown names excluded)."""
        present = self._snap.streams
        prev_streams = self._prev.streams
        scope = self._snap.scope
        unknown = self._snap.unknown
        if scope is None:
            absent = prev_streams.keys() - present.keys()
            return absent - unknown if unknown else absent
        return [n for n in scope if n in prev_streams and n not in present and n not in unknown]

    def result(self) -> DiffResult:
        self._events.sort(key=_event_order)
        state = RegionState(
            streams=self._streams,
            absent=self._absent,
            last_master=self._prev.last_master if self._last_master is None else self._last_master,
            seen_scope=self._seen_scope(),
        )
        return DiffResult(
            state=state,
            events=tuple(self._events),
            changed=frozenset(self._changed),
            dropped=frozenset(self._dropped),
        )

    def _seen_scope(self) -> frozenset[str] | None:
        seen = self._prev.seen_scope
        scope = self._snap.scope
        if seen is None or scope is None:
            # A full-list snapshot judges every name, and once judged always judged.
            return None
        judged = scope | self._snap.streams.keys()
        return seen if judged <= seen else seen | judged

    def _master_map(self) -> dict[str, str]:
        if self._last_master is None:
            self._last_master = dict(self._prev.last_master)
        return self._last_master

    def _set_master(self, name: str, sequence: str) -> None:
        self._master_map()[name] = sequence

    def _event(
        self,
        name: str,
        kind: EventKind,
        *,
        reason: SwitchoverReason | None = None,
        from_: str | None = None,
        to: str | None = None,
    ) -> None:
        snap = self._snap
        self._events.append(
            Event(
                time=snap.taken_at,
                account=snap.account,
                region=snap.region,
                stream=name,
                kind=kind,
                reason=reason,
                from_=from_,
                to=to,
            )
        )


def _switchover_reason(
    previous: str | None, to: str, *, regained: bool, present: frozenset[str]
) -> SwitchoverReason | None:
    """SPEC section 5: compare with the previous snapshot's master, where "none" counts as gone.

    A stream that regains a master after a masterless spell is a failover whenever it had a
    master before, whoever the new master is (the previous snapshot had no master to hand
    over from); a stream whose first master appears is no switchover.
    """
    if previous is None:
        return None
    if regained:
        return SwitchoverReason.FAILOVER
    if previous == to:
        return None
    return SwitchoverReason.HANDOVER if previous in present else SwitchoverReason.FAILOVER


def _event_order(event: Event) -> tuple[str, int, str, str]:
    return (event.stream, _KIND_RANK[event.kind], event.from_ or "", event.to or "")
