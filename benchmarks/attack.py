"""Issue 15: hostile HTTP clients against the real exporter, before and after the web rewrite.

    python benchmarks/attack.py [--idle 1000] [--slow-readers 100] [--tricklers 100]
                                [--streams-per-region 20000] [--regions 5] [--attack 30]
                                [--compare REV] [--quick]

Starts the simulator (``python -m exporter.simulator``, 5 x 20,000 streams by default) and the
exporter (``python -m exporter`` with a config pointing at it) on loopback. Once ``/readyz``
says every region was polled, it measures a quiet phase (``--quiet`` seconds: probes only),
then attacks for ``--attack`` seconds while probing:

- ``--idle`` connections that never send a byte (reopened when the server closes them);
- ``--slow-readers`` plain ``/metrics`` requests (the ~100 MB body) read 1 KiB a second
  through a 4 KiB receive buffer;
- ``--tricklers`` request heads that send ten 63 KB header lines at once, then one byte
  every 2 s.

Probes: ``/healthz`` on a new connection every 0.2 s and a gzip scrape of ``/metrics`` (as
Prometheus sends it, keep-alive) back to back. Reported per server: RSS quiet (median) and
under attack (peak), their ratio (target < 1.5), probe p50/p99/max (target p99 < 1 s),
probe errors, whether every region's ``up`` stayed 1 and ``polls_late_total`` did not move,
and what happened to the attackers (connections closed or refused by the server).

``--compare REV`` then runs the same attack against the exporter of git revision ``REV``
(``git archive REV exporter``, run as a whole: its web server with its own store), against the
same simulator. Everything is bounded: counts are capped,
every wait has a deadline, both processes are stopped at the end whatever happened. Results
also go to ``benchmarks/results/attack-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import _common
import httpx
from _common import ROOT, free_port, nearest_index, rss_mb, save_results, start_simulator, stop_process

REGIONS = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai")
_CAPS = {"idle": 5000, "slow_readers": 500, "tricklers": 500, "attack": 600.0}
_SAMPLE = re.compile(rb"^tencent_live_(up|polls_late_total)\{([^}]*)\} (\S+)$", re.MULTILINE)

# -- processes -----------------------------------------------------------------------------------


def start_exporter(
    args: argparse.Namespace, directory: Path, endpoint: str, port: int, tree: Path | None, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Today's exporter, or (``tree``) the whole exporter package of another revision."""
    config = directory / "config.yml"
    config.write_text(
        f"poll_interval: {args.poll_interval}s\nrequest_timeout: {min(10, args.poll_interval)}s\n"
        f"streams:\n  max_per_region: {max(20000, args.streams_per_region)}\n"
        f"accounts:\n  - name: attack\n    endpoint: {endpoint}\n"
        f"    regions: [{', '.join(REGIONS[: args.regions])}]\n"
    )
    return _common.start_exporter(config, port, log, tree=tree)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far: what the attack costs, whatever else runs."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def threads(pid: int) -> int:
    with contextlib.suppress(OSError):
        return len(os.listdir(f"/proc/{pid}/task"))
    return 0


# -- attackers ---------------------------------------------------------------------------------


@dataclass
class Attack:
    port: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    opened: dict[str, int] = field(default_factory=lambda: {"idle": 0, "slow": 0, "trickle": 0})
    closed_by_server: dict[str, int] = field(default_factory=lambda: {"idle": 0, "slow": 0, "trickle": 0})
    connect_failed: int = 0
    slow_bytes: int = 0


async def _open(attack: Attack, kind: str, rcvbuf: int | None = None) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        async with asyncio.timeout(5):
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", attack.port))
    except (OSError, TimeoutError):
        sock.close()
        attack.connect_failed += 1
        await asyncio.sleep(0.5)
        return None
    attack.opened[kind] += 1
    return sock


