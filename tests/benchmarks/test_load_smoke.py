"""benchmarks/load.py --quick: the real exporter and simulator processes, scraped under load, in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_load_run_has_no_scrape_errors() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "load.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0
    assert summary["scrapes"] > 0
