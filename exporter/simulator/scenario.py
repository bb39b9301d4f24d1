"""The seeded scenario: what happens to the fleet in one tick.

Every change goes through the world's public control methods, the very ones tests call, so
the scenario can only produce states a test could also build by hand. All randomness comes
from ``world.rng``: the same seed, clock and sequence of calls give the same world.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from exporter.simulator.world import SimulatorError, World

__all__ = ["ACTIONS", "run_step"]


def _stream_name(world: World, region: str) -> str | None:
    names = [s.name for s in world.streams(region)]
    return world.rng.choice(names) if names else None


def _start(world: World, region: str) -> str:
    rng = world.rng
    offline = world.offline_names[region]
    # Half the starts are a stream coming back under its old name (encoder restart).
    name = offline.pop(rng.randrange(len(offline))) if offline and rng.random() < 0.5 else None
    stream = world.add_stream(region, name, publishers=rng.choices((1, 2, 3), weights=(2, 6, 2))[0])
    return f"{region} {stream.name}: start with {len(stream.publishers)} publisher(s)"


def _stop(world: World, region: str) -> str | None:
    name = _stream_name(world, region)
    if name is None:
        return None
    world.remove_stream(region, name)
    world.offline_names[region].append(name)
    return f"{region} {name}: stop"


def _handover(world: World, region: str) -> str | None:
    return _move_master(world, region, world.handover, "handover")


def _failover(world: World, region: str) -> str | None:
    return _move_master(world, region, world.failover, "failover")


def _move_master(world: World, region: str, move: Callable[[str, str, str], str], what: str) -> str | None:
    """Pick a stream with a master and a backup, and hand or fail its master over to a backup."""
    name = _stream_name(world, region)
    if name is None:
        return None
    stream = world.stream(region, name)
    if stream is None or stream.master is None or len(stream.publishers) < 2:
        return None
    others = [p.upstream_sequence for p in stream.publishers if not p.master]
    to = move(region, name, world.rng.choice(others))
    return f"{region} {name}: {what} to {to}"


def _lose_backup(world: World, region: str) -> str | None:
    name = _stream_name(world, region)
    stream = world.stream(region, name) if name else None
    if stream is None or len(stream.publishers) < 2:
        return None
    backups = [p.upstream_sequence for p in stream.publishers if not p.master]
    lost = world.lose_backup(region, stream.name, world.rng.choice(backups))
    return f"{region} {stream.name}: lost backup {lost}"


def _rejoin(world: World, region: str) -> str | None:
    """A lost publisher comes back to its stream, as encoders do, with a new sequence."""
    lost = world.lost_publishers[region]
    if not lost:
        return None
    name, old = lost.pop(world.rng.randrange(len(lost)))
    if world.stream(region, name) is None:
        return None
    new = world.add_publisher(region, name, domain=old.domain, app=old.app, source_from=old.source_from)
    return f"{region} {name}: rejoined as {new} (was {old.upstream_sequence})"


def _no_master(world: World, region: str) -> str | None:
    name = _stream_name(world, region)
    stream = world.stream(region, name) if name else None
    if stream is None or stream.master is None:
        return None
    world.set_no_master(region, stream.name)
    return f"{region} {stream.name}: no master"


def _regain_master(world: World, region: str) -> str | None:
    masterless = [s for s in world.streams(region) if s.master is None]
    if not masterless:
        return None
    stream = world.rng.choice(masterless)
    to = world.handover(region, stream.name, world.rng.choice(stream.publishers).upstream_sequence)
    return f"{region} {stream.name}: master back on {to}"


_Action = Callable[[World, str], str | None]
ACTIONS: Final[tuple[tuple[str, _Action, float], ...]] = (
    ("start", _start, 1.0),
    ("stop", _stop, 1.0),
    ("handover", _handover, 2.0),
    ("failover", _failover, 1.5),
    ("lose_backup", _lose_backup, 2.0),
    ("rejoin", _rejoin, 2.5),
    ("no_master", _no_master, 0.3),
    ("regain_master", _regain_master, 1.0),
)


def _weights(world: World, region: str) -> list[float]:
    """Keep the population near ``target_streams``: more starts below it, more stops above."""
    size = len(world.streams(region))
    boost = {"start": size < world.target_streams, "stop": size > world.target_streams}
    weights = [weight * 3 if boost.get(name) else weight for name, _, weight in ACTIONS]
    return weights


def run_step(world: World) -> list[str]:
    """One tick over every region, in region order; the caller holds ``world.lock``."""
    changes: list[str] = []
    for region in world.regions:
        weights = _weights(world, region)
        for _ in range(world.changes_per_step):
            # A picked action may not apply (no backup to lose...): try a few, then give up.
            for _attempt in range(4):
                _, action, _ = world.rng.choices(ACTIONS, weights=weights)[0]
                try:
                    change = action(world, region)
                except SimulatorError:
                    change = None
                if change is not None:
                    changes.append(change)
                    break
    return changes