async def idle(attack: Attack) -> None:
    """Connect, send nothing, wait; reconnect when the server hangs up."""
    loop = asyncio.get_running_loop()
    while not attack.stop.is_set():
        sock = await _open(attack, "idle")
        if sock is None:
            continue
        with sock:
            stop = asyncio.ensure_future(attack.stop.wait())
            read = asyncio.ensure_future(loop.sock_recv(sock, 1))
            done, _ = await asyncio.wait({stop, read}, return_when=asyncio.FIRST_COMPLETED)
            for task in (stop, read):
                task.cancel()
            if read in done:
                attack.closed_by_server["idle"] += 1
                await asyncio.sleep(0.1)


async def slow_reader(attack: Attack) -> None:
    """Ask for the plain body, then read 1 KiB a second through a tiny receive buffer."""
    loop = asyncio.get_running_loop()
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n"
    while not attack.stop.is_set():
        sock = await _open(attack, "slow", rcvbuf=4096)
        if sock is None:
            continue
        with sock:
            try:
                await loop.sock_sendall(sock, request)
                while not attack.stop.is_set():
                    chunk = await loop.sock_recv(sock, 1024)
                    if not chunk:
                        break
                    attack.slow_bytes += len(chunk)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(1.0):
                            await attack.stop.wait()
            except OSError:
                pass
            if not attack.stop.is_set():
                attack.closed_by_server["slow"] += 1
                await asyncio.sleep(0.1)


async def trickler(attack: Attack) -> None:
    """630 KiB of header lines at once, then one more byte every 2 s, never ending the head."""
    loop = asyncio.get_running_loop()
    line = b"X-Pad: " + b"a" * 63_000 + b"\r\n"  # just under the stdlib's 64 KiB line limit
    burst = b"GET / HTTP/1.1\r\nHost: x\r\n" + line * 10 + b"X-Slow: "
    while not attack.stop.is_set():
        sock = await _open(attack, "trickle")
        if sock is None:
            continue
        with sock:
            try:
                await loop.sock_sendall(sock, burst)
                while not attack.stop.is_set():
                    await loop.sock_sendall(sock, b"a")
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(2.0):
                            await attack.stop.wait()
            except OSError:
                pass
            if not attack.stop.is_set():
                attack.closed_by_server["trickle"] += 1
                await asyncio.sleep(0.1)


# -- probes --------------------------------------------------------------------------------------


@dataclass
class Probes:
    healthz: list[float] = field(default_factory=list)
    scrape: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    last_gzip: bytes = b""


async def probe_healthz(port: int, probes: Probes, stop: asyncio.Event) -> None:
    """A new connection per probe, as a liveness check makes (raw: no client setup in the time)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request)
                reply = await reader.read()
                writer.close()
            if not reply.startswith(b"HTTP/1.1 200 "):
                probes.errors.append(f"healthz {reply[:12]!r}")
        except (OSError, TimeoutError) as exc:
            probes.errors.append(f"healthz {type(exc).__name__}")
        probes.healthz.append(time.monotonic() - started)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.2):
                await stop.wait()


async def probe_scrape(base: str, probes: Probes, stop: asyncio.Event) -> None:
    headers = {"Accept-Encoding": "gzip"}
    async with httpx.AsyncClient(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with client.stream("GET", f"{base}/metrics", headers=headers) as r:
                    body = b"".join([chunk async for chunk in r.aiter_raw()])
                if r.status_code != 200 or body[:2] != b"\x1f\x8b":
                    probes.errors.append(f"scrape {r.status_code}")
                else:
                    probes.last_gzip = body
            except httpx.HTTPError as exc:
                probes.errors.append(f"scrape {type(exc).__name__}")
            probes.scrape.append(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()


def health(body: bytes) -> dict[str, float]:
    """Sum of ``up`` and of ``polls_late_total`` over every region, and how many regions."""
    text = gzip.decompress(body) if body else b""
    up = [float(m.group(3)) for m in _SAMPLE.finditer(text) if m.group(1) == b"up"]
    late = [float(m.group(3)) for m in _SAMPLE.finditer(text) if m.group(1) == b"polls_late_total"]
    return {"regions": len(up), "up": sum(up), "polls_late": sum(late)}


def _attack_process(port: int, counts: tuple[int, int, int], seconds: float, out: Connection) -> None:
    """The attackers, in a process of their own: their event loop never delays a probe's clock."""

    async def attack_for() -> dict[str, Any]:
        attack = Attack(port=port)
        tasks = []
        for count, role in zip(counts, (idle, slow_reader, trickler), strict=True):
            for i in range(count):
                tasks.append(asyncio.ensure_future(role(attack)))
                if i % 100 == 99:
                    await asyncio.sleep(0.05)  # the listen backlog, not the attack, is what this paces
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await attack.stop.wait()
        attack.stop.set()
        await asyncio.wait(tasks, timeout=10)
        for task in tasks:
            task.cancel()
        return {
            "opened": attack.opened,
            "closed_by_server": attack.closed_by_server,
            "connect_failed": attack.connect_failed,
            "slow_bytes_read": attack.slow_bytes,
        }

    out.send(asyncio.run(attack_for()))
    out.close()


