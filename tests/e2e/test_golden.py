"""Golden exposition, as node_exporter's ``end-to-end-test.sh``: the whole ``/metrics`` body.

A fixed script against the independent fake, an injected wall clock (so event times,
``last_success_timestamp_seconds`` and ``snapshot_age_seconds`` are exact), then the full body,
minus the samples that measure real time (request and poll durations, budget waits) and with
the version label normalised, is compared with ``tests/golden/metrics.txt``.
``UPDATE_GOLDEN=1 python -m pytest tests/e2e/test_golden.py`` rewrites it; review the diff.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
from pathlib import Path

from .harness import Clock, promtool_check, stack
from .vendor_fake import Fault, Group, Listing, Pub, VendorFake

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "metrics.txt"
SID, KEY = "AKIDgoldenE2E0000000001", "golden-e2e-secret-key-00001"
# Samples of these families measure elapsed real time: they are dropped before comparing.
VOLATILE = (
    "tencent_live_api_request_duration_seconds",
    "tencent_live_poll_duration_seconds",
    "tencent_live_rate_limit_wait_seconds_total",
    "process_",  # the process's own memory, CPU, fds and start time
)
T = "2026-01-05T06:30:00Z"


def pub(seq: str, master: bool = False, **kw: str) -> Pub:
    return Pub(seq, master, publish_time=T, **kw)


CONFIG = """
poll_interval: 15s
request_timeout: 2s
drop_confirmations: 2
accounts:
  - name: prod
    secret_id: {sid}
    secret_key: {key}
    regions: [ap-guangzhou, ap-hongkong]
    endpoint: {url}
  - name: staging
    secret_id: {sid}
    secret_key: {key}
    regions: [ap-shanghai]
    rate_limit: 5
    endpoint: {url}
"""

GZ_SCRIPT = [
    Listing.of(
        Group("news", (pub("100", True), pub("101")), host_group="hg-news", optimal_enable=1),
        Group("sport", (pub("200", True, source_from="拉流转推(123)", app="relay"),), optimal_enable=0),
        Group('odd "name"\\x', (pub("300", True), pub("301"), pub("302"))),
    ),
    Listing.of(
        Group("news", (pub("100"), pub("101", True)), host_group="hg-news", optimal_enable=1),
        Group(
            "sport",
            (pub("200", True, source_from="拉流转推(123)", app="relay"), pub("201")),
            optimal_enable=0,
        ),
    ),
    Listing.of(
        Group("news", (pub("101", True),), host_group="hg-news", optimal_enable=1),
        Group(
            "sport",
            (pub("200", True, source_from="拉流转推(123)", app="relay"), pub("201")),
            optimal_enable=0,
        ),
        Group("late", (pub("400", True),)),
    ),
]


def normalise(body: str) -> str:
    lines = []
    for line in body.splitlines():
        if line and not line.startswith("#") and line.startswith(VOLATILE):
            continue
        lines.append(re.sub(r"^(tencent_live_exporter_build_info)\{[^}]*\}", r"\1{BUILD}", line))
    return "\n".join(lines) + "\n"


async def _scenario(fake: VendorFake) -> str:
    fake.script("ap-guangzhou", GZ_SCRIPT)
    fake.script("ap-hongkong", [Listing(None)])
    fake.script("ap-shanghai", [Listing.of(Group("stage", (pub("900", True),))), Fault("InternalError")])
    config = CONFIG.format(sid=SID, key=KEY, url=fake.url)
    async with stack(config, clock=Clock(1_767_595_000.0)) as s:
        for step in range(len(GZ_SCRIPT)):
            fake.goto("ap-guangzhou", step)
            assert await s.poll("ap-guangzhou", tick=10)
        assert await s.poll("ap-hongkong", tick=1)
        assert await s.poll("ap-shanghai", account="staging", tick=1)
        fake.goto("ap-shanghai", 1)
        assert not await s.poll("ap-shanghai", account="staging", tick=1)
        s.clock.tick(5)  # the scrape happens a little later: snapshot ages are non-zero
        return s.get("/metrics").text


def test_golden_exposition() -> None:
    with VendorFake({SID: KEY}) as fake:
        body = asyncio.run(_scenario(fake))
    got = normalise(body)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(got)
    want = GOLDEN.read_text()
    diff = "".join(
        difflib.unified_diff(want.splitlines(True), got.splitlines(True), "tests/golden/metrics.txt", "got")
    )
    assert not diff, f"exposition differs from the golden file (UPDATE_GOLDEN=1 to refresh):\n{diff}"
    promtool_check(body)
