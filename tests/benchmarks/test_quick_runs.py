"""The process benchmarks' ``--quick`` runs in CI: real simulator and exporter processes.

benchmarks/load.py: scraped under load, no scrape error (~6 s). benchmarks/latency.py: two small
regions polled every 2 s, changes at random moments seen on /metrics within budget (~11 s).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def quick_run(script: str) -> str:
    """stdout of ``benchmarks/<script> --quick``, which must exit 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
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