async def phase(
    base: str, pid: int, seconds: float, args: argparse.Namespace, *, attack: bool
) -> dict[str, Any]:
    probes, stop, rss = Probes(), asyncio.Event(), []
    port = int(base.rsplit(":", 1)[1])
    tasks = [
        asyncio.ensure_future(probe_healthz(port, probes, stop)),
        asyncio.ensure_future(probe_scrape(base, probes, stop)),
    ]
    attacker: multiprocessing.process.BaseProcess | None = None
    receive, send = multiprocessing.Pipe(duplex=False)
    if attack:
        counts = (args.idle, args.slow_readers, args.tricklers)
        attacker = multiprocessing.get_context("spawn").Process(
            target=_attack_process, args=(port, counts, seconds, send), daemon=True
        )
        attacker.start()
    started, cpu_start = time.monotonic(), cpu_seconds(pid)
    peak_threads = 0
    while time.monotonic() - started < seconds:
        rss.append(rss_mb(pid)[0])
        peak_threads = max(peak_threads, threads(pid))
        await asyncio.sleep(0.5)
    cpu_share = (cpu_seconds(pid) - cpu_start) / (time.monotonic() - started)
    stop.set()
    await asyncio.wait(tasks, timeout=35)
    for task in tasks:
        task.cancel()
    attackers: dict[str, Any] = {}
    if attacker is not None:
        if await asyncio.to_thread(receive.poll, 30):
            attackers = receive.recv()
        attacker.join(timeout=5)
        if attacker.is_alive():
            attacker.kill()
    return {
        "rss_median_mb": round(statistics.median(rss), 1),
        "rss_peak_mb": round(max(rss), 1),
        "threads_peak": peak_threads,
        "cpu_share": round(cpu_share, 2),
        "healthz": {
            "n": len(probes.healthz),
            "p50": nearest_index(probes.healthz, 0.5),
            "p99": nearest_index(probes.healthz, 0.99),
            "max": max(probes.healthz, default=float("nan")),
        },
        "scrape_gzip": {
            "n": len(probes.scrape),
            "p50": nearest_index(probes.scrape, 0.5),
            "p99": nearest_index(probes.scrape, 0.99),
            "max": max(probes.scrape, default=float("nan")),
        },
        "errors": len(probes.errors),
        "error_kinds": sorted(set(probes.errors))[:10],
        "health": health(probes.last_gzip),
        "attackers": attackers,
    }


