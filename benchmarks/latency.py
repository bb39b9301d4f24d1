"""Detection latency: from a change on the vendor side to the counter moving on ``/metrics``.

    python benchmarks/latency.py [--regions 5] [--streams-per-region 19900] [--poll-interval 15]
                                 [--duration 300] [--seed 1] [--quick]

Two processes on loopback, as deployed: the simulator (``python -m exporter.simulator``, its
own scenario off) and the exporter (``python -m exporter`` with a config pointing at it). Once
``/readyz`` says every region was polled, scripted changes hit the fleet through the
simulator's control API at random moments: per region, one channel per kind (a stream
vanishes, a master hands over to its backup, a new stream starts), each firing after a
uniformly random pause of up to one poll interval once its previous change was seen, so
changes land at every phase of the poll schedule and never two of one kind in one region at
once (a region counter moving by one then names its change). The benchmark scrapes
``/metrics`` (gzip, as Prometheus does) back to back and reads the region counters
(``region_stream_drops_total``, ``region_switchovers_total``, ``region_stream_starts_total``).

Latency = start of the first scrape whose body shows the counter moved, minus the moment the
control call that made the change returned: an upper bound, too high by at most one scrape
period (printed). The whole run is repeated with ``drop_confirm_queries: 0`` (drops confirmed
by full lists only) for comparison. The API request rate per account is read from the
simulator's request log: the most requests in any 1 s sliding window, and any throttled reply.

Targets (issue 12): drop p50 <= poll_interval/2 + 2 s, p99 <= poll_interval + 2 s; switchover
p50 <= poll_interval/2 + 1 s; never over the 20 requests/s budget. Exit status 1 when a target
is missed with confirmation by name on. Results also go to
``benchmarks/results/latency-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import _common
import httpx
from _common import SECRET_ID, free_port, save_results, stop_process

REGIONS = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai", "ap-seoul", "ap-tokyo")
KINDS = ("drop", "switchover", "start")
COUNTERS = {
    "drop": b"tencent_live_region_stream_drops_total",
    "switchover": b"tencent_live_region_switchovers_total",
    "start": b"tencent_live_region_stream_starts_total",
}
RATE_LIMIT = 20


# -- processes -----------------------------------------------------------------------------------


def start_simulator(args: argparse.Namespace, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    return _common.start_simulator(
        log,
        streams=args.streams_per_region,
        regions=REGIONS[: args.regions],
        tick=0,
        timeout=120,
        rate_limit=RATE_LIMIT,
        extra=("--seed", str(args.seed)),
    )


def start_exporter(
    args: argparse.Namespace, directory: Path, endpoint: str, confirm: int, log: IO[bytes]
) -> tuple[subprocess.Popen[bytes], str]:
    config = directory / f"config-{confirm}.yml"
    config.write_text(
        f"poll_interval: {round(args.poll_interval * 1000)}ms\n"
        f"request_timeout: {round(min(args.poll_interval / 2, 5) * 1000)}ms\n"
        "drop_confirmations: 2\n"
        f"drop_confirm_queries: {confirm}\n"
        "streams:\n"
        f"  max_per_region: {max(20000, 2 * args.streams_per_region)}\n"
        "accounts:\n"
        "  - name: bench\n"
        f"    endpoint: {endpoint}\n"
        f"    rate_limit: {RATE_LIMIT}\n"
        f"    regions: [{', '.join(REGIONS[: args.regions])}]\n"
    )
    port = free_port()
    return _common.start_exporter(config, port, log), f"http://127.0.0.1:{port}"


def wait_ready(http: httpx.Client, base: str, exporter: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exporter.poll() is not None:
            raise RuntimeError(f"exporter exited early with {exporter.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if http.get(f"{base}/readyz").status_code == 200:
                return
        time.sleep(0.2)  # the retry interval of a deadline loop
    raise RuntimeError(f"exporter not ready within {timeout:.0f} s")


# -- reading /metrics ------------------------------------------------------------------------------


def region_counters(body: bytes) -> dict[tuple[str, str], float]:
    """(kind, region) -> value of the three region counters, read without parsing 100 MB."""
    values: dict[tuple[str, str], float] = {}
    for kind, family in COUNTERS.items():
        at = body.find(b"\n" + family + b"{")
        while at >= 0:
            end = body.find(b"\n", at + 1)
            line = body[at + 1 : end if end >= 0 else len(body)]
            if not line.startswith(family + b"{"):
                break
            labels, _, value = line.rpartition(b" ")
            region = labels.split(b'region="', 1)[1].split(b'"', 1)[0].decode()
            values[(kind, region)] = values.get((kind, region), 0.0) + float(value)  # all reasons
            at = end
    return values


# -- the script ----------------------------------------------------------------------------------


@dataclass
class Channel:
    """One (region, kind): at most one change in flight, so a counter step names its change."""

    region: str
    kind: str
    fire_at: float
    fired_at: float | None = None
    baseline: float = 0.0
    latencies: list[float] = field(default_factory=list)
    missed: int = 0


class Fleet:
    """What the benchmark knows of the simulator's streams, to pick targets that exist."""

    def __init__(self, http: httpx.Client, sim: str, regions: tuple[str, ...], rng: random.Random) -> None:
        self.http, self.sim, self.rng = http, sim, rng
        self.names: dict[str, list[str]] = {}
        for region in regions:
            listed = http.get(f"{sim}/_sim/streams", params={"region": region}).json()["StreamInfoList"]
            # Only streams the exporter has seen from the start: a switchover on a stream whose
            # start is still pending would count as a start.
            # A handover needs a master and a backup (a stream masterless since the baseline has no
            # last master, so a master appearing there is no switchover).
            self.names[region] = [
                g["StreamName"]
                for g in listed
                if len(g["BackupList"]) >= 2 and any(p["MasterFlag"] == 1 for p in g["BackupList"])
            ]

    def _post(self, command: str, **args: object) -> httpx.Response:
        return self.http.post(f"{self.sim}/_sim/{command}", content=json.dumps(args))

    def change(self, region: str, kind: str) -> None:
        names = self.names[region]
        for _ in range(20):
            if kind == "start":
                reply = self._post("add_stream", region=region)
            else:
                name = names.pop(self.rng.randrange(len(names)))
                command = "remove_stream" if kind == "drop" else "handover"
                reply = self._post(command, region=region, name=name)
                if kind == "switchover" and reply.status_code == 200:
                    names.append(name)
            if reply.status_code == 200:
                return
        raise RuntimeError(f"{kind} in {region}: {reply.text}")


