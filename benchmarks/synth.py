"""Synthetic fleets for the benchmarks: realistic shapes, deterministic from a seed.

A region holds ``n`` streams; most have two publishers (master + hot backup), some one, a few
three. Each poll churns 1% of the streams with a switchover (half handovers, half failovers),
drops 0.5% and starts 0.5% new ones, as issue 6 describes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson

from exporter.model import Publisher, Snapshot, Stream

__all__ = ["REGIONS", "Fleet", "to_vendor_json"]

REGIONS = ("ap-bangkok", "ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai", "ap-seoul", "ap-tokyo")
_SOURCES = ("直推流", "拉流转推(1234567)")
_BASE_TIME = 1_760_000_000.0


class Fleet:
    """Snapshots of one account's regions, evolving poll by poll."""

    def __init__(
        self, *, regions: int, streams_per_region: int, seed: int = 6, account: str = "prod"
    ) -> None:
        if regions > len(REGIONS):
            raise ValueError(f"at most {len(REGIONS)} regions")
        self.account = account
        self._rng = random.Random(seed)
        self._serial = 0
        self._sequence = 710313341080024595
        self.taken_at = _BASE_TIME
        self.snapshots = [
            Snapshot(
                account=account,
                region=region,
                taken_at=self.taken_at,
                streams={s.name: s for s in (self._new_stream(index) for _ in range(streams_per_region))},
            )
            for index, region in enumerate(REGIONS[:regions])
        ]

    def churn(self, snapshot: Snapshot, taken_at: float) -> Snapshot:
        """The next poll of ``snapshot``'s region: 1% switchovers, 0.5% drops, 0.5% starts."""
        rng = self._rng
        streams = dict(snapshot.streams)
        names = list(streams)
        count = len(names)
        for name in rng.sample(names, max(1, count // 100)):
            streams[name] = self._switchover(streams[name])
        for name in rng.sample(names, max(1, count // 200)):
            del streams[name]
        region_index = REGIONS.index(snapshot.region)
        for _ in range(max(1, count // 200)):
            stream = self._new_stream(region_index)
            streams[stream.name] = stream
        return Snapshot(account=snapshot.account, region=snapshot.region, taken_at=taken_at, streams=streams)

    def polls(self, region: int, count: int, interval: float = 15.0) -> Iterator[Snapshot]:
        """``count`` successive churned snapshots of one region."""
        current = self.snapshots[region]
        for _ in range(count):
            current = self.churn(current, current.taken_at + interval)
            yield current

    def _new_stream(self, region_index: int) -> Stream:
        rng = self._rng
        self._serial += 1
        roll = rng.random()
        count = 1 if roll < 0.10 else 3 if roll > 0.95 else 2
        master = rng.randrange(count)
        publishers = tuple(self._publisher(i == master) for i in range(count))
        return Stream(
            name=f"room_{region_index}_{self._serial:07d}_main",
            host_group="hg-default" if rng.random() < 0.8 else "hg-vip",
            optimal_enable=1 if rng.random() < 0.9 else 0,
            publishers=publishers,
        )

    def _publisher(self, is_master: bool) -> Publisher:
        rng = self._rng
        self._sequence += rng.randrange(1, 1000)
        return Publisher(
            upstream_sequence=str(self._sequence),
            domain=f"{rng.randrange(5000, 5100)}.livepush.myqcloud.com",
            app="live",
            publish_time=float(int(_BASE_TIME - rng.randrange(0, 86400))),
            source_from=_SOURCES[0] if rng.random() < 0.9 else _SOURCES[1],
            is_master=is_master,
        )

    def _switchover(self, stream: Stream) -> Stream:
        publishers = list(stream.publishers)
        master = next((i for i, p in enumerate(publishers) if p.is_master), None)
        if master is None or len(publishers) < 2 or self._rng.random() < 0.5:
            # Failover: the master leaves, a fresh encoder joins as the new master.
            if master is not None:
                del publishers[master]
            publishers = [_with_master(p, False) for p in publishers]
            publishers.append(self._publisher(True))
        else:
            # Handover: the first backup takes over, the old master stays as a backup.
            backup = next(i for i, p in enumerate(publishers) if not p.is_master)
            publishers[master] = _with_master(publishers[master], False)
            publishers[backup] = _with_master(publishers[backup], True)
        return Stream(
            name=stream.name,
            host_group=stream.host_group,
            optimal_enable=stream.optimal_enable,
            publishers=tuple(publishers),
        )


def _with_master(publisher: Publisher, is_master: bool) -> Publisher:
    return Publisher(
        upstream_sequence=publisher.upstream_sequence,
        domain=publisher.domain,
        app=publisher.app,
        publish_time=publisher.publish_time,
        source_from=publisher.source_from,
        is_master=is_master,
    )


def to_vendor_json(snapshot: Snapshot) -> bytes:
    """The DescribeBackupStreamList reply that would have produced ``snapshot``."""
    return orjson.dumps(
        {
            "Response": {
                "StreamInfoList": [
                    {
                        "StreamName": s.name,
                        "OptimalEnable": s.optimal_enable,
                        "HostGroupName": s.host_group,
                        "BackupList": [
                            {
                                "DomainName": p.domain,
                                "AppName": p.app,
                                "PublishTime": datetime.fromtimestamp(p.publish_time, UTC).strftime(
                                    "%Y-%m-%dT%H:%M:%SZ"
                                ),
                                "UpstreamSequence": p.upstream_sequence,
                                "SourceFrom": p.source_from,
                                "MasterFlag": 1 if p.is_master else 0,
                            }
                            for p in s.publishers
                        ],
                    }
                    for s in snapshot.streams.values()
                ],
                "RequestId": "00000000-0000-4000-8000-000000000000",
            }
        }
    )
