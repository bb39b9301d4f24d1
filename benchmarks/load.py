"""Issue 6 item 3 / issue 8 item 5: scrape the real exporter under load while it polls.

    python benchmarks/load.py [--scrapers 50] [--duration 60] [--streams-per-region 20000]
                              [--regions 5] [--poll-interval 5] [--quick]

Starts two processes on loopback: the simulator (``python -m exporter.simulator``, a fleet
that keeps changing every ``--tick`` seconds) and the exporter itself (``python -m exporter``
with a config pointing at it, exactly as deployed). Once ``/readyz`` says every region was
polled, ``--scrapers`` concurrent clients fetch ``/metrics`` with ``Accept-Encoding: gzip`` (as
Prometheus does) back to back for ``--duration`` seconds, while a monitor samples the
exporter's RSS every second and its health families every few seconds. Bounded: every wait
has a deadline and both processes are stopped at the end, whatever happened.

The load generator shares the machine (2 cores here) with both processes, so its own CPU
must stay small and smooth, or its event loop's queueing shows up as scrape latency: the
inflating (verification, health samples: ~0.3 s of CPU and 100 MB each at 100k streams) runs
in one separate worker process, and verified bodies are spread over the run (every
``verify_every``-th scrape overall, not every scraper's first one, which put 50 inflates in
the first 5 s and stalled every scraper's clock by up to 15 s).

Reported: scrape latency p50/p99/max (request sent to last byte), scrapes and errors (must be
0), whether polls kept their schedule (``tencent_live_polls_late_total`` did not move and no
region's ``last_success`` fell behind its ``poll_cycle_seconds`` by more than one cycle), and
RSS over time. Exit status 1 on any scrape error or a dead process. Results also go to
``benchmarks/results/load-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import gzip
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _common import (
    free_port,
    nearest_index,
    rss_mb,
    save_results,
    start_exporter,
    start_simulator,
    stop_process,
)

REGIONS = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai", "ap-seoul", "ap-tokyo")
_HEALTH = re.compile(
    rb"^tencent_live_(polls_late_total|last_success_timestamp_seconds|poll_cycle_seconds|up)"
    rb"\{([^}]*)\} (\S+)$",
    re.MULTILINE,
)


# -- processes -----------------------------------------------------------------------------------


def write_config(directory: Path, args: argparse.Namespace, endpoint: str) -> Path:
    regions = ", ".join(REGIONS[: args.regions])
    text = (
        f"poll_interval: {args.poll_interval}s\n"
        f"request_timeout: {min(args.poll_interval, 10)}s\n"
        "streams:\n"
        f"  max_per_region: {max(20000, args.streams_per_region)}\n"
        "accounts:\n"
        "  - name: load\n"
        f"    endpoint: {endpoint}\n"
        f"    regions: [{regions}]\n"
    )
    path = directory / "config.yml"
    path.write_text(text)
    return path


# -- load ---------------------------------------------------------------------------------------


@dataclass
class PlainTally:
    """Plain (uncompressed, chunked) scrapes: streamed and dropped as they arrive."""

    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bytes_read: int = 0


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    bytes_read: int = 0
    verified: int = 0
    started: int = 0  # scrapes started by all scrapers: picks the ones to verify


def complete_exposition(body: bytes) -> bool:
    """Whether a gzip body is one whole member holding a complete exposition (worker process)."""
    text = gzip.decompress(body)
    return text.endswith(b"\n") and b"\ntencent_live_up{" in text


def health_from_gzip(body: bytes, now: float) -> tuple[float, float, int, float]:
    """:func:`health_sample` of a gzip body (worker process: 100 MB inflated at 100k streams)."""
    return health_sample(gzip.decompress(body), now)


async def wait_ready(
    client: httpx.AsyncClient, base: str, exporter: subprocess.Popen[bytes], timeout: float
) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if exporter.poll() is not None:
            raise RuntimeError(f"exporter exited early with {exporter.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(f"{base}/readyz")).status_code == 200:
                return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise RuntimeError(f"exporter not ready within {timeout:.0f} s")


async def paced(interval: float, offset: float, until: float) -> AsyncIterator[None]:
    """One turn every ``interval`` seconds from ``offset`` on (0: back to back), until ``until``."""
    next_at = time.monotonic() + offset
    while True:
        if interval > 0:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
        if time.monotonic() >= until:
            return
        yield


async def scraper(
    client: httpx.AsyncClient,
    url: str,
    until: float,
    tally: Tally,
    verify_every: int,
    interval: float,
    offset: float,
    inflater: concurrent.futures.Executor,
) -> None:
    """Gzip scrapes every ``interval`` seconds (0: back to back), like one Prometheus server.

    The body is read raw (not inflated) unless it is verified, in the inflater process.
    """
    async for _ in paced(interval, offset, until):
        tally.started += 1
        verify = tally.started % verify_every == 1 or verify_every == 1
        started = time.perf_counter()
        try:
            async with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as reply:
                chunks = [chunk async for chunk in reply.aiter_raw()]
            elapsed = time.perf_counter() - started
            if reply.status_code != 200 or reply.headers.get("content-encoding") != "gzip":
                tally.errors.append(
                    f"status {reply.status_code}, encoding {reply.headers.get('content-encoding')}"
                )
                continue
            body = b"".join(chunks)
            tally.bytes_read += len(body)
            if verify:  # a whole, single-member gzip of a complete exposition
                loop = asyncio.get_running_loop()
                if not await loop.run_in_executor(inflater, complete_exposition, body):
                    tally.errors.append("gzip body is not a complete exposition")
                    continue
                tally.verified += 1
            tally.latencies.append(elapsed)
        except httpx.HTTPError as exc:
            tally.errors.append(f"{type(exc).__name__}: {exc}")


async def plain_scraper(
    client: httpx.AsyncClient, url: str, until: float, tally: PlainTally, interval: float, offset: float
) -> None:
    """Plain scrapes (no gzip), as a person with curl or an old collector does: the exporter
    streams the text chunked while inflating it; this reader keeps only the tail it checks."""
    async for _ in paced(interval, offset, until):
        started = time.perf_counter()
        size, kept, last = 0, 0, collections.deque[bytes]()
        try:
            async with client.stream("GET", url, headers={"Accept-Encoding": "identity"}) as reply:
                async for chunk in reply.aiter_raw():  # keep ~1 MiB of tail, copying nothing
                    size += len(chunk)
                    last.append(chunk)
                    kept += len(chunk)
                    while kept - len(last[0]) >= 1 << 20:
                        kept -= len(last.popleft())
            elapsed = time.perf_counter() - started
            tail = b"".join(last)
        except httpx.HTTPError as exc:
            tally.errors.append(f"plain: {type(exc).__name__}: {exc}")
            continue
        if reply.status_code != 200 or not tail.endswith(b"\n") or b"\ntencent_live_up{" not in tail:
            tally.errors.append(f"plain: status {reply.status_code}, incomplete body of {size} bytes")
            continue
        tally.bytes_read += size
        tally.latencies.append(elapsed)


async def fetch_health(
    client: httpx.AsyncClient, url: str, inflater: concurrent.futures.Executor
) -> tuple[float, float, int, float]:
    """:func:`health_sample` of a fresh scrape, timed when the reply arrived.

    Inflated in the inflater process (100 MB at 100k): neither the event loop nor the GIL of
    the scrapers' process spends a moment on it, and a busy inflater cannot age the sample.
    """
    async with client.stream("GET", url, headers={"Accept-Encoding": "gzip"}) as reply:
        raw = b"".join([chunk async for chunk in reply.aiter_raw()])
    now = time.time()
    if reply.headers.get("content-encoding") != "gzip":
        return health_sample(raw, now)
    return await asyncio.get_running_loop().run_in_executor(inflater, health_from_gzip, raw, now)


@dataclass
class Watch:
    rss: list[tuple[float, float, float]] = field(default_factory=list)  # (t, rss, hwm)
    late: list[float] = field(default_factory=list)
    behind: list[float] = field(default_factory=list)  # worst (now - last_success - cycle) per sample
    regions_up: list[int] = field(default_factory=list)
    cycle: float = 0.0


def health_sample(body: bytes, now: float) -> tuple[float, float, int, float]:
    """(polls_late_total, worst lateness of last_success past one cycle, regions up, cycle).

    The health families follow the per-stream ones, so only the tail of the body is searched.
    """
    start = body.rfind(b"# HELP tencent_live_up ")
    body = body[start:] if start >= 0 else body
    late = 0.0
    success: list[float] = []
    cycles: list[float] = []
    up = 0
    for name, _, value in _HEALTH.findall(body):
        number = float(value)
        if name == b"polls_late_total":
            late += number
        elif name == b"last_success_timestamp_seconds":
            success.append(number)
        elif name == b"poll_cycle_seconds":
            cycles.append(number)
        elif number == 1.0:
            up += 1
    cycle = max(cycles, default=0.0)
    behind = max((now - ts - cycle for ts in success), default=float("inf"))
    return late, behind, up, cycle


async def monitor(
    client: httpx.AsyncClient,
    url: str,
    pid: int,
    until: float,
    watch: Watch,
    every: float,
    inflater: concurrent.futures.Executor,
) -> None:
    started = time.monotonic()
    next_health = started
    while time.monotonic() < until:
        rss, hwm = rss_mb(pid)
        watch.rss.append((round(time.monotonic() - started, 1), rss, hwm))
        if time.monotonic() >= next_health:
            next_health += every
            with contextlib.suppress(httpx.HTTPError):
                late, behind, up, cycle = await fetch_health(client, url, inflater)
                watch.late.append(late)
                watch.behind.append(behind)
                watch.regions_up.append(up)
                watch.cycle = cycle
        await asyncio.sleep(1.0)


async def load(args: argparse.Namespace, exporter: subprocess.Popen[bytes], port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=args.scrapers + 2, max_keepalive_connections=args.scrapers + 2)
    timeout = httpx.Timeout(args.scrape_timeout)
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as inflater:
        return await _load(args, exporter, base, limits, timeout, inflater)


async def _load(
    args: argparse.Namespace,
    exporter: subprocess.Popen[bytes],
    base: str,
    limits: httpx.Limits,
    timeout: httpx.Timeout,
    inflater: concurrent.futures.Executor,
) -> dict[str, Any]:
    async with (
        httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client,
        httpx.AsyncClient(timeout=timeout, trust_env=False) as side,
    ):
        ready_s = await wait_ready(side, base, exporter, args.startup_timeout)
        watch, tally, plain = Watch(), Tally(), PlainTally()
        until = time.monotonic() + args.duration
        tasks = [
            scraper(
                client, f"{base}/metrics", until, tally, args.verify_every, args.interval, offset, inflater
            )
            for offset in (args.interval * i / args.scrapers for i in range(args.scrapers))
        ]
        pace = args.interval or 5.0
        tasks += [
            plain_scraper(side, f"{base}/metrics", until, plain, pace, pace * (i + 0.5) / args.plain_scrapers)
            for i in range(args.plain_scrapers)
        ]
        await asyncio.gather(
            monitor(side, f"{base}/metrics", exporter.pid, until, watch, args.health_every, inflater),
            *tasks,
        )
        late, behind, up, _ = await fetch_health(side, f"{base}/metrics", inflater)
    watch.late.append(late)
    watch.behind.append(behind)
    return summarize(args, ready_s, tally, plain, watch, up)


def summarize(
    args: argparse.Namespace, ready_s: float, tally: Tally, plain: PlainTally, watch: Watch, up: int
) -> dict[str, Any]:
    latencies = sorted(tally.latencies)

    def pct(q: float) -> float:
        return nearest_index(latencies, q)

    rss = [r for _, r, _ in watch.rss if r > 0]
    third = max(1, len(rss) // 3)
    late_moved = (watch.late[-1] - watch.late[0]) if watch.late else float("nan")
    on_schedule = late_moved == 0 and max(watch.behind, default=float("inf")) <= max(watch.cycle, 1.0)
    return {
        "regions": args.regions,
        "streams_per_region": args.streams_per_region,
        "scrapers": args.scrapers,
        "scrape_interval_s": args.interval,
        "exporter_env": args.exporter_env,
        "duration_s": args.duration,
        "poll_interval_s": args.poll_interval,
        "poll_cycle_s": watch.cycle,
        "ready_after_s": round(ready_s, 1),
        "scrapes": len(latencies),
        "errors": len(tally.errors),
        "error_examples": sorted(set(tally.errors))[:5],
        "scrapes_per_s": round(len(latencies) / args.duration, 1),
        "gzip_mb_per_scrape": round(tally.bytes_read / max(1, len(latencies)) / 2**20, 2),
        "bodies_verified": tally.verified,
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_p99_ms": round(pct(0.99) * 1000, 1),
        "latency_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
        "plain_scrapers": args.plain_scrapers,
        "plain_scrapes": len(plain.latencies),
        "plain_errors": len(plain.errors),
        "plain_error_examples": sorted(set(plain.errors))[:5],
        "plain_mb_per_scrape": round(plain.bytes_read / max(1, len(plain.latencies)) / 2**20, 1),
        "plain_latency_p50_ms": round(nearest_index(plain.latencies, 0.5) * 1000, 1),
        "plain_latency_max_ms": round(max(plain.latencies, default=float("nan")) * 1000, 1),
        "polls_late_during_run": late_moved,
        "worst_last_success_past_cycle_s": round(max(watch.behind, default=float("nan")), 2),
        "regions_up_at_end": up,
        "polls_on_schedule": on_schedule,
        "rss_mb_first_third_p50": round(statistics.median(rss[:third]), 1) if rss else None,
        "rss_mb_last_third_p50": round(statistics.median(rss[-third:]), 1) if rss else None,
        "rss_mb_max": round(max(rss), 1) if rss else None,
        "rss_peak_hwm_mb": round(max((h for _, _, h in watch.rss), default=0.0), 1),
        "rss_timeline": [(t, round(r, 1)) for t, r, _ in watch.rss[:: max(1, len(watch.rss) // 30)]],
    }


def print_report(result: dict[str, Any]) -> None:
    total = result["regions"] * result["streams_per_region"]
    pace = f"every {result['scrape_interval_s']:g} s" if result["scrape_interval_s"] else "back to back"
    print(f"\n{result['regions']} regions x {result['streams_per_region']:,} streams = {total:,}; "
          f"{result['scrapers']} concurrent gzip scrapers, each {pace}, for {result['duration_s']:.0f} s; "
          f"poll cycle {result['poll_cycle_s']:g} s (ready after {result['ready_after_s']} s)")  # fmt: skip
    print(f"  scrapes {result['scrapes']:,} ({result['scrapes_per_s']}/s, "
          f"{result['gzip_mb_per_scrape']} MB gzip each), errors {result['errors']}")  # fmt: skip
    for example in result["error_examples"]:
        print(f"    e.g. {example}")
    print(f"  latency p50 {result['latency_p50_ms']} ms, p99 {result['latency_p99_ms']} ms, "
          f"max {result['latency_max_ms']} ms")  # fmt: skip
    if result["plain_scrapers"]:
        print(f"  plus {result['plain_scrapers']} plain (chunked) scrapers: {result['plain_scrapes']} "
              f"scrapes of {result['plain_mb_per_scrape']} MB, errors {result['plain_errors']}, latency p50 "
              f"{result['plain_latency_p50_ms']} ms, max {result['plain_latency_max_ms']} ms")  # fmt: skip
        for example in result["plain_error_examples"]:
            print(f"    e.g. {example}")
    print(f"  polls on schedule: {'yes' if result['polls_on_schedule'] else 'NO'} "
          f"(polls_late_total moved by {result['polls_late_during_run']:g}; worst last_success "
          f"{result['worst_last_success_past_cycle_s']} s past one cycle; "
          f"{result['regions_up_at_end']}/{result['regions']} regions up at the end)")  # fmt: skip
    print(f"  RSS p50 first third {result['rss_mb_first_third_p50']} MB, last third "
          f"{result['rss_mb_last_third_p50']} MB, max {result['rss_mb_max']} MB "
          f"(peak HWM {result['rss_peak_hwm_mb']} MB)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scrapers", type=int, default=None, help="concurrent scrapers (default 50)")
    parser.add_argument("--duration", type=float, default=None, help="seconds of load (default 60)")
    parser.add_argument("--regions", type=int, default=None, help="default 5")
    parser.add_argument("--streams-per-region", type=int, default=None, help="default 20000")
    parser.add_argument("--poll-interval", type=int, default=None, help="seconds (default 5)")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between simulator scenario steps")
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between one scraper's scrapes, 0 = back to back (default 5)",
    )
    parser.add_argument(
        "--plain-scrapers",
        type=int,
        default=0,
        help="extra scrapers asking for plain text (streamed chunked), each every --interval (default 0)",
    )
    parser.add_argument(
        "--exporter-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the exporter",
    )
    parser.add_argument("--quick", action="store_true", help="a few seconds on a small fleet (CI smoke test)")
    args = parser.parse_args(argv)
    args.exporter_env = dict(item.split("=", 1) for item in args.exporter_env)
    args.interval = (0.0 if args.quick else 5.0) if args.interval is None else args.interval
    quick = args.quick
    args.scrapers = args.scrapers or (8 if quick else 50)
    args.duration = args.duration or (4.0 if quick else 60.0)
    args.regions = min(args.regions or (2 if quick else 5), len(REGIONS))
    args.streams_per_region = (
        args.streams_per_region if args.streams_per_region is not None else (300 if quick else 20000)
    )
    args.poll_interval = args.poll_interval or (1 if quick else 5)
    args.startup_timeout = 60.0 if quick else 300.0
    args.scrape_timeout = 30.0
    args.health_every = 1.0 if quick else 5.0
    args.verify_every = 5 if quick else 50

    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        with (
            open(directory / "simulator.log", "wb") as sim_log,
            open(directory / "exporter.log", "wb") as exp_log,
        ):
            simulator, endpoint = start_simulator(
                sim_log,
                streams=args.streams_per_region,
                regions=REGIONS[: args.regions],
                tick=args.tick,
                timeout=args.startup_timeout,
            )
            exporter: subprocess.Popen[bytes] | None = None
            try:
                port = free_port()
                config = write_config(directory, args, endpoint)
                exporter = start_exporter(config, port, exp_log, extra_env=args.exporter_env)
                result = asyncio.run(load(args, exporter, port))
                alive = exporter.poll() is None
            except RuntimeError as exc:
                exp_log.flush()
                tail = (directory / "exporter.log").read_text(errors="replace").splitlines()[-10:]
                print(f"{exc}; exporter log tail:\n  " + "\n  ".join(tail), file=sys.stderr)
                return 1
            finally:
                exporter_rc = stop_process(exporter) if exporter is not None else None
                stop_process(simulator)
        exporter_log = (directory / "exporter.log").read_text(errors="replace")
    result["exporter_alive_throughout"] = alive
    result["exporter_exit_code"] = exporter_rc
    result["exporter_log_tail"] = exporter_log.splitlines()[-10:]
    print_report(result)
    out = save_results("load", result)
    print(f"\nresults: {out}")
    print(json.dumps({k: result[k] for k in ("scrapes", "errors", "polls_on_schedule", "latency_p99_ms")}))
    ok = result["errors"] == 0 and result["plain_errors"] == 0 and alive and result["scrapes"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