def run_mode(args: argparse.Namespace, confirm: int, directory: Path) -> dict[str, Any]:
    regions = REGIONS[: args.regions]
    rng = random.Random(args.seed)
    with (
        open(directory / f"simulator-{confirm}.log", "wb") as sim_log,
        open(directory / f"exporter-{confirm}.log", "wb") as exp_log,
        httpx.Client(timeout=60, trust_env=False) as http,
    ):
        simulator, sim = start_simulator(args, sim_log)
        exporter = None
        try:
            exporter, base = start_exporter(args, directory, sim, confirm, exp_log)
            try:
                wait_ready(http, base, exporter, timeout=300)
            except RuntimeError:
                exp_log.flush()
                sys.stderr.write((directory / f"exporter-{confirm}.log").read_text()[-3000:])
                raise
            fleet = Fleet(http, sim, regions, rng)
            counters = region_counters(_scrape(http, base))
            now = time.monotonic()
            channels = [
                Channel(region, kind, now + rng.uniform(0, args.poll_interval))
                for region in regions
                for kind in KINDS
            ]
            scrape_periods = _drive(http, base, fleet, channels, counters, args, rng)
            requests = http.get(f"{sim}/_sim/requests").json()
        finally:
            if exporter is not None:
                stop_process(exporter)
            stop_process(simulator)
    result: dict[str, Any] = {"drop_confirm_queries": confirm, "kinds": {}}
    for kind in KINDS:
        samples = sorted(x for c in channels if c.kind == kind for x in c.latencies)
        missed = sum(c.missed for c in channels if c.kind == kind)
        result["kinds"][kind] = summary(samples) | {
            "missed": missed,
            "samples": [round(x, 3) for x in samples],
        }
    result["scrape_period_p50"] = percentile(sorted(scrape_periods), 0.5)
    result["max_requests_in_1s"] = requests["max_in_window"].get(SECRET_ID, 0)
    result["codes"] = requests["codes"]
    return result


def _scrape(http: httpx.Client, base: str) -> bytes:
    reply = http.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"})
    reply.raise_for_status()
    return reply.content  # inflated by httpx


