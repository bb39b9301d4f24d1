"""``python -m exporter.simulator``: run the vendor fake as its own process.

Prints ``simulator listening on http://HOST:PORT`` once ready (tests wait for that line),
then serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence

from exporter.simulator.errors import ACTION_REGIONS
from exporter.simulator.server import SimulatorServer
from exporter.simulator.world import DEFAULT_REGIONS, Account, World

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
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    secret_id = args.secret_id or env.get("TENCENTCLOUD_SECRET_ID")
    secret_key = args.secret_key or env.get("TENCENTCLOUD_SECRET_KEY")
    token = args.token or env.get("TENCENTCLOUD_SESSION_TOKEN") or None
    if not secret_id or not secret_key:
        parser.error("need --secret-id/--secret-key or TENCENTCLOUD_SECRET_ID/TENCENTCLOUD_SECRET_KEY")
    if args.streams < 0 or args.tick < 0 or args.rate_limit <= 0:
        parser.error("--streams and --tick must be >= 0, --rate-limit > 0")
    world = World(
        accounts=[Account(secret_id=secret_id, secret_key=secret_key, token=token)],
        regions=args.regions,
        streams_per_region=args.streams,
        seed=args.seed,
    )
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
