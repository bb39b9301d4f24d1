"""A reply becomes detection state: scrub -> parse -> diff -> store -> events, under one lock.

This owns the only mutable detection state: each region's ``RegionState``, its parse cache
and the streams last handed to the store. Parse, diff and ``store.apply`` of a 20k-stream
region take long enough to stall the event loop, so callers run :meth:`Applier.parse` and
:meth:`Applier.apply` in worker threads. Everything that mutates detection state happens
inside :meth:`Applier.apply` under one ``threading.Lock``, so a poll cancelled mid-way can
never leave the store and the diff state disagreeing, and a state-file save never sees half
an update.

A by-name reply (a drop confirmation) is a judging snapshot for its names only
(``Snapshot.scope``). The diff takes it as such; the store, which computes region gauges
from the streams it is given, gets the region's last full view with those names updated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

import structlog

from exporter.config import Config
from exporter.diff import DiffResult, DiffRules, RegionState, diff
from exporter.events import event_to_dict
from exporter.model import RegionKey, Snapshot, Stream
from exporter.parse import ParseCache, parse_snapshot, parse_snapshot_cached
from exporter.redaction import SECRETS
from exporter.scheduler.ports import EventSink, Health, Store

__all__ = ["Applier", "scrub_body"]


def scrub_body(body: bytes) -> bytes:
    """Remove every known secret from a vendor reply before it can reach a label, page or log.

    An upstream that reflects the ``X-TC-Token`` header into ``Error.Code`` or a stream field
    would otherwise put the token on ``/metrics`` (issue: "Redaction covers every output").
    The secret store does a cheap ``in`` check first, so clean replies are not copied.
    """
    return SECRETS.scrub_bytes(body)


class Applier:
    """Parses replies and applies snapshots of every region; thread-safe.

    Args:
        config: read for ``drop_confirmations`` and the stream filter (:meth:`configure`
            swaps it on reload).
        store, health, events: the parts it writes.
        clock: wall clock (Unix seconds) for ``taken_at``.
        after_apply: called in the worker thread after each applied snapshot, with whether it
            was the region's baseline (the daemon freezes the GC there: ``gcfreeze.py``).
    """

    def __init__(
        self,
        config: Config,
        *,
        store: Store,
        health: Health,
        events: EventSink,
        clock: Callable[[], float] = time.time,
        after_apply: Callable[[bool], None] | None = None,
    ) -> None:
        self._store = store
        self._after_apply = after_apply
        self._health = health
        self._events = events
        self._clock = clock
        self._log = structlog.get_logger("exporter.scheduler")
        self.lock = threading.Lock()  # states + store + event log, see module docstring
        self._states: dict[RegionKey, RegionState] = {}
        self._caches: dict[RegionKey, ParseCache] = {}  # full-list replies only
        self._views: dict[RegionKey, Mapping[str, Stream]] = {}  # streams last given to the store
        self._unexported: dict[RegionKey, int] = {}
        self._anomalies: dict[RegionKey, Mapping[str, int]] = {}
        self._judging: dict[RegionKey, bool] = {}
        self._retired: set[RegionKey] = set()  # removed by a reload; a late apply must not revive them
        self.dirty = False
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Take the detection rules and stream filter of a (re)loaded config."""
        self._rules = DiffRules(drop_confirmations=config.drop_confirmations)
        self._admit = config.streams.admits
        self._max_per_region = config.streams.max_per_region

    # ------------------------------------------------------------------------------ reading

    def state(self, key: RegionKey) -> RegionState | None:
        with self.lock:
            return self._states.get(key)

    def parse(self, key: RegionKey, body: bytes, name: str | None) -> Snapshot:
        """Scrub and parse one reply; ``name`` given: a by-name reply judging that name only."""
        body = scrub_body(body)
        if name is not None:
            return parse_snapshot(
                body,
                account=key.account,
                region=key.region,
                taken_at=self._clock(),
                scope=frozenset((name,)),
                admit=self._admit,
            )
        # Reuses the Stream of every group unchanged since the last reply (see parse.py). A
        # parse that raises keeps the old cache: a cache is only ever an optimisation.
        snapshot, self._caches[key] = parse_snapshot_cached(
            body,
            account=key.account,
            region=key.region,
            taken_at=self._clock(),
            previous=self._caches.get(key),
            admit=self._admit,
        )
        return snapshot

    # ------------------------------------------------------------------------------ applying

    def apply(self, key: RegionKey, snapshot: Snapshot, *, partial: bool = False) -> DiffResult:
        """Diff and store one snapshot, atomically with respect to saves and other regions.

        Args:
            partial: a by-name confirmation: the store gets the region's last view with the
                judged names updated, so region gauges still count the whole region.
        """
        with self.lock:
            previous = self._states.get(key)
            if key in self._retired:  # a poll cancelled by a reload, finishing in its thread
                return DiffResult(
                    state=previous or _EMPTY, events=(), changed=frozenset(), dropped=frozenset()
                )
            result = diff(previous, snapshot, self._rules)
            stored = self._store_view(key, snapshot, result, partial=partial)
            self._store.apply(stored, changed=result.changed, dropped=result.dropped, events=result.events)
            self._states[key] = result.state
            self._events.record(result.events)
            if (
                result.events
                or result.changed
                or result.dropped
                or previous is None
                or previous.absent != result.state.absent
                or previous.seen_scope != result.state.seen_scope
            ):
                self.dirty = True
        for event in result.events:
            fields = event_to_dict(event)
            del fields["time"]  # the log line carries its own timestamp
            self._log.info("stream_event", **fields)
        self._count_anomalies(key, snapshot, log=not partial)
        if not partial:
            self._log_judging(key, snapshot)
        self._log_groups(snapshot, result.changed)
        self._log_cap(key)
        # Render the scrape bodies here, in the worker thread, rather than in the next scrape.
        self._store.prepare()
        if self._after_apply is not None:
            self._after_apply(previous is None)
        return result

    def _store_view(
        self, key: RegionKey, snapshot: Snapshot, result: DiffResult, *, partial: bool
    ) -> Snapshot:
        if not partial or snapshot.scope is None:
            self._views[key] = snapshot.streams
            return snapshot
        view = dict(self._views.get(key, {}))
        for name in snapshot.scope:
            found = snapshot.streams.get(name)
            if found is not None:
                view[name] = found
            else:
                view.pop(name, None)
        self._views[key] = view
        return Snapshot(
            account=snapshot.account,
            region=snapshot.region,
            taken_at=snapshot.taken_at,
            streams=view,
            request_id=snapshot.request_id,
        )

    def vanished(self, key: RegionKey, snapshot: Snapshot) -> list[str]:
        """Names believed online that a full list did not show: the candidates to ask by name.

        Pending drops after a judging list, and names a non-judging list (20,000 groups or an
        unusable group) left out; names whose group was unusable (``unknown``) did not vanish.
        """
        unknown = snapshot.unknown
        with self.lock:
            state = self._states.get(key)
            if state is None:
                return []
            present = snapshot.streams
            return sorted(n for n in state.streams if n not in present and n not in unknown)

    def expire(self, now: float) -> int:
        """Forget dropped streams whose retention has passed (housekeeping)."""
        with self.lock:
            return self._store.expire(now)

    # ------------------------------------------------------------------------------ persistence

    def export(self) -> tuple[dict[RegionKey, RegionState], dict[str, Any]]:
        """Region states and store counters as of now, consistent with each other; clears ``dirty``."""
        with self.lock:
            self.dirty = False
            return dict(self._states), self._store.export_counters()

    def restore(
        self,
        regions: Mapping[RegionKey, RegionState],
        counters: Mapping[str, Any],
        wanted: Collection[RegionKey],
    ) -> int:
        """Adopt saved states and counters and export them at once; returns regions restored.

        The last saved snapshot of each region goes to the store as it was (no events), so
        counters continue on the very first scrape after a restart; the first poll then diffs
        against that same state.

        Raises:
            ValueError: counters of a foreign or damaged shape; nothing was adopted.
        """
        now = self._clock()
        restored = 0
        with self.lock:
            self._store.restore_counters(dict(counters))
            for key, region_state in regions.items():
                if key not in wanted:
                    continue
                restored += 1
                self._states[key] = region_state
                last = Snapshot(
                    account=key.account, region=key.region, taken_at=now, streams=region_state.streams
                )
                self._views[key] = region_state.streams
                self._store.apply(
                    last, changed=frozenset(region_state.streams), dropped=frozenset(), events=()
                )
        self._store.prepare()
        return restored

    def activate(self, key: RegionKey) -> None:
        """A region (re)added by a reload: its polls apply again, from a baseline."""
        with self.lock:
            self._retired.discard(key)

    def remove(self, key: RegionKey) -> None:
        """Forget a region removed (or re-keyed) by a reload; its series leave the store."""
        with self.lock:
            self._retired.add(key)
            self._states.pop(key, None)
            self._caches.pop(key, None)
            self._views.pop(key, None)
            self._unexported.pop(key, None)
            self._anomalies.pop(key, None)
            self._judging.pop(key, None)
            self._store.remove_region(key)
            self.dirty = True
        self._store.prepare()

    # ------------------------------------------------------------------------------ logging

    def _count_anomalies(self, key: RegionKey, snapshot: Snapshot, *, log: bool) -> None:
        """Odd records in a successful reply: counted always, logged once per change (SPEC 9)."""
        anomalies = snapshot.anomalies
        for reason, count in anomalies.items():
            self._health.parse_anomalies(key, reason, count)
        if not log or dict(anomalies) == self._anomalies.get(key, {}):
            return
        self._anomalies[key] = dict(anomalies)
        self._log.warning(
            "parse_anomalies" if anomalies else "parse_anomalies_cleared",
            account=key.account,
            region=key.region,
            request_id=snapshot.request_id,
            **{f"reason_{reason}": count for reason, count in sorted(anomalies.items())},
        )

    def _log_judging(self, key: RegionKey, snapshot: Snapshot) -> None:
        """Say when a full list stops (or starts again) judging absences, not on every poll."""
        judging = snapshot.judging_absences
        if snapshot.scope is not None or judging == self._judging.get(key, True):
            self._judging[key] = judging
            return
        self._judging[key] = judging
        if judging:
            self._log.info("absences_judged_again", account=key.account, region=key.region)
            return
        self._log.warning(
            "absences_not_judged",
            account=key.account,
            region=key.region,
            streams=len(snapshot.streams),
            hint="the full list may be truncated at the vendor's 20,000-stream ceiling or had an unusable "
            "group: its absences confirm no drop; only by-name replies do (drop_confirm_queries)",
        )

    def _log_groups(self, snapshot: Snapshot, changed: Collection[str]) -> None:
        """Vendor groups that break the one-master rule, logged once when they change."""
        for name in sorted(changed):
            stream = snapshot.streams.get(name)
            if stream is None:
                continue
            masters = sum(1 for p in stream.publishers if p.is_master)
            problem = _group_problem(len(stream.publishers), masters)
            if problem is not None:
                self._log.info(
                    "stream_anomaly",
                    account=snapshot.account,
                    region=snapshot.region,
                    stream=name,
                    problem=problem,
                    publishers=len(stream.publishers),
                    masters=masters,
                )

    def _log_cap(self, key: RegionKey) -> None:
        """Say when max_per_region starts or stops hiding streams, not on every poll."""
        unexported = self._store.unexported(key)
        if unexported == self._unexported.get(key, 0):
            return
        self._unexported[key] = unexported
        self._log.warning(
            "per_stream_series_capped",
            account=key.account,
            region=key.region,
            unexported=unexported,
            max_per_region=self._max_per_region,
            metric="tencent_live_region_streams_unexported",
        )


_EMPTY = RegionState(streams={}, absent={}, last_master={})


def _group_problem(publishers: int, masters: int) -> str | None:
    if publishers == 0:
        return "no_publishers"
    if masters == 0:
        return "no_master"
    if masters > 1:
        return "several_masters"
    return None
