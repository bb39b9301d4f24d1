"""Persist each region's diff state and the store's counters across restarts.

Why: without it a restart is a new baseline (no events for whatever happened while down) and
every counter starts again at 0. The file is small JSON with a format marker and a version::

    {"format": "tencent-live-exporter-state", "version": 1,
     "publisher_fields": ["upstream_sequence", "domain", "app", "publish_time", "source_from",
                          "is_master"],
     "regions": {"prod/ap-guangzhou": {"account": "prod", "region": "ap-guangzhou",
                 "streams": {"<name>": {"host_group": "", "optimal_enable": 0,
                                        "publishers": [["123", "d", "live", 1.5, "直推流", true]]}},
                 "absent": {"<name>": 1}, "last_master": {"<name>": "123"},
                 "seen_scope": null}},
     "counters": {...}}

Publishers are arrays in ``publisher_fields`` order: at 100k streams that keeps the file (and
its parse) markedly smaller than one object per publisher. The region key is for people
reading the file; ``account`` and ``region`` inside the entry are authoritative, since an
account name may itself contain a ``/``. ``counters`` is opaque here: whatever the store
exported, handed back as is.

A write is atomic (temp file in the same directory, fsync, ``os.replace``, fsync of the
directory): a crash leaves the old file or the new one, never half of one. A file that is
not ours, or no longer parses, is moved aside (``<path>.corrupt-<unixtime>``), never
overwritten, and :class:`StateFileError` says so; the caller logs it and starts fresh. Any
content that fails validation at any depth counts as not parsing: a crash loop on restart
would be worse than a lost history. The counters are the store's to validate; when it
rejects them the caller moves the file aside with :func:`quarantine`.

Two exporters must not share one state file: see :mod:`exporter.statelock`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .diff import RegionState
from .model import Publisher, RegionKey, Stream

__all__ = [
    "FORMAT",
    "VERSION",
    "SavedState",
    "StateFileError",
    "load_state",
    "quarantine",
    "save_state",
]

FORMAT = "tencent-live-exporter-state"
VERSION = 1
_NUMBER = (int, float)
_PUBLISHER_FIELDS = ("upstream_sequence", "domain", "app", "publish_time", "source_from", "is_master")


class StateFileError(Exception):
    """The state file could not be read or written; the message says which file and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SavedState:
    """What a previous run left: each region's diff state and the store's counters."""

    regions: Mapping[RegionKey, RegionState]
    counters: Mapping[str, Any] = field(default_factory=dict)


class _Corrupt(Exception):
    """Internal: the file parsed as something, but not as our state."""


# ---------------------------------------------------------------------------------------- save


def save_state(path: Path, *, regions: Mapping[RegionKey, RegionState], counters: Mapping[str, Any]) -> None:
    """Write the state atomically.

    Raises:
        StateFileError: unserialisable counters, unwritable directory, disk full; the old
            file, if any, is left exactly as it was.
    """
    try:
        with _gc_paused():
            payload = orjson.dumps(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "publisher_fields": list(_PUBLISHER_FIELDS),
                    "regions": {
                        f"{key.account}/{key.region}": _dump_region(key, state)
                        for key, state in regions.items()
                    },
                    "counters": counters,
                }
            )
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise StateFileError(f"state for {path} is not serialisable: {exc}") from exc
    _atomic_write(path, payload)


def _dump_region(key: RegionKey, state: RegionState) -> dict[str, Any]:
    return {
        "account": key.account,
        "region": key.region,
        "streams": {name: _dump_stream(stream) for name, stream in state.streams.items()},
        "absent": dict(state.absent),
        "last_master": dict(state.last_master),
        "seen_scope": None if state.seen_scope is None else sorted(state.seen_scope),
    }


def _dump_stream(stream: Stream) -> dict[str, Any]:
    return {
        "host_group": stream.host_group,
        "optimal_enable": stream.optimal_enable,
        "publishers": [
            [p.upstream_sequence, p.domain, p.app, p.publish_time, p.source_from, p.is_master]
            for p in stream.publishers
        ],
    }


