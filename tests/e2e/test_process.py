"""Acceptance against the real process: ``python -m exporter --config.file F`` with its own scheduler.

What only a running daemon shows: detection through the scheduled poll loop (issue 4), and
the scheduler's promise that no sliding one-second window of any account exceeds its
``rate_limit`` at the server, while every region still gets polled (issue 5). The vendor is
the independent fake; the budget is judged on the fake's arrival log, not on our own counts.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
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


def _one_region(fake: VendorFake, state: Path | None = None, regions: tuple[str, ...] = (GZ,)) -> str:
    sid, key = ACCOUNTS["alpha"]
    text = (
        f"poll_interval: 1s\nrequest_timeout: 500ms\naccounts:\n  - name: alpha\n    secret_id: {sid}\n"
        f"    secret_key: {key}\n    regions: [{', '.join(regions)}]\n    endpoint: {fake.url}\n"
    )
    return text if state is None else f"state_file: {state}\n{text}"


_GOOD_REGION = {"format": 1, "regions": [{"account": "alpha", "region": GZ, "stream_drops": 1}]}


def _state(counters: object = _GOOD_REGION, **top: object) -> str:
    doc: dict[str, object] = {
        "format": "tencent-live-exporter-state",
        "version": 1,
        "regions": {},
        "counters": counters,
    }
    doc.update(top)
    return json.dumps(doc)


BAD_STATE = {
    "negative counter": _state(
        {"format": 1, "regions": [{"account": "alpha", "region": GZ, "stream_drops": -1}]}
    ),
    "counter over 2^64": _state(
        {"format": 1, "regions": [{"account": "alpha", "region": GZ, "stream_drops": 2**64 + 1}]}
    ),
    "string counter": _state(
        {"format": 1, "regions": [{"account": "alpha", "region": GZ, "stream_drops": "3"}]}
    ),
    "counters format 2": _state({"format": 2, "regions": []}),
    "file version 2": _state(version=2),
    "bad nesting": _state(regions={"alpha/ap-guangzhou": {"account": "alpha", "region": GZ, "streams": [1]}}),
    "stream counters not a list": _state(
        {"format": 1, "regions": [{"account": "alpha", "region": GZ, "streams": {"s": {"a": 1}}}]}
    ),
    "not json": '{"format": ',
}


@pytest.mark.parametrize("content", BAD_STATE.values(), ids=BAD_STATE.keys())
def test_a_bad_state_file_is_moved_aside_and_the_exporter_starts_fresh(
    tmp_path: Path, fake: VendorFake, content: str
) -> None:
    fake.script(GZ, [Listing.of(g("s1", Pub("1", True)))])
    state = tmp_path / "state.json"
    state.write_text(content)
    config = tmp_path / "config.yml"
    config.write_text(_one_region(fake, state))
    logs = []
    for _ in range(2):  # and the next start is just as fine: no crash loop
        with Exporter("--config.file", str(config), "--log.format", "json") as exporter:
            exporter.wait_ready()
            await_condition(
                lambda: exporter.metrics().get("tencent_live_up", account="alpha", region=GZ) == 1,
                what="a poll after the fresh start",
            )
            assert exporter.terminate() == 0
        assert "Traceback" not in exporter.out + exporter.err
        logs.append([json.loads(x) for x in exporter.err.splitlines() if x.startswith("{")])
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == content
    [failed] = [line for line in logs[0] if line["event"] == "state_restore_failed"]
    assert failed["level"] == "warning" and str(aside[0]) in failed["error"]
    assert "starting fresh" in failed["error"]
    assert "state_restored" in {line["event"] for line in logs[1]}  # the fresh run's own save
    assert state.exists()


def test_two_exporters_never_share_one_state_file(tmp_path: Path, fake: VendorFake) -> None:
    fake.script(GZ, [Listing.of(g("s1", Pub("1", True)))])
    state = tmp_path / "state.json"
    config = tmp_path / "config.yml"
    config.write_text(_one_region(fake, state))
    with Exporter("--config.file", str(config)) as first:
        first.wait_ready()
        await_condition((tmp_path / "state.json.lock").exists, what="the first exporter's lock")
        with Exporter("--config.file", str(config), "--log.format", "json") as second:
            second.wait_ready()
            await_condition(
                lambda: second.metrics().get("tencent_live_up", account="alpha", region=GZ) == 1,
                what="the second exporter polling",
            )
            assert second.terminate() == 0
        locked = [json.loads(x) for x in second.err.splitlines() if "state_file_locked" in x]
        assert len(locked) == 1 and locked[0]["level"] == "error" and locked[0]["persistence"] == "off"
        assert f"in use by process {first.proc.pid}" in locked[0]["error"]  # type: ignore[union-attr]
        assert first.terminate() == 0
    assert state.exists()


def test_sighup_reloads_the_config_and_a_bad_file_changes_nothing(tmp_path: Path, fake: VendorFake) -> None:
    for region in (GZ, "ap-hongkong"):
        fake.script(region, [Listing.of(g("s1", Pub("1", True)))])
    config = tmp_path / "config.yml"
    config.write_text(_one_region(fake))
    with Exporter("--config.file", str(config), "--log.format", "json") as exporter:
        exporter.wait_ready()

        def up(region: str) -> float | None:
            return exporter.metrics().get("tencent_live_up", account="alpha", region=region)

        await_condition(lambda: up(GZ) == 1, what="the first region up")
        config.write_text(_one_region(fake, regions=(GZ, "ap-hongkong")))
        exporter.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        await_condition(lambda: up("ap-hongkong") == 1, what="the added region polled after SIGHUP")
        metrics = exporter.metrics()
        assert metrics.get("tencent_live_config_last_reload_successful") == 1
        assert metrics.get("tencent_live_http_connections_max") is not None  # the web server's own
        assert metrics.get("process_resident_memory_bytes")  # process_* from the health registry
        config.write_text("accounts: [\n")
        exporter.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        await_condition(
            lambda: exporter.metrics().get("tencent_live_config_last_reload_successful") == 0,
            what="the failed reload on the gauge",
        )
        assert exporter.alive() and up("ap-hongkong") == 1
        assert exporter.terminate() == 0
    assert "reload_failed" in exporter.err


def test_post_reload_with_lifecycle_and_the_ready_line(tmp_path: Path, fake: VendorFake) -> None:
    for region in (GZ, "ap-hongkong"):
        fake.script(region, [Listing.of(g("s1", Pub("1", True)))])
    config = tmp_path / "config.yml"
    config.write_text(_one_region(fake))
    args = ("--config.file", str(config), "--log.format", "json", "--web.enable-lifecycle")
    with Exporter(*args) as exporter:
        exporter.wait_ready()
        await_condition(lambda: exporter.get("/readyz").status_code == 200, what="ready")
        config.write_text(_one_region(fake, regions=(GZ, "ap-hongkong")))
        reply = httpx.post(f"{exporter.url}/-/reload", timeout=30)
        assert reply.status_code == 200, reply.text
        await_condition(
            lambda: exporter.metrics().get("tencent_live_up", account="alpha", region="ap-hongkong") == 1,
            what="the region added by POST /-/reload polled",
        )
        config.write_text("poll_interval: soon\n")
        assert httpx.post(f"{exporter.url}/-/reload", timeout=30).status_code == 500
        assert exporter.terminate() == 0
    lines = [json.loads(x) for x in exporter.err.splitlines() if x.startswith("{")]
    ready = [line for line in lines if line["event"] == "ready"]
    assert len(ready) == 2 and ready[0]["regions"] == 1 and ready[1]["regions"] == 2  # again after the reload
    assert [line["event"] for line in lines].count("reload_failed") == 1


def test_sighup_rereads_rotated_credential_files(tmp_path: Path, fake: VendorFake) -> None:
    fake.script(GZ, [Listing.of(g("s1", Pub("1", True)))])
    (alpha_id, alpha_key), (beta_id, beta_key) = ACCOUNTS["alpha"], ACCOUNTS["beta"]
    id_file, key_file = tmp_path / "secret_id", tmp_path / "secret_key"
    id_file.write_text(alpha_id + "\n")
    key_file.write_text(alpha_key + "\n")
    config = tmp_path / "config.yml"
    config.write_text(
        f"poll_interval: 1s\nrequest_timeout: 500ms\naccounts:\n  - name: alpha\n"
        f"    secret_id_file: {id_file}\n    secret_key_file: {key_file}\n"
        f"    regions: [{GZ}]\n    endpoint: {fake.url}\n"
    )
    with Exporter("--config.file", str(config)) as exporter:
        exporter.wait_ready()
        await_condition(lambda: GZ in fake.regions_served(alpha_id), what="polls with the first key")
        # A rotated Kubernetes Secret: both files replaced, then SIGHUP.
        id_file.write_text(beta_id + "\n")
        key_file.write_text(beta_key + "\n")
        exporter.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        await_condition(lambda: GZ in fake.regions_served(beta_id), what="polls with the rotated key")
        assert exporter.metrics().get("tencent_live_up", account="alpha", region=GZ) == 1
        assert exporter.terminate() == 0
    output = exporter.out + exporter.err
    assert alpha_key not in output and beta_key not in output
