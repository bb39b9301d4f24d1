"""benchmarks/latency.py --quick: changes at random moments seen on /metrics within budget, in CI.

Two small regions polled every 2 s, real simulator and exporter processes; about 11 s.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_latency_run_meets_its_targets() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "latency.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out[-2000:] + done.stderr[-2000:]
    for kind in ("drop", "switchover", "start"):
        row = re.search(rf"^{kind}\s+20\s+(\d+)\s+\S+\s+\S+\s+\S+\s+0\b", out, re.MULTILINE)
        assert row and int(row[1]) > 0, out  # changes were made, all of them seen
    assert re.search(r"max \d+ requests in any 1 s window \(budget 20\), 0 throttled", out), out
