"""Acceptance against the real process: ``python -m exporter --config.file F`` with its own scheduler.

What only a running daemon shows: detection through the scheduled poll loop (issue 4), and
the scheduler's promise that no sliding one-second window of any account exceeds its
``rate_limit`` at the server, while every region still gets polled (issue 5). The vendor is
the independent fake; the budget is judged on the fake's arrival log, not on our own counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Exporter, await_condition, promtool_check
from .vendor_fake import Fault, Group, Listing, Pub, VendorFake

REGIONS = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai")
ACCOUNTS = {
    "alpha": ("AKIDprocessAlpha0000001", "process-alpha-secret-0001"),
    "beta": ("AKIDprocessBeta00000002", "process-beta-secret-00002"),
}
GZ = "ap-guangzhou"


def accounts_yaml(fake: VendorFake, *, regions: tuple[str, ...], rate_limit: float, names: int = 0) -> str:
    out = ["accounts:"]
    for name, (sid, key) in ACCOUNTS.items():
        out += [
            f"  - name: {name}",
            f"    secret_id: {sid}",
            f"    secret_key: {key}",
            f"    regions: [{', '.join(regions)}]",
            f"    rate_limit: {rate_limit}",
            f"    endpoint: {fake.url}",
        ]
        if names:
            out.append(f"    stream_names: [{', '.join(f'w{i:03d}' for i in range(names))}]")
    return "\n".join(out) + "\n"


@pytest.fixture
def fake() -> Iterator[VendorFake]:
    with VendorFake(dict(ACCOUNTS.values())) as server:
        yield server


def g(name: str, *pubs: Pub) -> Group:
    return Group(name, pubs)


def test_detection_through_the_scheduled_daemon(tmp_path: Path, fake: VendorFake) -> None:
    a, b, c, d, e = "11", "12", "21", "22", "31"
    fake.script(
        GZ,
        [
            Listing.of(g("s1", Pub(a, True), Pub(b)), g("s2", Pub(c, True), Pub(d)), g("s3", Pub(e, True))),
            Listing.of(g("s1", Pub(a), Pub(b, True)), g("s2", Pub(c, True)), g("s3", Pub(e, True))),
            Fault("InternalError"),
            Listing.of(g("s1", Pub(a, True)), g("s2", Pub(c, True))),
            Listing.of(g("s1", Pub(a, True)), g("s2", Pub(c, True))),
        ],
    )
    config = tmp_path / "config.yml"
    sid, key = ACCOUNTS["alpha"]
    config.write_text(
        f"poll_interval: 1s\nrequest_timeout: 500ms\naccounts:\n  - name: alpha\n    secret_id: {sid}\n"
        f"    secret_key: {key}\n    regions: [{GZ}]\n    endpoint: {fake.url}\n"
    )
    with Exporter("--config.file", str(config), "--log.level", "debug") as exporter:
        exporter.wait_ready()

        def up() -> float | None:
            return exporter.metrics().get("tencent_live_up", account="alpha", region=GZ)

        fake.wait_served(GZ, 0, count=2)
        assert exporter.get("/readyz").status_code == 200
        for step in (1, 2, 3, 4):
            fake.goto(GZ, step)
            if step == 2:
                await_condition(lambda: up() == 0, what="the failed poll")
            else:
                fake.wait_served(GZ, step, count=2)
        metrics = exporter.metrics()
        events = exporter.get("/events").json()["events"]
        body = exporter.get("/metrics").text
        assert exporter.terminate() == 0

    region = {"account": "alpha", "region": GZ}
    assert metrics.get("tencent_live_up", **region) == 1
    assert metrics.get("tencent_live_region_switchovers_total", reason="handover", **region) == 1
    assert metrics.get("tencent_live_region_switchovers_total", reason="failover", **region) == 1
    assert metrics.get("tencent_live_region_publisher_losses_total", **region) == 2
    assert metrics.get("tencent_live_region_publisher_joins_total", **region) == 0
    assert metrics.get("tencent_live_region_stream_drops_total", **region) == 1
    assert metrics.get("tencent_live_region_stream_starts_total", **region) == 0
    assert metrics.get("tencent_live_stream_online", stream="s3", **region) == 0
    assert metrics.get("tencent_live_stream_switchovers_total", stream="s1", **region) == 2
    assert [(x["kind"], x["stream"], x.get("reason"), x.get("from"), x.get("to")) for x in events] == [
        ("stream_drop", "s3", None, None, None),
        ("switchover", "s1", "failover", b, a),
        ("publisher_loss", "s1", None, b, None),
        ("switchover", "s1", "handover", a, b),
        ("publisher_loss", "s2", None, d, None),
    ]
    promtool_check(body)
    assert not [code for code in fake.codes() if code.startswith(("AuthFailure", "RequestLimitExceeded"))]
    assert fake.max_window(sid) <= 20
    # Every event is also a structured log line.
    assert exporter.err.count("stream_event") + exporter.out.count("stream_event") == 5


def _budget_run(
    tmp_path: Path, fake: VendorFake, *, rate_limit: int, names: int, polls: int, timeout: float
) -> None:
    """Run the daemon until every region of both accounts answered ``polls`` polls; judge the fake's log."""
    for region in REGIONS:
        groups = [g(f"w{i:03d}", Pub(f"{i}1", True), Pub(f"{i}2")) for i in range(0, max(names, 6), 2)]
        fake.script(region, [Listing(tuple(groups))])
    config = tmp_path / "config.yml"
    config.write_text(
        "poll_interval: 1s\nrequest_timeout: 500ms\n"
        + accounts_yaml(fake, regions=REGIONS, rate_limit=rate_limit, names=names)
    )
    per_poll = max(names, 1)
    with Exporter("--config.file", str(config)) as exporter:
        exporter.wait_ready()

        def done() -> bool:
            assert exporter.alive()
            counts = fake.ok_counts()
            return all(
                counts[sid, region] >= polls * per_poll for sid, _ in ACCOUNTS.values() for region in REGIONS
            )

        await_condition(done, timeout=timeout, what=f"{polls} polls of every region of both accounts")
        assert exporter.get("/readyz").status_code == 200
        metrics = exporter.metrics()
        assert exporter.terminate() == 0
    for name, (sid, _) in ACCOUNTS.items():
        assert fake.max_window(sid) <= rate_limit, (name, fake.max_window(sid))
        assert fake.regions_served(sid) == set(REGIONS)
        for region in REGIONS:
            assert metrics.get("tencent_live_up", account=name, region=region) == 1
    codes = fake.codes()
    assert set(codes) == {"OK"}, codes


def test_budget_holds_with_a_tight_rate_limit(tmp_path: Path) -> None:
    # 2 accounts x 5 regions at 1 s wants 5 req/s per account; the budget is 3: the schedule
    # must stretch, never burst. The fake rejects anything above 3 in a sliding second.
    with VendorFake(dict(ACCOUNTS.values()), rate_limit=3) as fake:
        _budget_run(tmp_path, fake, rate_limit=3, names=0, polls=2, timeout=30)


def test_budget_holds_with_watch_lists(tmp_path: Path, fake: VendorFake) -> None:
    # 2 accounts x 5 regions x 8 watched names: 40 queries per account and cycle at 20 req/s.
    _budget_run(tmp_path, fake, rate_limit=20, names=8, polls=2, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_budget_holds_with_200_watched_names(tmp_path: Path, fake: VendorFake) -> None:
    # The acceptance size: 2 accounts x 5 regions x 200 names, rate_limit 20.
    _budget_run(tmp_path, fake, rate_limit=20, names=200, polls=1, timeout=240)
