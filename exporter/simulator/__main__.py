"""``python -m exporter.simulator``: run the vendor fake as its own process.

Prints ``simulator listening on http://HOST:PORT`` once ready (tests wait for that line),
then serves until SIGINT/SIGTERM. ``--fault`` replays any documented unkindness for anyone::

    python -m exporter.simulator --list-faults
    python -m exporter.simulator --fault duplicate-stream-name --fault 'error:ServiceUnavailable/5'
    python -m exporter.simulator --fault '{"kind": "edit", "field": "OptimalEnable", "groups": 0}'
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence

from exporter.simulator.catalogue import PRESETS, describe
from exporter.simulator.errors import ACTION_REGIONS
from exporter.simulator.faults import Fault
from exporter.simulator.server import SimulatorServer
from exporter.simulator.world import DEFAULT_REGIONS, LIST_LIMIT, Account, World

__all__ = ["build_parser", "main"]


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"want HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _regions(value: str) -> tuple[str, ...]:
    regions = tuple(r.strip() for r in value.split(",") if r.strip())
    unknown = sorted(set(regions) - ACTION_REGIONS)
    if not regions or unknown:
        known = ", ".join(sorted(ACTION_REGIONS))
        raise argparse.ArgumentTypeError(
            f"unknown region(s) {', '.join(unknown) or '(none given)'}; known: {known}"
        )
    return regions


def _fault(value: str) -> Fault:
    """``NAME``, ``NAME/N`` (every N-th request) or a JSON object of ``Fault`` fields.

    From the command line a fault lasts until the process ends (``times: 0``) unless given.
    """
    try:
        if value.lstrip().startswith("{"):
            data = json.loads(value)
            if not isinstance(data, dict):
                raise ValueError("want a JSON object")
            return Fault.from_dict({"times": 0} | data, PRESETS)
        name, _, every = value.partition("/")
        return Fault.from_dict({"preset": name, "times": 0, "every": int(every or 1)}, PRESETS)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (--list-faults shows the names)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m exporter.simulator",
        description="Fake Tencent Cloud Live DescribeBackupStreamList API for demos and tests.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--listen", type=_listen, default=("127.0.0.1", 0), help="HOST:PORT (port 0: any free)"
    )
    parser.add_argument("--secret-id", help="accepted SecretId (default: $TENCENTCLOUD_SECRET_ID)")
    parser.add_argument("--secret-key", help="its SecretKey (default: $TENCENTCLOUD_SECRET_KEY)")
    parser.add_argument(
        "--token", help="require this X-TC-Token (default: $TENCENTCLOUD_SESSION_TOKEN if set)"
    )
    parser.add_argument("--streams", type=int, default=50, help="online streams per region")
    parser.add_argument(
        "--regions", type=_regions, default=DEFAULT_REGIONS, help="comma-separated regions to populate"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the scenario")
    parser.add_argument("--tick", type=float, default=5.0, help="seconds between scenario steps (0: never)")
    parser.add_argument("--rate-limit", type=float, default=20.0, help="requests/second per SecretId")
    parser.add_argument(
        "--list-limit",
        type=int,
        default=LIST_LIMIT,
        help="most groups in one full-list reply (vendor: 20000)",
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="NAME[/N]|JSON",
        help="apply this fault to every (N-th) matching request; repeatable",
    )
    parser.add_argument("--list-faults", action="store_true", help="print the named faults and exit")
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_faults:
        print("\n".join(describe(name) for name in PRESETS))
        return 0
    secret_id = args.secret_id or env.get("TENCENTCLOUD_SECRET_ID")
    secret_key = args.secret_key or env.get("TENCENTCLOUD_SECRET_KEY")
    token = args.token or env.get("TENCENTCLOUD_SESSION_TOKEN") or None
    if not secret_id or not secret_key:
        parser.error("need --secret-id/--secret-key or TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY")
    if args.streams < 0 or args.tick < 0 or args.rate_limit <= 0 or args.list_limit < 1:
        parser.error("--streams and --tick must be >= 0, --rate-limit and --list-limit > 0")
    world = World(
        accounts=[Account(secret_id=secret_id, secret_key=secret_key, token=token)],
        regions=args.regions,
        streams_per_region=args.streams,
        seed=args.seed,
        list_limit=args.list_limit,
    )
    for fault in args.fault:
        world.inject(fault)
    host, port = args.listen
    server = SimulatorServer(world, host, port, tick_seconds=args.tick or None, rate_limit=args.rate_limit)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    server.start()
    print(f"simulator listening on {server.url}", flush=True)
    try:
        done.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
