"""Which source revision this exporter was built from: ``exporter_build_info{revision}``.

Asked once at startup (``pipeline.build_pipeline``), never per scrape.
"""

from __future__ import annotations

import json
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["UNKNOWN_REVISION", "build_revision"]

UNKNOWN_REVISION = "unknown"
_DIST = "tencent-live-exporter"


def build_revision() -> str:
    """The source revision this exporter was built from, for ``exporter_build_info{revision}``.

    A wheel installed from git records the commit in its metadata (``direct_url.json``,
    PEP 610); an editable or source checkout asks git once at startup. Anything else (a
    wheel built from an sdist, no git on the box) is ``unknown`` rather than a guess.
    """
    try:
        raw = metadata.distribution(_DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        raw = None
    if raw:
        try:
            commit = json.loads(raw).get("vcs_info", {}).get("commit_id")
        except (ValueError, AttributeError):
            commit = None
        if isinstance(commit, str) and commit.isalnum():
            return commit[:12]
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return UNKNOWN_REVISION
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=2.0,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN_REVISION
    out = done.stdout.strip()
    return out if done.returncode == 0 and out.isalnum() else UNKNOWN_REVISION
