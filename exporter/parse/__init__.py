"""Vendor JSON -> ``Snapshot``: the only package that knows the shape of a DescribeBackupStreamList reply.

Three jobs, one module each:

- ``reply.py``: the envelope. A reply that is not this action's response at all (not JSON, no
  ``Response``, ``StreamInfoList`` neither a list nor null) raises ``BadResponse``;
  ``Response.Error`` raises the ``ApiError`` it names. Also the cuts of a compact reply.
- ``group.py``: one group -> its ``Stream``, tolerant per group (SPEC section 9 "One odd record
  never blinds a region"): the rules and the :class:`Anomaly` reasons.
- ``snapshot.py``: the groups -> one ``Snapshot`` (one stream per name, anomalies counted,
  absences judged or not), remembering each group's outcome between replies
  (:func:`parse_snapshot_cached`).
"""

from __future__ import annotations

from exporter.parse.group import MAX_FIELD_CHARS, MAX_STREAM_NAME_BYTES, Anomaly, parse_publish_time
from exporter.parse.snapshot import VENDOR_CEILING, ParseCache, parse_snapshot, parse_snapshot_cached

__all__ = [
    "MAX_FIELD_CHARS",
    "MAX_STREAM_NAME_BYTES",
    "VENDOR_CEILING",
    "Anomaly",
    "ParseCache",
    "parse_publish_time",
    "parse_snapshot",
    "parse_snapshot_cached",
]
