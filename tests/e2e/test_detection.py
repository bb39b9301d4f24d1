"""Acceptance: detection semantics (SPEC 5), metrics (SPEC 6) and HTTP surface (SPEC 7).

The exporter runs wired as ``cli.py`` wires it, against the independent ``vendor_fake``; each
poll is driven explicitly (``Runner.poll_once``) so every step's assertions are exact. Every
assertion reads ``/metrics`` or ``/events`` over HTTP, parsed with client_python's parser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from .harness import Metrics, promtool_check, stack
from .vendor_fake import Fault, Group, Listing, Pub, Step, VendorFake

SID, KEY = "AKIDdetectionE2E00000001", "detection-e2e-secret-key-0001"
GZ, HK = "ap-guangzhou", "ap-hongkong"
T0 = "2026-01-05T07:00:00Z"
T0_UNIX = 1767596400.0


def config(fake: VendorFake, *, regions: tuple[str, ...] = (GZ, HK), extra: str = "") -> str:
    return f"""
poll_interval: 15s
request_timeout: 2s
drop_confirmations: 2
{extra}
accounts:
  - name: prod
    secret_id: {SID}
    secret_key: {KEY}
    regions: [{", ".join(regions)}]
    rate_limit: 20
    endpoint: {fake.url}
"""


def g(name: str, *pubs: Pub, host_group: str = "hg-a", optimal: int = 1) -> Group:
    return Group(name, pubs, host_group=host_group, optimal_enable=optimal)


def m(seq: str) -> Pub:
    return Pub(seq, master=True, publish_time=T0, domain="push.example.com", app="live", source_from="直推流")


def b(seq: str) -> Pub:
    return Pub(seq, publish_time=T0)


S1 = "s1"
S2 = "s2"
S3 = "s3"
S4 = "s4"
A, B, C, D, E, F, G, H = "1001", "1002", "2001", "2002", "3001", "4444", "2999", "5001"

# The detection script for ap-guangzhou, one step per poll.
SCRIPT: list[Step] = [
    Listing.of(g(S1, m(A), b(B)), g(S2, m(C), b(D)), g(S3, m(E))),  # 0 baseline
    Listing.of(g(S1, b(A), m(B)), g(S2, m(C), b(D)), g(S3, m(E))),  # 1 handover A -> B
    Listing.of(g(S1, m(A)), g(S2, m(C), b(D)), g(S3, m(E))),  # 2 failover B -> A (B gone)
    Listing.of(g(S1, m(A)), g(S2, m(C)), g(S3, m(E))),  # 3 s2 loses its backup D
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G)), g(S3, m(E))),  # 4 a backup rejoins s2 as G
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G))),  # 5 s3 absent (1)
    Fault("InternalError.GetStreamInfoError", "scripted"),  # 6 failed poll
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G)), g(S3, m(E))),  # 7 s3 back: nothing counted
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G))),  # 8 s3 absent (1)
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G))),  # 9 s3 absent (2): dropped
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G)), g(S4, m(H), b(F))),  # 10 s4 starts
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G))),  # 11 s4 absent (1)
    Fault("InternalError", "scripted"),  # 12 failed poll: neither confirms nor resets
    Listing.of(g(S1, m(A)), g(S2, m(C), b(G))),  # 13 s4 absent (2): dropped
    Listing(None),  # 14 StreamInfoList null: s1, s2 absent (1)
    Listing(None),  # 15 null again: s1, s2 dropped
]

REGION_COUNTERS = (
    "tencent_live_region_publisher_joins_total",
    "tencent_live_region_publisher_losses_total",
    "tencent_live_region_stream_starts_total",
    "tencent_live_region_stream_drops_total",
)
STREAM_COUNTERS = (
    "tencent_live_stream_switchovers_total",
    "tencent_live_stream_publisher_joins_total",
    "tencent_live_stream_publisher_losses_total",
)


@pytest.fixture
def fake() -> Iterator[VendorFake]:
    with VendorFake({SID: KEY}) as server:
        yield server


def region_counters(metrics: Metrics, region: str = GZ) -> dict[str, float | None]:
    labels = {"account": "prod", "region": region}
    out: dict[str, float | None] = {name: metrics.get(name, **labels) for name in REGION_COUNTERS}
    for reason in ("handover", "failover"):
        out[reason] = metrics.get("tencent_live_region_switchovers_total", reason=reason, **labels)
    return out


def stream_counters(metrics: Metrics, stream: str) -> tuple[float | None, ...]:
    return tuple(metrics.get(name, account="prod", region=GZ, stream=stream) for name in STREAM_COUNTERS)


def region_gauges(metrics: Metrics) -> tuple[float | None, ...]:
    labels = {"account": "prod", "region": GZ}
    return tuple(
        metrics.get(f"tencent_live_region_{name}", **labels)
        for name in ("streams", "streams_redundant", "streams_without_master", "publishers")
    )


def master(metrics: Metrics, stream: str) -> list[tuple[dict[str, str], float]]:
    return metrics.select("tencent_live_stream_master_info", account="prod", region=GZ, stream=stream)


def up(metrics: Metrics, region: str = GZ) -> float | None:
    return metrics.get("tencent_live_up", account="prod", region=region)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def counters_zero(counts: dict[str, float | None]) -> bool:
    return all(v == 0 for v in counts.values())


async def _detection(fake: VendorFake) -> None:
    fake.script(GZ, SCRIPT)
    fake.script(HK, [Listing(())])
    # SPEC 5's cycle-by-cycle rules: vanished streams wait for full lists (no by-name queries).
    async with stack(config(fake, extra="drop_confirm_queries: 0")) as s:
        step = -1

        async def gz() -> bool:
            nonlocal step
            step += 1
            fake.goto(GZ, step)
            return await s.poll(GZ)

        # Before any poll: alive, not ready; configured regions exist with up 0; nothing else.
        assert s.get("/healthz").status_code == 200
        assert s.get("/readyz").status_code == 503
        before = s.metrics()
        assert up(before) == 0 and up(before, HK) == 0
        assert before.get("tencent_live_rate_limit_requests_per_second", account="prod") == 20
        assert before.select("tencent_live_exporter_build_info")[0][1] == 1
        assert s.get("/nope").status_code == 404
        assert s.get("/metrics/extra").status_code == 404

        # 0 baseline: gauges set, every counter at 0, no event.
        assert await gz()
        assert s.get("/readyz").status_code == 503  # ap-hongkong not polled yet
        base_time = s.clock.now
        m0 = s.metrics()
        assert up(m0) == 1
        assert m0.get("tencent_live_last_success_timestamp_seconds", account="prod", region=GZ) == base_time
        assert region_gauges(m0) == (3, 2, 0, 5)
        assert region_counters(m0) == dict.fromkeys([*REGION_COUNTERS, "handover", "failover"], 0)
        for stream in (S1, S2, S3):
            assert stream_counters(m0, stream) == (0, 0, 0)
            assert m0.get("tencent_live_stream_online", account="prod", region=GZ, stream=stream) == 1
        assert m0.get("tencent_live_stream_publishers", account="prod", region=GZ, stream=S1) == 2
        assert m0.get("tencent_live_stream_publishers", account="prod", region=GZ, stream=S3) == 1
        assert master(m0, S1) == [
            (
                {
                    "account": "prod",
                    "region": GZ,
                    "stream": S1,
                    "domain": "push.example.com",
                    "app": "live",
                    "source_from": "直推流",
                    "upstream_sequence": A,
                },
                1.0,
            )
        ]
        assert (
            m0.get(
                "tencent_live_stream_master_publish_timestamp_seconds", account="prod", region=GZ, stream=S1
            )
            == T0_UNIX
        )
        assert m0.get(
            "tencent_live_stream_info",
            account="prod",
            region=GZ,
            stream=S1,
            host_group="hg-a",
            optimal_enable="1",
        ) == (1)
        assert m0.type_of("tencent_live_stream_switchovers") == "counter"
        assert m0.type_of("tencent_live_region_streams") == "gauge"
        assert s.events_list() == []

        assert await s.poll(HK)
        assert s.get("/readyz").status_code == 200
        hk = s.metrics()
        assert region_counters(hk, HK) == dict.fromkeys([*REGION_COUNTERS, "handover", "failover"], 0)

        # 1 handover: the old master is still there as a backup.
        assert await gz()
        m1 = s.metrics()
        assert [labels["upstream_sequence"] for labels, _ in master(m1, S1)] == [B]
        assert region_counters(m1)["handover"] == 1 and region_counters(m1)["failover"] == 0
        assert stream_counters(m1, S1) == (1, 0, 0)
        handover_time = s.clock.now

        # 2 failover: the old master left, which is also a publisher loss.
        assert await gz()
        m2 = s.metrics()
        assert [labels["upstream_sequence"] for labels, _ in master(m2, S1)] == [A]
        assert region_counters(m2)["failover"] == 1
        assert stream_counters(m2, S1) == (2, 0, 1)
        assert m2.get("tencent_live_stream_publishers", account="prod", region=GZ, stream=S1) == 1

        # 3 backup lost; 4 a backup rejoins with a new UpstreamSequence.
        assert await gz()
        m3 = s.metrics()
        assert stream_counters(m3, S2) == (0, 0, 1)
        assert region_gauges(m3) == (3, 0, 0, 3)
        assert await gz()
        m4 = s.metrics()
        assert stream_counters(m4, S2) == (0, 1, 1)
        assert region_gauges(m4) == (3, 1, 0, 4)

        # 5 absent once, 6 failed poll, 7 back: nothing at all.
        assert await gz()
        assert not await gz()
        m6 = s.metrics()
        assert up(m6) == 0
        assert (
            m6.get("tencent_live_last_success_timestamp_seconds", account="prod", region=GZ)
            == s.clock.now - 15
        )
        assert m6.get(
            "tencent_live_api_requests_total",
            account="prod",
            region=GZ,
            code="InternalError.GetStreamInfoError",
        )
        assert await gz()
        m7 = s.metrics()
        assert up(m7) == 1
        assert region_counters(m7)["tencent_live_region_stream_drops_total"] == 0
        assert region_counters(m7)["tencent_live_region_stream_starts_total"] == 0
        assert m7.get("tencent_live_stream_online", account="prod", region=GZ, stream=S3) == 1

        # 8, 9 absent twice: dropped; online 0, counters kept.
        assert await gz()
        assert await gz()
        m9 = s.metrics()
        assert region_counters(m9)["tencent_live_region_stream_drops_total"] == 1
        assert m9.get("tencent_live_stream_online", account="prod", region=GZ, stream=S3) == 0
        assert master(m9, S3) == []
        assert stream_counters(m9, S3) == (0, 0, 0)
        assert region_gauges(m9) == (2, 1, 0, 3)

        # 10 stream_start: its counters exist at 0 from this snapshot.
        assert await gz()
        m10 = s.metrics()
        assert region_counters(m10)["tencent_live_region_stream_starts_total"] == 1
        assert stream_counters(m10, S4) == (0, 0, 0)
        assert m10.get("tencent_live_stream_online", account="prod", region=GZ, stream=S4) == 1

        # 11 absent, 12 failed, 13 absent: two confirmations, dropped.
        assert await gz()
        assert not await gz()
        assert await gz()
        m13 = s.metrics()
        assert region_counters(m13)["tencent_live_region_stream_drops_total"] == 2
        assert m13.get("tencent_live_stream_online", account="prod", region=GZ, stream=S4) == 0

        # 14, 15 StreamInfoList null: a successful empty list, so s1 and s2 drop after two.
        assert await gz()
        m14 = s.metrics()
        assert up(m14) == 1
        assert region_gauges(m14) == (0, 0, 0, 0)
        assert m14.get("tencent_live_stream_online", account="prod", region=GZ, stream=S1) == 1
        assert await gz()
        final = s.metrics()
        assert final.get("tencent_live_stream_online", account="prod", region=GZ, stream=S1) == 0
        assert final.get("tencent_live_stream_online", account="prod", region=GZ, stream=S2) == 0
        assert region_counters(final) == {
            "handover": 1,
            "failover": 1,
            "tencent_live_region_publisher_joins_total": 1,
            "tencent_live_region_publisher_losses_total": 2,
            "tencent_live_region_stream_starts_total": 1,
            "tencent_live_region_stream_drops_total": 4,
        }
        assert stream_counters(final, S1) == (2, 0, 1)
        assert stream_counters(final, S2) == (0, 1, 1)
        assert final.get("tencent_live_api_requests_total", account="prod", region=GZ, code="OK") == 14
        failures = final.select("tencent_live_api_requests_total", account="prod", region=GZ)
        assert {labels["code"] for labels, _ in failures} == {
            "OK",
            "InternalError",
            "InternalError.GetStreamInfoError",
        }

        # /events: newest first, with kind, reason, from, to and the snapshot's time.
        events = s.events_list()
        got = [(e["kind"], e["stream"], e.get("reason"), e.get("from"), e.get("to")) for e in events]
        assert got == [
            ("stream_drop", S1, None, None, None),
            ("stream_drop", S2, None, None, None),
            ("stream_drop", S4, None, None, None),
            ("stream_start", S4, None, None, None),
            ("stream_drop", S3, None, None, None),
            ("publisher_join", S2, None, None, G),
            ("publisher_loss", S2, None, D, None),
            ("switchover", S1, "failover", B, A),
            ("publisher_loss", S1, None, B, None),
            ("switchover", S1, "handover", A, B),
        ]
        assert all(e["account"] == "prod" and e["region"] == GZ for e in events)
        assert events[-1]["time"] == rfc3339(handover_time)
        assert events[0]["time"] == rfc3339(s.clock.now)

        body = s.get("/metrics").text
        promtool_check(body)
        assert "AuthFailure" not in repr(fake.codes())
        assert "RequestLimitExceeded" not in fake.codes()
        assert fake.max_window(SID) <= 20
        assert KEY not in body and KEY not in s.get("/").text and KEY not in s.get("/events").text


def test_detection_end_to_end(fake: VendorFake) -> None:
    asyncio.run(_detection(fake))


async def _masterless(fake: VendorFake) -> None:
    fake.script(
        GZ,
        [
            Listing.of(g(S1, b(A), b(B)), g(S2, m(C), b(D))),  # s1 without a master
            Listing.of(g(S1, m(A), b(B)), g(S2, b(C), b(D))),  # s1's first master: no switchover
            Listing.of(g(S1, b(B)), g(S2, b(C), b(D))),  # s1's master A gone: a loss; s2 still masterless
            # Masters again after a masterless spell: failover both (SPEC precise rules), also for
            # s2 whose last master C is still present.
            Listing.of(g(S1, m(B)), g(S2, b(C), m(D))),
        ],
        mode="request",
    )
    async with stack(config(fake, regions=(GZ,))) as s:
        assert await s.poll(GZ)
        assert region_gauges(s.metrics())[2] == 1
        assert await s.poll(GZ)
        m1 = s.metrics()
        assert region_gauges(m1)[2] == 1
        assert region_counters(m1)["handover"] == 0 and region_counters(m1)["failover"] == 0
        assert await s.poll(GZ)
        assert master(s.metrics(), S1) == []
        assert await s.poll(GZ)
        final = s.metrics()
        assert region_counters(final)["failover"] == 2
        assert region_counters(final)["handover"] == 0
        events = [
            (e["kind"], e["stream"], e.get("reason"), e.get("from"), e.get("to")) for e in s.events_list()
        ]
        assert events == [
            ("switchover", S1, "failover", A, B),
            ("switchover", S2, "failover", C, D),
            ("publisher_loss", S1, None, A, None),
        ]


def test_master_appearing_and_returning(fake: VendorFake) -> None:
    asyncio.run(_masterless(fake))


async def test_drop_confirmed_by_name_within_the_poll_that_missed_it(fake: VendorFake) -> None:
    """SPEC 9: a vanished stream is asked for by name at once; with drop_confirmations 2 the full
    list that missed it and the by-name reply confirm the drop, not a second full poll."""

    fake.script(GZ, [Listing.of(g(S1, m(A)), g(S2, m(C))), Listing.of(g(S1, m(A)))])
    async with stack(config(fake, regions=(GZ,))) as s:
        assert await s.poll(GZ)
        fake.goto(GZ, 1)
        assert await s.poll(GZ)
        metrics = s.metrics()
        assert region_counters(metrics)["tencent_live_region_stream_drops_total"] == 1
        assert metrics.get("tencent_live_stream_online", account="prod", region=GZ, stream=S2) == 0
        by_name = [r for r in fake.records if r.stream_name is not None]
        assert [(r.stream_name, r.code) for r in by_name] == [(S2, "OK")]


async def test_a_name_found_again_by_name_is_not_absent(fake: VendorFake) -> None:
    both = Listing.of(g(S1, m(A)), g(S2, m(C)))
    # Request by request: the full list misses s2 once, the by-name query right after finds it.
    fake.script(GZ, [both, Listing.of(g(S1, m(A))), both], mode="request")
    async with stack(config(fake, regions=(GZ,))) as s:
        assert await s.poll(GZ)
        assert await s.poll(GZ)
        assert await s.poll(GZ)
        metrics = s.metrics()
        assert region_counters(metrics)["tencent_live_region_stream_drops_total"] == 0
        assert region_counters(metrics)["tencent_live_region_stream_starts_total"] == 0
        assert metrics.get("tencent_live_stream_online", account="prod", region=GZ, stream=S2) == 1
        assert [r.stream_name for r in fake.records if r.stream_name] == [S2]


def _steady(body: str) -> list[str]:
    return [line for line in body.splitlines() if not line.startswith("process_")]


async def test_gzip_scrape_matches_plain(fake: VendorFake) -> None:
    fake.script(GZ, [SCRIPT[0]])
    async with stack(config(fake, regions=(GZ,))) as s:
        assert await s.poll(GZ)
        plain = s.get("/metrics").text
        zipped = s.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers.get("content-encoding") == "gzip"
        # httpx decodes; equality proves one complete member (process_* samples move between scrapes)
        assert _steady(zipped.text) == _steady(plain)
