"""Every benchmark's ``--quick`` run in CI, so none of them rots.

benchmarks/run.py: parse, diff and store in process, end to end at a small size (~8 s).
benchmarks/load.py: real simulator and exporter processes scraped under load, no scrape error
(~6 s). benchmarks/latency.py: two small regions polled every 2 s, changes at random moments
seen on /metrics within budget (~11 s).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_run(script: str, timeout: float = 90) -> str:
    """stdout of ``benchmarks/<script> --quick``, which must exit 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_quick_load_run_has_no_scrape_errors() -> None:
    summary = json.loads(quick_run("load.py").strip().splitlines()[-1])
    assert summary["errors"] == 0
    assert summary["scrapes"] > 0


def test_quick_latency_run_meets_its_targets() -> None:
    out = quick_run("latency.py")
    for kind in ("drop", "switchover", "start"):
        row = re.search(rf"^{kind}\s+20\s+(\d+)\s+\S+\s+\S+\s+\S+\s+0\b", out, re.MULTILINE)
        assert row and int(row[1]) > 0, out  # changes were made, all of them seen
    assert re.search(r"max \d+ requests in any 1 s window \(budget 20\), 0 throttled", out), out


def test_quick_benchmark_runs_and_prints_table() -> None:
    # seconds normally; a busy 2-core CI box is much slower (pytest stops at 120)
    out = quick_run("run.py", timeout=110)
    for heading in (
        "naive",
        "ours",
        "/metrics plain p50",
        "RSS steady",
        "promtool check metrics",
        "results:",
    ):
        assert heading in out, out
