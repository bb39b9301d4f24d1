"""``/_sim/*``: drive the world from another process (end-to-end tests, demos).

``POST /_sim/<command>`` with a JSON object of keyword arguments calls the world's control
method of that name (``fault`` takes ``Fault`` fields or ``{"preset": NAME, ...}``);
``GET /_sim/state``, ``/_sim/streams?region=R``, ``/_sim/requests`` and ``/_sim/faults``
(presets and pending faults) read it. Replies are JSON: ``{"result": ...}`` or
``{"error": "..."}`` with 400/404/405.
Nothing here ever returns a secret key or token. The vendor path ``/`` never reaches here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson

from exporter.simulator.catalogue import PRESETS
from exporter.simulator.faults import Fault
from exporter.simulator.ratelimit import max_requests_in_window
from exporter.simulator.world import SimStream, SimulatorError, World

if TYPE_CHECKING:
    from exporter.simulator.protocol import Reply, Simulator

__all__ = ["COMMANDS", "handle_control"]


def _world_call(method: str, wrap: Callable[[Any], Any]) -> _Command:
    """A command that calls ``World.<method>(**args)`` and shapes its result for JSON."""

    def command(sim: Simulator, args: Mapping[str, Any]) -> Any:
        return wrap(getattr(sim.world, method)(**args))

    return command


def _fault(sim: Simulator, args: Mapping[str, Any]) -> Any:
    sim.world.inject(Fault.from_dict(args, PRESETS))
    return {"pending": len(sim.world.faults)}


def _no_args(action: Callable[[Simulator], Any]) -> _Command:
    def command(sim: Simulator, args: Mapping[str, Any]) -> Any:
        if args:
            raise SimulatorError("this command takes no arguments")
        return action(sim)

    return command


def _rate_limit(sim: Simulator, args: Mapping[str, Any]) -> Any:
    value = args.get("rate_limit")
    if set(args) != {"rate_limit"} or not isinstance(value, int | float) or value <= 0:
        raise SimulatorError('want {"rate_limit": <positive number>}')
    sim.rate_limit = float(value)
    return {"rate_limit": sim.rate_limit}


_Command = Callable[["Simulator", Mapping[str, Any]], Any]


def _vendor(stream: SimStream) -> dict[str, Any]:
    return stream.to_vendor()


COMMANDS: Mapping[str, _Command] = {
    "add_stream": _world_call("add_stream", _vendor),
    "remove_stream": _world_call("remove_stream", _vendor),
    "handover": _world_call("handover", lambda seq: {"master": seq}),
    "failover": _world_call("failover", lambda seq: {"master": seq}),
    "lose_backup": _world_call("lose_backup", lambda seq: {"lost": seq}),
    "add_publisher": _world_call("add_publisher", lambda seq: {"sequence": seq}),
    "set_no_master": _world_call("set_no_master", lambda _: None),
    "step": _world_call("step", lambda changes: {"changes": changes}),
    "list_limit": _world_call("set_list_limit", lambda _: None),
    "fault": _fault,
    "clear_faults": _no_args(lambda sim: sim.world.faults.clear()),
    "clear_requests": _no_args(lambda sim: sim.request_log.clear()),
    "rate_limit": _rate_limit,
}


def _reply(status: int, payload: Any) -> Reply:
    from exporter.simulator.protocol import JSON, Reply

    return Reply(status=status, headers=(("Content-Type", JSON),), body=orjson.dumps(payload))


def _requests(sim: Simulator) -> dict[str, Any]:
    records = sim.request_log.records()
    ids = sorted({r.secret_id for r in records if r.secret_id is not None})
    codes: dict[str, int] = {}
    for record in records:
        codes[record.code] = codes.get(record.code, 0) + 1
    return {
        "count": len(records),
        "codes": codes,
        "max_in_window": {sid: max_requests_in_window(records, sid) for sid in ids},
    }


def _read(sim: Simulator, path: str, query: str) -> Reply:
    world: World = sim.world
    if path == "/_sim/state":
        return _reply(200, dict(world.state(), rate_limit=sim.rate_limit, requests=len(sim.request_log)))
    if path == "/_sim/requests":
        return _reply(200, _requests(sim))
    if path == "/_sim/faults":
        presets = {name: fault.to_dict() for name, fault in PRESETS.items()}
        return _reply(200, {"presets": presets, "pending": world.state()["faults"]})
    if path == "/_sim/streams":
        region = parse_qs(query).get("region", [""])[0]
        return _reply(
            200, {"region": region, "StreamInfoList": [s.to_vendor() for s in world.streams(region)]}
        )
    return _reply(404, {"error": f"unknown path {path}"})


def handle_control(sim: Simulator, method: str, path: str, query: str, body: bytes) -> Reply:
    """Dispatch one control request; errors come back as JSON, never as exceptions."""
    if method.upper() == "GET":
        return _read(sim, path, query)
    if method.upper() != "POST":
        return _reply(405, {"error": "use GET or POST"})
    command = COMMANDS.get(path.removeprefix("/_sim/"))
    if command is None:
        return _reply(404, {"error": f"unknown command; known: {', '.join(COMMANDS)}"})
    args = _arguments(body)
    if args is None:
        return _reply(400, {"error": "body must be a JSON object"})
    try:
        return _reply(200, {"result": command(sim, args)})
    except (SimulatorError, ValueError, TypeError) as exc:
        return _reply(400, {"error": str(exc)})


def _arguments(body: bytes) -> dict[str, Any] | None:
    try:
        args = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        return None
    return args if isinstance(args, dict) else None
