"""Properties that must hold for any input: nothing invented from garbage, nothing lost to failure.

1. Whatever bytes the API (or a proxy in between) sends, ``parse_snapshot`` returns a Snapshot
   or raises a ``PollError`` subclass: never a ``KeyError``, ``TypeError``, ``ValueError``...
   that would escape the runner's failure path.
2. Whatever the fleet does and whatever faults hit the polls in between, driven through the
   real runner against the simulator: counters never decrease, and a ``stream_drop`` is counted
   for exactly the streams absent from ``drop_confirmations`` successive successful polls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.credentials import Credential, Secret
from exporter.model import Snapshot
from exporter.parse import parse_snapshot
from exporter.simulator import Account, Fault, FaultKind, SimulatorError, SimulatorServer, World
from exporter.tencent.errors import PollError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
VALID = [
    (FIXTURES / name).read_bytes()
    for name in (
        "describe_backup_stream_list_vendor_example.json",
        "describe_backup_stream_list_edge_cases.json",
        "describe_backup_stream_list_null.json",
    )
]
VENDOR_KEYS = (
    "Response",
    "RequestId",
    "StreamInfoList",
    "Error",
    "Code",
    "Message",
    "StreamName",
    "OptimalEnable",
    "HostGroupName",
    "BackupList",
    "DomainName",
    "AppName",
    "PublishTime",
    "UpstreamSequence",
    "SourceFrom",
    "MasterFlag",
)
PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=24)
    | st.sampled_from(["2018-06-29T19:00:00Z", "710313341080024595", "", "0", "1", "直推流"])
)
json_values = st.recursive(
    scalars,
    lambda kids: (
        st.lists(kids, max_size=4)
        | st.dictionaries(st.sampled_from(VENDOR_KEYS) | st.text(max_size=8), kids, max_size=5)
    ),
    max_leaves=25,
)


def encode(value: Any) -> bytes:
    # stdlib json: big integers and NaN/Infinity (invalid JSON) are garbage worth sending too.
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def parses_or_poll_error(body: bytes) -> None:
    try:
        snapshot = parse_snapshot(body, account="prod", region="ap-guangzhou", taken_at=0.0)
    except PollError:
        return
    assert isinstance(snapshot, Snapshot)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a JSON document, the root included."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out.extend(paths(child, (*prefix, index)))
    return out


def mutate(document: Any, path: tuple[Any, ...], action: str, new: Any) -> Any:
    """Replace, delete, or add next to the value at ``path`` (a fresh copy)."""
    doc = orjson.loads(orjson.dumps(document))
    if not path:
        return new
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if action == "replace":
        parent[last] = new
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"{last}_extra"] = new
    else:
        parent.insert(last, new)
    return doc


class TestParseNeverEscapes:
    @PROPERTY_SETTINGS
    @given(st.binary(max_size=300))
    def test_random_bytes(self, body: bytes) -> None:
        parses_or_poll_error(body)

    @PROPERTY_SETTINGS
    @given(json_values | st.builds(lambda v: {"Response": v}, json_values))
    def test_random_json(self, value: Any) -> None:
        parses_or_poll_error(encode(value))

    @PROPERTY_SETTINGS
    @given(st.data())
    def test_mutated_valid_reply(self, data: st.DataObject) -> None:
        document = orjson.loads(data.draw(st.sampled_from(VALID)))
        path = data.draw(st.sampled_from(paths(document)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]) if path else st.just("replace"))
        parses_or_poll_error(encode(mutate(document, path, action, data.draw(json_values))))

    @PROPERTY_SETTINGS
    @given(st.sampled_from(VALID), st.data())
    def test_mangled_bytes_of_a_valid_reply(self, body: bytes, data: st.DataObject) -> None:
        cut = data.draw(st.integers(0, len(body)))
        junk = data.draw(st.binary(max_size=8))
        mangled = body[:cut] + junk + body[cut + data.draw(st.integers(0, 8)) :]
        parses_or_poll_error(mangled)


# ----------------------------------------------------------------------------- the runner

SECRET_ID = "AKIDpropertyTESTabcdefghijklmnop1234"
SECRET_KEY = "property-test-secret-key-0123456789"
REGION = "ap-guangzhou"

FAULTS = {
    "internal": Fault(kind=FaultKind.ERROR, code="InternalError", times=9),
    "invalid": Fault(kind=FaultKind.ERROR, code="InvalidParameter", times=9),
    "throttled": Fault(kind=FaultKind.ERROR, code="RequestLimitExceeded", times=9),
    "http503": Fault(kind=FaultKind.HTTP_STATUS, status=503, times=9),
    "truncated": Fault(kind=FaultKind.TRUNCATED, times=9),
    "wrong_shape": Fault(kind=FaultKind.WRONG_SHAPE, times=9),
    "reset": Fault(kind=FaultKind.RESET, times=9),
    "null": Fault(kind=FaultKind.NULL_LIST),  # a success: nothing online
}
CHANGES = (
    "remove",
    "add",
    "readd",
    "handover",
    "failover",
    "lose_backup",
    "add_publisher",
    "no_master",
)
steps = st.lists(
    st.tuples(
        st.none() | st.tuples(st.sampled_from(CHANGES), st.integers(0, 7)),
        st.none() | st.sampled_from(sorted(FAULTS)),
    ),
    min_size=1,
    max_size=12,
)


def change(world: World, what: str, pick: int, offline: list[str]) -> None:
    """One fleet change; one that does not apply (no backup to lose...) is simply skipped."""
    names = [s.name for s in world.streams(REGION)]
    name = names[pick % len(names)] if names else None
    try:
        if what == "add":
            world.add_stream(REGION, publishers=1 + pick % 3)
        elif what == "readd" and offline:
            world.add_stream(REGION, offline.pop(pick % len(offline)))
        elif name is None:
            return
        elif what == "remove":
            world.remove_stream(REGION, name)
            offline.append(name)
        elif what == "handover":
            world.handover(REGION, name)
        elif what == "failover":
            world.failover(REGION, name)
        elif what == "lose_backup":
            world.lose_backup(REGION, name)
        elif what == "add_publisher":
            world.add_publisher(REGION, name, master=pick % 2 == 0)
        elif what == "no_master":
            world.set_no_master(REGION, name)
    except SimulatorError:
        pass


def totals(samples: dict[Any, float]) -> dict[Any, float]:
    return {k: v for k, v in samples.items() if k[0].endswith("_total")}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=steps, confirmations=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_counters_monotonic_and_drops_only_when_confirmed(
    plan: list[tuple[tuple[str, int] | None, str | None]], confirmations: int, seed: int, kit: Any
) -> None:
    world = World(
        accounts=[Account(secret_id=SECRET_ID, secret_key=SECRET_KEY)],
        regions=(REGION,),
        streams_per_region=4,
        seed=seed,
    )
    credential = Credential(SECRET_ID, Secret(SECRET_KEY))
    offline: list[str] = []

    async def scenario(server: SimulatorServer) -> None:
        async with kit.open_rig(
            server, credential, drop_confirmations=confirmations, rate_limit=1000.0
        ) as rig:
            tracked: dict[str, int] | None = None  # the model: name -> successive absences
            counters = {**totals(rig.store_samples()), **totals(rig.health_samples())}
            for step_change, fault_name in plan:
                if step_change is not None:
                    change(world, *step_change, offline)
                fault = FAULTS.get(fault_name or "")
                if fault is not None:
                    world.inject(fault)
                visible = set() if fault_name == "null" else {s.name for s in world.streams(REGION)}
                events_before = len(rig.events.recent())
                ok = await rig.poll()
                world.faults.clear()
                assert ok == (fault is None or fault_name == "null")

                new_events = rig.events.recent()[: len(rig.events.recent()) - events_before]
                dropped = sorted(e["stream"] for e in new_events if e["kind"] == "stream_drop")
                expected: list[str] = []
                if ok and tracked is None:
                    tracked = dict.fromkeys(visible, 0)
                elif ok and tracked is not None:
                    for name in list(tracked):
                        if name in visible:
                            tracked[name] = 0
                            continue
                        tracked[name] += 1
                        if tracked[name] >= confirmations:
                            expected.append(name)
                            del tracked[name]
                    for name in visible:
                        tracked.setdefault(name, 0)
                assert dropped == sorted(expected)
                if not ok:
                    assert new_events == []

                now = {**totals(rig.store_samples()), **totals(rig.health_samples())}
                for key, value in counters.items():
                    assert key in now, f"counter vanished: {key}"
                    assert now[key] >= value, f"counter went backwards: {key} {value} -> {now[key]}"
                drops_key = (
                    "tencent_live_region_stream_drops_total",
                    frozenset({("account", kit.ACCOUNT), ("region", REGION)}),
                )
                if drops_key in counters:
                    assert now[drops_key] - counters[drops_key] == len(expected)
                counters = now

    with SimulatorServer(world, host="127.0.0.1", port=0, rate_limit=1000.0) as server:
        kit.run(scenario(server))
