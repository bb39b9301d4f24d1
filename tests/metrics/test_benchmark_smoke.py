"""CI smoke test: the benchmark script still runs end to end at its quick size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def test_quick_benchmark_runs_and_prints_table() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=110,  # seconds normally; a busy 2-core CI box is much slower (pytest stops at 120)
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    for heading in (
        "naive",
        "ours",
        "/metrics plain p50",
        "RSS steady",
        "promtool check metrics",
        "results:",
    ):
        assert heading in done.stdout, done.stdout
