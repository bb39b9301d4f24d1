"""Named faults: every unkindness the vendor's documentation allows, replayable by name.

``python -m exporter.simulator --fault NAME`` and ``POST /_sim/fault {"preset": NAME}`` use
these; ``--list-faults`` prints them. Each entry is plain data (see ``faults.py``); the names
are stable so a bug report can say "run it with ``--fault duplicate-stream-name``".

Sources: the vendor's models mark ``OptimalEnable``, ``HostGroupName``, ``StreamName`` and
every publisher field as possibly null; its example ``PublishTime`` is RFC 3339, while
Tencent Cloud APIs also return ``YYYY-MM-DD HH:MM:SS`` (Beijing time), milliseconds and
offsets; ``MasterFlag`` is documented as 0/1 but typed as an integer; one reply lists at most
20,000 groups; the error codes are the action's own and the API 3.0 common ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from exporter.simulator.errors import DOCUMENTED_CODES
from exporter.simulator.faults import Fault, FaultKind

__all__ = ["ODD_RECORDS", "PRESETS", "TRANSIENT_CODES", "describe"]

# Codes that say "try again" rather than "fix something" (SPEC section 9, transient class).
TRANSIENT_CODES: Final = (
    "ServiceUnavailable",
    "ResourceUnavailable",
    "ResourceInsufficient",
    "LimitExceeded",
    "InternalError",
    "InternalError.GetStreamInfoError",
    "FailedOperation.CallOtherSvrFailed",
)

_E, _D = FaultKind.EDIT, FaultKind.ERROR
_REFLECTED = "{header:X-TC-Token}"

_ODD_RECORDS: Final[Mapping[str, Fault]] = {
    "null-optimal-enable": Fault(kind=_E, field="OptimalEnable", value=None),
    "null-host-group": Fault(kind=_E, field="HostGroupName", value=None),
    "null-stream-name": Fault(kind=_E, field="StreamName", value=None),
    "empty-stream-name": Fault(kind=_E, field="StreamName", value=""),
    "null-backup-list": Fault(kind=_E, field="BackupList", value=None),
    "null-upstream-sequence": Fault(kind=_E, field="BackupList.UpstreamSequence", value=None, publisher=0),
    "empty-upstream-sequence": Fault(kind=_E, field="BackupList.UpstreamSequence", value="", publisher=0),
    "null-publish-time": Fault(kind=_E, field="BackupList.PublishTime", value=None),
    "null-master-flag": Fault(kind=_E, field="BackupList.MasterFlag", value=None, publisher=0),
    "master-flag-2": Fault(kind=_E, field="BackupList.MasterFlag", value=2, publisher=0),
    "publish-time-millis": Fault(kind=_E, field="BackupList.PublishTime", value="2026-01-05T08:00:00.250Z"),
    "publish-time-offset": Fault(kind=_E, field="BackupList.PublishTime", value="2026-01-05T16:00:00+08:00"),
    "publish-time-beijing": Fault(kind=_E, field="BackupList.PublishTime", value="2026-01-05 16:00:00"),
    "publish-time-garbage": Fault(kind=_E, field="BackupList.PublishTime", value="yesterday"),
    "duplicate-stream-name": Fault(kind=FaultKind.DUPLICATE),
}

_HOSTILE_STRINGS: Final[Mapping[str, Fault]] = {
    "long-code": Fault(kind=_D, code="InternalError.{pad:65536}", message="{pad:65536}"),
    "random-code": Fault(kind=_D, code="InternalError.{random}", message="random {random}"),
    "random-unknown-code": Fault(kind=_D, code="{random}.{random}", message="random {random}"),
    "reflect-token": Fault(
        kind=_D, code=_REFLECTED, message=f"token {_REFLECTED} is invalid", request_id=_REFLECTED
    ),
    "reflect-secret-id": Fault(
        kind=_D,
        code="AuthFailure.{secret_id}",
        message="SecretId {secret_id} signed {header:Authorization}",
        request_id="{secret_id}",
    ),
    "reflect-stream-name": Fault(kind=_E, field="StreamName", value=f"{_REFLECTED}{{secret_id}}"),
    "long-stream-name": Fault(kind=_E, field="StreamName", value="{pad:5000000}"),
    "huge-request-id": Fault(kind=_E, field="RequestId", value="{pad:5000000}"),
    "huge-body": Fault(kind=_E, field="RequestId", value="{pad:100000000}"),
}

_TRANSPORT: Final[Mapping[str, Fault]] = {
    **{f"http-{s}": Fault(kind=FaultKind.HTTP_STATUS, status=s) for s in (429, 500, 502, 503, 504)},
    "html": Fault(kind=FaultKind.HTML),
    "truncated": Fault(kind=FaultKind.TRUNCATED),
    "wrong-shape": Fault(kind=FaultKind.WRONG_SHAPE),
    "null-list": Fault(kind=FaultKind.NULL_LIST),
    "reset": Fault(kind=FaultKind.RESET),
    "slow": Fault(kind=FaultKind.DELAY, delay=10.0),
}

# "error:<Code>" for every documented code.
_CODES: Final[Mapping[str, Fault]] = {
    f"error:{code}": Fault(kind=_D, code=code, message=message) for code, message in DOCUMENTED_CODES.items()
}

# Names of the presets that make one group odd but keep the reply a valid list (SPEC section 9).
ODD_RECORDS: Final = tuple(_ODD_RECORDS)

PRESETS: Final[Mapping[str, Fault]] = {**_ODD_RECORDS, **_HOSTILE_STRINGS, **_TRANSPORT, **_CODES}


def describe(name: str) -> str:
    """One line for ``--list-faults``: the name and the fields that differ from the defaults."""
    fault = PRESETS[name]
    defaults = Fault(kind=FaultKind.DELAY).to_dict()  # any kind valid without arguments
    changed = {k: v for k, v in fault.to_dict().items() if k != "kind" and v != defaults[k]}
    details = " ".join(f"{k}={v!r}" for k, v in changed.items())
    return f"{name:28} {fault.kind.value:12} {details}".rstrip()
