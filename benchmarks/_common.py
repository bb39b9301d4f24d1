"""What the process benchmarks (attack.py, latency.py, load.py) share.

Each runs the simulator and the exporter as child processes on loopback, exactly as deployed,
and reads the exporter's memory from /proc; the helpers here start, stop and measure them the
same way in every benchmark. Imported as ``_common``: the benchmarks run as scripts, so their
own folder is first on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "RESULTS",
    "ROOT",
    "SECRET_ID",
    "bench_env",
    "free_port",
    "nearest_index",
    "rss_mb",
    "save_results",
    "start_exporter",
    "start_simulator",
    "stop_process",
]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# Throwaway credentials: the simulator accepts them, the exporter reads them from its environment.
SECRET_ID = "AKIDbenchmark00000000000"
_SECRET_KEY = "benchmark-throwaway-key-00000000000"


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment plus the throwaway credentials (and ``extra``)."""
    return {
        **os.environ,
        **(extra or {}),
        "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": _SECRET_KEY,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_simulator(
    log: IO[bytes],
    *,
    streams: int,
    regions: Sequence[str],
    tick: float,
    timeout: float,
    rate_limit: int = 20,
    extra: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """The vendor fake in its own process (so its CPU is not the exporter's) and its URL, once it
    says it listens (populating 100k streams takes a while)."""
    command = [
        sys.executable, "-m", "exporter.simulator", "--listen", "127.0.0.1:0", "--streams", str(streams),
        "--regions", ",".join(regions), "--tick", str(tick), "--rate-limit", str(rate_limit), *extra,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=bench_env(), stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        if line.startswith(b"simulator listening on "):
            return process, line.split()[-1].decode()
    stop_process(process)
    raise SystemExit(f"simulator did not start: {line!r}")


def start_exporter(
    config: Path,
    port: int,
    log: IO[bytes],
    *,
    extra_env: Mapping[str, str] | None = None,
    tree: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m exporter`` on 127.0.0.1:``port``; ``tree``: the exporter package of another
    revision, ahead of the editable install of today's tree."""
    env = bench_env(extra_env)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    command = [
        sys.executable, "-m", "exporter", "--config.file", str(config),
        "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=tree or ROOT, env=env, stdout=log, stderr=log)


def stop_process(process: subprocess.Popen[bytes], grace: float = 15.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    return process.returncode


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB; zeros once it is gone."""
    values = {"VmRSS": 0.0, "VmHWM": 0.0}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def nearest_index(values: Sequence[float], q: float) -> float:
    """The sample at rank ``int(q * n)`` of the sorted values (NaN for none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def save_results(kind: str, result: Any) -> Path:
    """``benchmarks/results/<kind>-<UTC timestamp>.json``."""
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return out
