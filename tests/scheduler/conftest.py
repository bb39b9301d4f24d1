"""Fixtures of the scheduler tests; the rig itself is in ``rig.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from tests.scheduler.rig import SteppedMonotonic


@pytest.fixture
def stepped() -> SteppedMonotonic:
    return SteppedMonotonic()


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
