"""Running the exporter's own ``--check-config`` from tests, as a deployment would.

The environment is this one without any ``TENCENTCLOUD_*`` variable, so a config that needs
credentials only passes when the test hands them over (``credentials``), as a Secret would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["REPO", "check_config"]

REPO = Path(__file__).resolve().parents[1]


def check_config(
    path: Path,
    *,
    credentials: tuple[str, str] | None = None,
    command: Sequence[str] = (sys.executable, "-m", "exporter"),
) -> subprocess.CompletedProcess[str]:
    """``<command> --check-config --config.file <path>``, run from the repository root;
    ``credentials``: (secret id, secret key) in ``TENCENTCLOUD_SECRET_ID``/``_KEY``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    if credentials is not None:
        env["TENCENTCLOUD_SECRET_ID"], env["TENCENTCLOUD_SECRET_KEY"] = credentials
    return subprocess.run(
        [*command, "--check-config", "--config.file", str(path)],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