def _atomic_write(path: Path, payload: bytes) -> None:
    directory = path.parent
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(directory)
    except OSError as exc:
        raise StateFileError(f"cannot write state file {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; some filesystems refuse to fsync a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- load


def load_state(path: Path, *, clock: Callable[[], float] = time.time) -> SavedState | None:
    """Read the state a previous run saved.

    Args:
        clock: names the moved-aside copy of a corrupt file (injected for tests).

    Returns:
        ``None`` when there is no file (first run).

    Raises:
        StateFileError: unreadable, or corrupt/foreign/other version; in the latter cases the
            file has been renamed to ``<path>.corrupt-<unixtime>`` so nothing is lost and the
            next save does not overwrite it.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read state file {path}: {exc.strerror or exc}") from exc
    try:
        with _gc_paused():
            return _parse(raw)
    except (_Corrupt, orjson.JSONDecodeError) as exc:
        reason = str(exc)
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # A shape the checks above did not foresee: still not ours to trust.
        reason = f"unexpected content: {type(exc).__name__}"
    aside = _move_aside(path, clock)
    raise StateFileError(f"state file {path} is unusable ({reason}); {aside}; starting fresh")


def quarantine(path: Path, *, clock: Callable[[], float] = time.time) -> str:
    """Move a state file whose content was rejected elsewhere (the counters) aside; says where."""
    return _move_aside(path, clock)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Building 100k streams' worth of objects triggers the cyclic GC over and over; none of
    them form cycles, and pausing it makes a full-scale load about three times faster."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _move_aside(path: Path, clock: Callable[[], float]) -> str:
    base = f"{path}.corrupt-{int(clock())}"
    target = Path(base)
    suffix = 0
    while target.exists():  # never clobber an earlier corrupt copy from the same second
        suffix += 1
        target = Path(f"{base}.{suffix}")
    try:
        os.rename(path, target)
    except OSError as exc:
        return f"could not move it aside ({exc.strerror or exc})"
    return f"moved to {target}"


def _parse(raw: bytes) -> SavedState:
    doc = orjson.loads(raw)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _Corrupt(f"not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise _Corrupt(f"version {doc.get('version')!r}, this build reads version {VERSION}")
    if doc.get("publisher_fields", list(_PUBLISHER_FIELDS)) != list(_PUBLISHER_FIELDS):
        raise _Corrupt("unknown publisher_fields")
    regions: dict[RegionKey, RegionState] = {}
    for label, entry in _dict(doc.get("regions"), "regions").items():
        key, state = _load_region(_dict(entry, f"regions[{label!r}]"), label)
        regions[key] = state
    return SavedState(regions=regions, counters=_dict(doc.get("counters", {}), "counters"))


def _load_region(entry: dict[str, Any], label: str) -> tuple[RegionKey, RegionState]:
    where = f"regions[{label!r}]"
    key = RegionKey(
        _str(entry.get("account"), f"{where}.account"), _str(entry.get("region"), f"{where}.region")
    )
    streams = {
        _str(name, f"{where}.streams"): _load_stream(name, _dict(s, f"{where}.streams[{name!r}]"), where)
        for name, s in _dict(entry.get("streams"), f"{where}.streams").items()
    }
    absent = {
        name: _count(n, f"{where}.absent")
        for name, n in _dict(entry.get("absent"), f"{where}.absent").items()
    }
    masters = {
        name: _str(seq, f"{where}.last_master")
        for name, seq in _dict(entry.get("last_master"), f"{where}.last_master").items()
    }
    if not absent.keys() <= streams.keys() or not masters.keys() <= streams.keys():
        raise _Corrupt(f"{where}: absent/last_master name a stream that is not in streams")
    scope_raw = entry.get("seen_scope")
    seen_scope = None if scope_raw is None else frozenset(_strs(scope_raw, f"{where}.seen_scope"))
    state = RegionState(streams=streams, absent=absent, last_master=masters, seen_scope=seen_scope)
    return key, state


def _load_stream(name: str, entry: dict[str, Any], where: str) -> Stream:
    here = f"{where}.streams[{name!r}]"
    rows = entry.get("publishers")
    if not isinstance(rows, list):
        raise _Corrupt(f"{here}.publishers: expected a list")
    return Stream(
        name=name,
        host_group=_str(entry.get("host_group"), f"{here}.host_group"),
        optimal_enable=(
            None
            if entry.get("optimal_enable") is None
            else _int(entry["optimal_enable"], f"{here}.optimal_enable")
        ),
        publishers=tuple(_load_publisher(row, here) for row in rows),
    )


def _load_publisher(row: Any, where: str) -> Publisher:
    # One combined check: this runs for every publisher (200k at full scale) on startup.
    if type(row) is not list or len(row) != len(_PUBLISHER_FIELDS):
        raise _Corrupt(f"{where}.publishers: expected arrays of {len(_PUBLISHER_FIELDS)} fields")
    seq, domain, app, publish_time, source_from, is_master = row
    if not (
        type(seq) is str
        and type(domain) is str
        and type(app) is str
        and (publish_time is None or type(publish_time) in _NUMBER)
        and type(source_from) is str
        and type(is_master) is bool
    ):
        raise _Corrupt(
            f"{where}.publishers: a field has the wrong type (fields: {', '.join(_PUBLISHER_FIELDS)})"
        )
    return Publisher(
        upstream_sequence=seq,
        domain=domain,
        app=app,
        publish_time=None if publish_time is None else float(publish_time),
        source_from=source_from,
        is_master=is_master,
    )


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Corrupt(f"{where}: expected an object")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Corrupt(f"{where}: expected a string")
    return value


def _strs(value: Any, where: str) -> list[str]:
    if not isinstance(value, list):
        raise _Corrupt(f"{where}: expected a list")
    return [_str(v, where) for v in value]


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Corrupt(f"{where}: expected an integer")
    return value


def _count(value: Any, where: str) -> int:
    count = _int(value, where)
    if count < 1:
        raise _Corrupt(f"{where}: expected a positive count")
    return count