async def run_one(
    args: argparse.Namespace, endpoint: str, tree: Path | None, log: IO[bytes]
) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="attack-") as tmp:
        exporter = start_exporter(args, Path(tmp), endpoint, port, tree, log)
        base = f"http://127.0.0.1:{port}"
        try:
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=5) as client:
                while True:
                    if exporter.poll() is not None or time.monotonic() - started > 300:
                        log.flush()
                        tail = Path(log.name).read_bytes()[-2000:].decode(errors="replace")
                        raise SystemExit(f"exporter not ready (exit code {exporter.poll()}):\n{tail}")
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{base}/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.5)
            ready_s = time.monotonic() - started
            quiet = await phase(base, exporter.pid, args.quiet, args, attack=False)
            under = await phase(base, exporter.pid, args.attack, args, attack=True)
            after = await phase(base, exporter.pid, min(args.quiet, 5.0), args, attack=False)
        finally:
            stop_process(exporter)
    return {
        "server": "today" if tree is None else f"git {args.compare}",
        "ready_s": round(ready_s, 1),
        "quiet": quiet,
        "attack": under,
        "after": after,
        "attackers": under.pop("attackers"),
        "rss_ratio": round(under["rss_peak_mb"] / quiet["rss_median_mb"], 2),
    }


def print_report(result: dict[str, Any]) -> None:
    q, a = result["quiet"], result["attack"]
    print(f"\n== {result['server']} (ready after {result['ready_s']} s)")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"exporter CPU (cores busy): quiet {q['cpu_share']}, attack {a['cpu_share']}; machine load {load}")
    print(
        f"RSS quiet {q['rss_median_mb']} MB, under attack peak {a['rss_peak_mb']} MB: x{result['rss_ratio']}"
        f" (target < 1.5); threads peak {a['threads_peak']}"
    )
    for name in ("healthz", "scrape_gzip"):
        for label, stats in (("quiet", q[name]), ("attack", a[name])):
            print(
                f"{name:12s} {label:7s} n={stats['n']:4d} p50={stats['p50']:.3f}s p99={stats['p99']:.3f}s"
                f" max={stats['max']:.3f}s"
            )
    after = result["after"]["errors"]
    print(f"probe errors: quiet {q['errors']}, attack {a['errors']} {a['error_kinds']}, after {after}")
    print(f"regions up after attack: {result['after']['health']}")
    print(f"attackers: {result['attackers']}")


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="attack-sim-") as tmp:
        log_path = Path(tmp) / "processes.log"
        with log_path.open("wb") as log:
            simulator, endpoint = start_simulator(
                log, streams=args.streams_per_region, regions=REGIONS[: args.regions], tick=5, timeout=300
            )
            try:
                results = [await run_one(args, endpoint, None, log)]
                print_report(results[0])
                if args.compare:
                    tree = Path(tmp) / "before"
                    tree.mkdir()
                    archive = subprocess.run(
                        ["git", "archive", args.compare, "exporter"],
                        cwd=ROOT,
                        check=True,
                        capture_output=True,
                    ).stdout
                    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
                    results.append(await run_one(args, endpoint, tree, log))
                    print_report(results[1])
            finally:
                stop_process(simulator)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slow-readers", type=int, default=100)
    parser.add_argument("--tricklers", type=int, default=100)
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument("--streams-per-region", type=int, default=20000)
    parser.add_argument("--poll-interval", type=int, default=15)
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of probes before the attack")
    parser.add_argument("--attack", type=float, default=30.0, help="seconds of attack")
    parser.add_argument("--compare", metavar="REV", help="also attack the web server of this git revision")
    parser.add_argument("--quick", action="store_true", help="small fleet, few attackers, seconds")
    args = parser.parse_args(argv)
    if args.quick:
        args.idle, args.slow_readers, args.tricklers = 100, 10, 10
        args.streams_per_region, args.quiet, args.attack, args.poll_interval = 500, 3.0, 5.0, 5
    args.idle = min(args.idle, _CAPS["idle"])
    args.slow_readers = min(args.slow_readers, _CAPS["slow_readers"])
    args.tricklers = min(args.tricklers, _CAPS["tricklers"])
    args.attack = min(args.attack, _CAPS["attack"])
    results = asyncio.run(main_async(args))
    out = save_results("attack", {"args": vars(args), "results": results})
    print(f"\nresults: {out.relative_to(ROOT)}")
    today = results[0]
    ok = (
        today["rss_ratio"] < 1.5
        and today["attack"]["healthz"]["p99"] < 1.0
        and today["attack"]["scrape_gzip"]["p99"] < 1.0
        and today["attack"]["errors"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
