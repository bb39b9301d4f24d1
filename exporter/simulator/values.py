"""The simulator's value types: an API key, and a stream with its publishers in vendor shape.

Frozen and replaced on change, so a caller holding one never sees it move under its feet.
They are the simulator's own, not ``exporter.model``'s: the fake must not bend to our parser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DIRECT_PUSH", "Account", "SimPublisher", "SimStream", "format_publish_time"]

DIRECT_PUSH = "直推流"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """An API key the simulator accepts; ``token`` set means temporary credentials."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)
    rate_limit: float | None = None  # None: the simulator's default budget


@dataclass(frozen=True, slots=True, kw_only=True)
class SimPublisher:
    upstream_sequence: str
    domain: str
    app: str
    publish_time: int  # Unix seconds
    source_from: str
    master: bool

    def to_vendor(self) -> dict[str, Any]:
        return {
            "DomainName": self.domain,
            "AppName": self.app,
            "PublishTime": format_publish_time(self.publish_time),
            "UpstreamSequence": self.upstream_sequence,
            "SourceFrom": self.source_from,
            "MasterFlag": 1 if self.master else 0,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SimStream:
    name: str
    host_group: str
    optimal_enable: int
    publishers: tuple[SimPublisher, ...]

    @property
    def master(self) -> SimPublisher | None:
        return next((p for p in self.publishers if p.master), None)

    def to_vendor(self) -> dict[str, Any]:
        """One ``BackupStreamGroupInfo`` with the vendor's field names, in its example's order."""
        return {
            "OptimalEnable": self.optimal_enable,
            "HostGroupName": self.host_group,
            "StreamName": self.name,
            "BackupList": [p.to_vendor() for p in self.publishers],
        }


def format_publish_time(unix: int) -> str:
    """ISO 8601 in UTC, as the vendor writes PublishTime (and STS/metadata write Expiration)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))
