"""The simulated fleet: accounts, and per region the online streams with their publishers.

All state sits behind one lock; every mutation bumps ``version`` and drops the rendered JSON
of the streams it touched (``listing.py``), so a 20,000-stream region is re-rendered stream by
stream, not as a whole, and an unchanged region is served from one cached byte string.

Streams and publishers are frozen values replaced on change, so a caller holding one never
sees it move under its feet. The scenario (random but seeded) lives in ``scenario.py`` and
drives the world only through the control methods below, exactly as a test does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from exporter.simulator.errors import ACTION_REGIONS
from exporter.simulator.faults import Fault, FaultQueue
from exporter.simulator.listing import LIST_LIMIT, Listings
from exporter.simulator.values import DIRECT_PUSH, Account, SimPublisher, SimStream, format_publish_time

__all__ = [
    "DEFAULT_REGIONS",
    "LIST_LIMIT",
    "Account",
    "SimPublisher",
    "SimStream",
    "SimulatorError",
    "World",
    "format_publish_time",
]

DEFAULT_REGIONS: tuple[str, ...] = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai")


class SimulatorError(ValueError):
    """A control call that makes no sense for the current world (unknown stream, ...)."""


class World:
    """Accounts, streams per region, pending faults, and the seeded random source.

    Args:
        accounts: keys the simulator accepts.
        regions: regions populated at start (others served by the action reply null).
        streams_per_region: initial (and target) number of online streams per region.
        seed: makes population and ``step()`` reproducible.
        clock: Unix seconds, for PublishTime of new publishers.
        changes_per_step: scenario changes per region per ``step()``.
        list_limit: most groups one full-list reply holds; the vendor documents 20,000 and
            says nothing of which ones it leaves out (here: the most recently started).
    """

    def __init__(
        self,
        *,
        accounts: Iterable[Account] = (),
        regions: Iterable[str] = DEFAULT_REGIONS,
        streams_per_region: int = 0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        changes_per_step: int = 2,
        list_limit: int = LIST_LIMIT,
    ) -> None:
        self._lock = threading.RLock()
        self._accounts = {a.secret_id: a for a in accounts}
        self._clock = clock
        self.rng = random.Random(seed)
        self.target_streams = streams_per_region
        self.changes_per_step = changes_per_step
        self._listings = Listings(list_limit)
        self.faults = FaultQueue()
        self._version = 0
        self._streams: dict[str, dict[str, SimStream]] = {}
        self._used_sequences: set[str] = set()
        self._name_counter: dict[str, int] = {}
        # Scenario memory: names that went offline (may come back) and publishers lost
        # from a stream (may rejoin it, with a new UpstreamSequence).
        self.offline_names: dict[str, list[str]] = {}
        self.lost_publishers: dict[str, list[tuple[str, SimPublisher]]] = {}
        for region in regions:
            self._region(region)
            for _ in range(streams_per_region):
                self._populate_one(region)

    # ----- accounts -------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        with self._lock:
            self._accounts[account.secret_id] = account

    def account(self, secret_id: str) -> Account | None:
        with self._lock:
            return self._accounts.get(secret_id)

    @property
    def secret_ids(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._accounts)

    # ----- reading --------------------------------------------------------------------

    @property
    def lock(self) -> threading.RLock:
        """Held by the scenario across a whole step so a reply never sees half of one."""
        return self._lock

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def regions(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._streams)

    def now(self) -> int:
        return int(self._clock())

    def streams(self, region: str) -> list[SimStream]:
        with self._lock:
            return list(self._streams.get(region, {}).values())

    def stream(self, region: str, name: str) -> SimStream | None:
        with self._lock:
            return self._streams.get(region, {}).get(name)

    def render_list(self, region: str, stream_name: str | None = None) -> bytes:
        """``StreamInfoList`` as JSON bytes: an array, or ``null`` when nothing matches.

        The vendor sends ``null`` rather than ``[]`` when no stream is online; the same holds
        for a StreamName that is not online.
        """
        with self._lock:
            return self._listings.render(region, self._streams.get(region, {}), stream_name)

    def state(self) -> dict[str, Any]:
        """A JSON-able summary for ``GET /_sim/state``; holds no secret."""
        with self._lock:
            regions = {
                region: {
                    "streams": len(table),
                    "publishers": sum(len(s.publishers) for s in table.values()),
                    "redundant": sum(1 for s in table.values() if len(s.publishers) >= 2),
                    "without_master": sum(1 for s in table.values() if s.master is None),
                }
                for region, table in self._streams.items()
            }
            return {
                "version": self._version,
                "accounts": list(self._accounts),
                "regions": regions,
                "faults": [dict(f.to_dict(), remaining=n) for f, n in self.faults.pending()],
            }

    # ----- control --------------------------------------------------------------------

    @property
    def list_limit(self) -> int:
        with self._lock:
            return self._listings.limit

    def set_list_limit(self, limit: int) -> None:
        """Change how many groups a full list holds at most (the vendor: 20,000)."""
        if limit < 1:
            raise SimulatorError("list_limit must be >= 1")
        with self._lock:
            self._listings.set_limit(limit)

    def inject(self, fault: Fault) -> None:
        self.faults.add(fault)

    def add_stream(
        self,
        region: str,
        name: str | None = None,
        *,
        publishers: int = 2,
        master: bool = True,
        host_group: str = "",
        optimal_enable: int = 0,
    ) -> SimStream:
        """Bring a stream online with fresh publishers; the first is master unless ``master=False``.

        Raises:
            SimulatorError: the name is already online, or ``publishers < 1``.
        """
        if publishers < 1:
            raise SimulatorError("a stream needs at least one publisher")
        with self._lock:
            table = self._region(region)
            name = name or self._new_name(region)
            if name in table:
                raise SimulatorError(f"stream {name!r} is already online in {region}")
            domain, app = self._new_origin()
            now = self.now()
            pubs = tuple(
                self._new_publisher(domain=domain, app=app, publish_time=now, master=master and i == 0)
                for i in range(publishers)
            )
            stream = SimStream(
                name=name, host_group=host_group, optimal_enable=optimal_enable, publishers=pubs
            )
            self._put(region, stream)
            return stream

    def remove_stream(self, region: str, name: str) -> SimStream:
        """Take a stream offline (all its publishers stop)."""
        with self._lock:
            stream = self._get(region, name)
            del self._streams[region][name]
            self._changed(region, name)
            return stream

    def handover(self, region: str, name: str, to: str | None = None) -> str:
        """Move the master flag to an existing publisher (the old master stays as a backup).

        Works on a masterless group too (a master appears). Returns the new master's sequence.

        Raises:
            SimulatorError: no other publisher to hand over to, or ``to`` is not in the group.
        """
        with self._lock:
            stream = self._get(region, name)
            old = stream.master
            candidates = [p.upstream_sequence for p in stream.publishers if p is not old]
            target = self._pick(candidates, to, "no backup to hand over to")
            self._set_master(region, stream, target)
            return target

    def failover(self, region: str, name: str, to: str | None = None) -> str:
        """The master leaves; a backup becomes master. Returns the new master's sequence.

        Raises:
            SimulatorError: no master, or no backup to take over.
        """
        with self._lock:
            stream = self._get(region, name)
            old = stream.master
            if old is None:
                raise SimulatorError(f"stream {name!r} has no master to fail")
            candidates = [p.upstream_sequence for p in stream.publishers if p is not old]
            target = self._pick(candidates, to, "no backup to fail over to")
            survivors = tuple(p for p in stream.publishers if p is not old)
            self._remember_lost(region, name, old)
            self._set_master(region, replace(stream, publishers=survivors), target)
            return target

    def lose_backup(self, region: str, name: str, sequence: str | None = None) -> str:
        """A backup publisher disconnects. Returns its sequence.

        Raises:
            SimulatorError: no backup (non-master publisher), or ``sequence`` is not one.
        """
        with self._lock:
            stream = self._get(region, name)
            backups = [p.upstream_sequence for p in stream.publishers if not p.master]
            lost = self._pick(backups, sequence, "no backup publisher to lose")
            gone = next(p for p in stream.publishers if p.upstream_sequence == lost)
            self._remember_lost(region, name, gone)
            survivors = tuple(p for p in stream.publishers if p is not gone)
            if not survivors:
                raise SimulatorError("losing the last publisher is remove_stream")
            self._put(region, replace(stream, publishers=survivors))
            return lost

    def add_publisher(
        self,
        region: str,
        name: str,
        *,
        master: bool = False,
        domain: str | None = None,
        app: str | None = None,
        source_from: str | None = None,
    ) -> str:
        """A publisher (re)joins with a NEW UpstreamSequence, as an encoder reconnecting does.

        ``master=True`` also takes the master flag. Returns the new sequence.
        """
        with self._lock:
            stream = self._get(region, name)
            first = stream.publishers[0]
            pub = self._new_publisher(
                domain=domain or first.domain,
                app=app or first.app,
                publish_time=self.now(),
                master=False,
                source_from=source_from,
            )
            stream = replace(stream, publishers=(*stream.publishers, pub))
            if master:
                self._set_master(region, stream, pub.upstream_sequence)
            else:
                self._put(region, stream)
            return pub.upstream_sequence

    def set_no_master(self, region: str, name: str) -> None:
        """Clear every master flag: the vendor sometimes lists a group with no master."""
        with self._lock:
            stream = self._get(region, name)
            pubs = tuple(replace(p, master=False) if p.master else p for p in stream.publishers)
            self._put(region, replace(stream, publishers=pubs))

    def step(self, count: int = 1) -> list[str]:
        """Advance the seeded scenario ``count`` times; returns what changed, one line each."""
        from exporter.simulator.scenario import run_step

        changes: list[str] = []
        for _ in range(count):
            with self._lock:
                changes.extend(run_step(self))
        return changes

    # ----- internals ------------------------------------------------------------------

    def _region(self, region: str) -> dict[str, SimStream]:
        if region not in ACTION_REGIONS:
            raise SimulatorError(f"region {region!r} is not served by DescribeBackupStreamList")
        if region not in self._streams:
            self._streams[region] = {}
            self.offline_names[region] = []
            self.lost_publishers[region] = []
            self._name_counter[region] = 0
        return self._streams[region]

    def _get(self, region: str, name: str) -> SimStream:
        stream = self._streams.get(region, {}).get(name)
        if stream is None:
            raise SimulatorError(f"stream {name!r} is not online in {region}")
        return stream

    @staticmethod
    def _pick(candidates: list[str], wanted: str | None, empty: str) -> str:
        if wanted is not None:
            if wanted not in candidates:
                raise SimulatorError(f"publisher {wanted!r} is not eligible")
            return wanted
        if not candidates:
            raise SimulatorError(empty)
        return candidates[0]

    def _set_master(self, region: str, stream: SimStream, sequence: str) -> None:
        pubs = tuple(replace(p, master=p.upstream_sequence == sequence) for p in stream.publishers)
        self._put(region, replace(stream, publishers=pubs))

    def _remember_lost(self, region: str, name: str, publisher: SimPublisher) -> None:
        self.lost_publishers[region].append((name, publisher))

    def _put(self, region: str, stream: SimStream) -> None:
        self._streams[region][stream.name] = stream
        self._changed(region, stream.name)

    def _changed(self, region: str, name: str) -> None:
        self._version += 1
        self._listings.drop(region, name)

    def _new_name(self, region: str) -> str:
        table = self._streams[region]
        while True:
            self._name_counter[region] += 1
            name = f"stream-{self._name_counter[region]:05d}"
            if name not in table:
                return name

    def new_sequence(self) -> str:
        """A fresh 18-digit UpstreamSequence never used before in this world."""
        while True:
            sequence = str(self.rng.randrange(10**17, 10**18))
            if sequence not in self._used_sequences:
                self._used_sequences.add(sequence)
                return sequence

    def _new_origin(self) -> tuple[str, str]:
        domain = f"{self.rng.randrange(1000, 99999)}.livepush.myqcloud.com"
        return domain, self.rng.choice(("live", "live", "live", "gifshow"))

    def _new_publisher(
        self, *, domain: str, app: str, publish_time: int, master: bool, source_from: str | None = None
    ) -> SimPublisher:
        if source_from is None:
            pulled = self.rng.random() < 0.2
            source_from = f"拉流转推({self.rng.randrange(1, 1000)})" if pulled else DIRECT_PUSH
        return SimPublisher(
            upstream_sequence=self.new_sequence(),
            domain=domain,
            app=app,
            publish_time=publish_time,
            source_from=source_from,
            master=master,
        )

    def _populate_one(self, region: str) -> None:
        rng = self.rng
        count = rng.choices((1, 2, 3), weights=(2, 6, 2))[0]
        stream = self.add_stream(
            region,
            publishers=count,
            master=rng.random() >= 0.02,
            host_group=rng.choice(("", "", "", "hg-main")),
            optimal_enable=rng.choice((0, 0, 1)),
        )
        # Publishers of a stream already online at start joined at different times.
        now = self.now()
        pubs = tuple(replace(p, publish_time=now - rng.randrange(60, 86400)) for p in stream.publishers)
        self._put(region, replace(stream, publishers=pubs))

    def snapshot(self) -> Mapping[str, list[dict[str, Any]]]:
        """Every region's streams in vendor shape (for determinism checks and the control API)."""
        with self._lock:
            return {
                region: [s.to_vendor() for s in table.values()] for region, table in self._streams.items()
            }