def _drive(
    http: httpx.Client,
    base: str,
    fleet: Fleet,
    channels: list[Channel],
    counters: dict[tuple[str, str], float],
    args: argparse.Namespace,
    rng: random.Random,
) -> list[float]:
    """Fire due changes, scrape, settle; until ``--duration`` passed and nothing is in flight."""
    give_up = 4 * args.poll_interval + 10
    end = time.monotonic() + args.duration
    periods: list[float] = []
    previous = time.monotonic()
    while True:
        now = time.monotonic()
        for channel in channels:
            if channel.fired_at is None and channel.fire_at <= now < end:
                channel.baseline = counters.get((channel.kind, channel.region), 0.0)
                fleet.change(channel.region, channel.kind)
                channel.fired_at = time.monotonic()
        if now >= end and all(c.fired_at is None for c in channels):
            return periods
        started = time.monotonic()
        counters = region_counters(_scrape(http, base))
        periods.append(started - previous)
        previous = started
        for channel in channels:
            if channel.fired_at is None:
                continue
            value = counters.get((channel.kind, channel.region), 0.0)
            late = started - channel.fired_at > give_up
            if value > channel.baseline or late:
                if late and value <= channel.baseline:
                    channel.missed += 1
                else:
                    channel.latencies.append(max(0.0, started - channel.fired_at))
                channel.fired_at = None
                channel.fire_at = time.monotonic() + rng.uniform(0, args.poll_interval)


# -- report --------------------------------------------------------------------------------------


def percentile(ordered: list[float], p: float) -> float:
    """Nearest rank: the smallest sample with at least ``p`` of all samples at or below it."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def summary(ordered: list[float]) -> dict[str, Any]:
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 0.5),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else math.nan,
    }


def targets(poll: float) -> dict[str, dict[str, float]]:
    return {"drop": {"p50": poll / 2 + 2, "p99": poll + 2}, "switchover": {"p50": poll / 2 + 1}}


def report(runs: list[dict[str, Any]], poll: float) -> bool:
    """Print the table; whether every target holds for the run with confirmation by name on."""
    goals = targets(poll)
    ok = True
    print(
        f"{'kind':<11} {'by name':>8} {'n':>4} {'p50 s':>7} {'p99 s':>7} {'max s':>7} {'missed':>6}  target"
    )
    for kind in KINDS:
        for run in runs:
            row = run["kinds"][kind]
            goal = goals.get(kind, {})
            verdicts = []
            for name, limit in goal.items():
                met = row[name] <= limit and not row["missed"]
                verdicts.append(f"{name}<={limit:g} {'ok' if met else 'MISSED'}")
                ok &= met or run["drop_confirm_queries"] == 0
            print(
                f"{kind:<11} {run['drop_confirm_queries']:>8} {row['n']:>4} {row['p50']:>7.2f} "
                f"{row['p99']:>7.2f} {row['max']:>7.2f} {row['missed']:>6}  {', '.join(verdicts)}"
            )
    for run in runs:
        throttled = sum(n for code, n in run["codes"].items() if code.startswith("RequestLimitExceeded"))
        over = run["max_requests_in_1s"] > RATE_LIMIT or throttled
        ok &= not over
        print(
            f"drop_confirm_queries {run['drop_confirm_queries']}: max {run['max_requests_in_1s']} requests "
            f"in any 1 s window (budget {RATE_LIMIT}), {throttled} throttled; "
            f"scrape period p50 {run['scrape_period_p50']:.2f} s (latency resolution)"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--regions", type=int, default=5)
    # Just under the vendor's documented ceiling: a full list of 20,000 or more groups may be cut
    # (the simulator cuts it), so its absences judge nothing and its newest streams are missing;
    # at exactly 20,000 the run measures that ceiling (drops by name only), not the poll schedule.
    parser.add_argument("--streams-per-region", type=int, default=19_900)
    parser.add_argument("--poll-interval", type=float, default=15.0)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of changes per run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--confirm", default="20,0", help="drop_confirm_queries values to run, in order")
    parser.add_argument("--logs", help="keep configs and process logs in this directory")
    parser.add_argument("--quick", action="store_true", help="2 x 300 streams, 2 s polls, 8 s, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.regions, args.streams_per_region, args.poll_interval, args.duration = 2, 300, 2.0, 8.0
        args.confirm = args.confirm if argv and "--confirm" in argv else "20"
    runs = []
    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        directory = Path(args.logs or tmp)
        directory.mkdir(parents=True, exist_ok=True)
        for confirm in (int(v) for v in args.confirm.split(",")):
            runs.append(run_mode(args, confirm, directory))
    ok = report(runs, args.poll_interval)
    if not args.quick:
        save_results("latency", {"args": vars(args), "runs": runs, "ok": ok})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
