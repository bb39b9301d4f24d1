"""GcFreezer: when it freezes the collector's view of the heap, and that it lets it go again."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from exporter.gcfreeze import GcFreezer
from tests._clock import ManualClock


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_baseline_freezes_at_once_others_at_most_every_interval() -> None:
    clock = ManualClock()
    freezer = GcFreezer(interval=10.0, full_every=3600.0, monotonic=clock)
    freezer.after_apply(True)
    assert freezer.freezes == 1
    assert gc.get_freeze_count() > 0
    clock.now += 5.0
    freezer.after_apply(False)
    assert freezer.freezes == 1
    freezer.after_apply(True)  # another region's baseline does not wait
    assert freezer.freezes == 2
    clock.now += 10.0
    freezer.after_apply(False)
    assert freezer.freezes == 3
    assert freezer.full_collections == 0


def test_cyclic_garbage_frozen_before_it_died_is_collected_by_the_periodic_full_pass() -> None:
    clock = ManualClock()
    freezer = GcFreezer(interval=10.0, full_every=3600.0, monotonic=clock)

    class Node:
        pass

    node = Node()
    node.self = node  # type: ignore[attr-defined]
    alive = weakref.ref(node)
    freezer.after_apply(True)
    del node
    gc.collect()
    assert alive() is not None  # frozen: the collector no longer looks at it
    clock.now += 3600.0
    freezer.after_apply(False)
    assert freezer.full_collections == 1
    assert alive() is None
