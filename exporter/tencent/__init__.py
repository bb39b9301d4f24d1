"""The vendor edge: signing, the DescribeBackupStreamList client, its error tree and HTTP transport."""

from exporter.tencent.transport import http_client

__all__ = ["http_client"]
