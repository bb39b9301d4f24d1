"""A large DescribeBackupStreamList reply for scale tests (parse time, reply memory).

``streams`` groups of a master and a backup each, every value shaped like the vendor's
(timestamps, 18-digit upstream sequences, a non-ASCII SourceFrom), serialised by orjson.
"""

from __future__ import annotations

import orjson

__all__ = ["synthetic_reply"]


def synthetic_reply(streams: int) -> bytes:
    groups = [
        {
            "StreamName": f"stream-{i:06d}",
            "OptimalEnable": i % 2,
            "HostGroupName": "g",
            "BackupList": [
                {
                    "DomainName": "push.example.com",
                    "AppName": "live",
                    "PublishTime": f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z",
                    "UpstreamSequence": str(10**17 + 2 * i + k),
                    "SourceFrom": "直推流",
                    "MasterFlag": int(k == 0),
                }
                for k in range(2)
            ],
        }
        for i in range(streams)
    ]
    return orjson.dumps({"Response": {"RequestId": "r", "StreamInfoList": groups}})
