"""Error classes: one table in code, the README rendered from it, every code through the real client.

Each vendor code is injected by the simulator (fault injection, real socket on 127.0.0.1), read
by our TencentClient and turned into a PollError by parse, as in a poll.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from exporter.credentials import Credential, StaticCredentials
from exporter.parse import parse_snapshot
from exporter.simulator import Fault, FaultKind, SimulatorServer
from exporter.tencent.client import TencentClient
from exporter.tencent.errors import (
    CODES,
    MAX_CODE_CHARS,
    OTHER_CODE,
    CodeInfo,
    ErrorClass,
    PollError,
    Throttled,
    classify,
    error_class_table,
    hint_for,
    label_code,
)

README = Path(__file__).resolve().parents[2] / "README.md"
EXACT = [row for row in CODES if not row.code.endswith("*")]
_OURS = {"HTTPError", "Timeout", "NetworkError", "BadResponse"}
VENDOR_CODES = [row for row in EXACT if row.code not in _OURS]


def test_readme_table_is_the_code_table() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- error-classes:begin -->\n(.*?)<!-- error-classes:end -->", text, re.S)
    assert found is not None, "README lost its Error classes table markers"
    assert found.group(1) == error_class_table(), (
        "README 'Error classes' differs from exporter/tencent/errors.py CODES; regenerate with "
        'python -c "from exporter.tencent.errors import error_class_table; print(error_class_table())"'
    )


@pytest.mark.parametrize(
    ("code", "error_class", "label"),
    [
        ("RequestLimitExceeded", ErrorClass.THROTTLED, "RequestLimitExceeded"),
        ("RequestLimitExceeded.SomethingNew", ErrorClass.THROTTLED, OTHER_CODE),
        ("InternalError.SomethingNew", ErrorClass.TRANSIENT, OTHER_CODE),
        ("InternalError.NotPermmitOperat", ErrorClass.BLOCKED, "InternalError.NotPermmitOperat"),
        ("FailedOperation.Other", ErrorClass.TRANSIENT, OTHER_CODE),
        ("ServiceUnavailable", ErrorClass.TRANSIENT, "ServiceUnavailable"),
        ("ResourceUnavailable", ErrorClass.TRANSIENT, "ResourceUnavailable"),
        ("ResourceInsufficient", ErrorClass.TRANSIENT, "ResourceInsufficient"),
        ("AuthFailure.TokenFailure", ErrorClass.CREDENTIALS, "AuthFailure.TokenFailure"),
        ("AuthFailure.SignatureExpire", ErrorClass.BLOCKED, "AuthFailure.SignatureExpire"),
        ("AuthFailure.Whatever", ErrorClass.BLOCKED, OTHER_CODE),
        ("ResourceNotFound.Whatever", ErrorClass.BLOCKED, OTHER_CODE),
        ("InvalidParameterValue.Whatever", ErrorClass.BLOCKED, OTHER_CODE),
        ("SomethingNobodyDocumented", ErrorClass.TRANSIENT, OTHER_CODE),
        ("", ErrorClass.TRANSIENT, OTHER_CODE),
    ],
)
def test_classify_and_label(code: str, error_class: ErrorClass, label: str) -> None:
    assert classify(code) is error_class
    assert label_code(code) == label


def test_hints_say_what_to_do() -> None:
    assert "clock" in (hint_for("AuthFailure.SignatureExpire") or "")
    assert "watch list" in (hint_for("ResponseSizeLimitExceeded") or "")
    assert "live:DescribeBackupStreamList" in (hint_for("UnauthorizedOperation") or "")


def _poll(server: SimulatorServer, credential: Credential, region: str = "ap-guangzhou") -> PollError | None:
    async def run() -> PollError | None:
        async with httpx.AsyncClient(trust_env=False) as http:
            client = TencentClient(
                http, endpoint=server.url, credentials=StaticCredentials(credential), timeout=2.0
            )
            try:
                body = await client.describe_backup_stream_list(region)
                parse_snapshot(body, account="prod", region=region, taken_at=0.0)
            except PollError as exc:
                return exc
            return None

    return asyncio.run(run())


@pytest.mark.parametrize("row", VENDOR_CODES, ids=[row.code for row in VENDOR_CODES])
def test_every_vendor_code_through_the_client(
    row: CodeInfo, simulator: SimulatorServer, sim_credential: Credential
) -> None:
    code = row.code
    simulator.world.inject(Fault(kind=FaultKind.ERROR, code=code, message="vendor words"))
    failure = _poll(simulator, sim_credential)
    assert failure is not None
    assert failure.code == code  # documented: verbatim label
    assert failure.error_class is row.error_class
    assert failure.hint == row.hint
    assert isinstance(failure, Throttled) is (failure.error_class is ErrorClass.THROTTLED)
    assert failure.retryable is (failure.error_class in (ErrorClass.THROTTLED, ErrorClass.TRANSIENT))
    assert failure.request_id  # the simulator's RequestId rides along


def test_unknown_and_huge_codes_are_bounded(simulator: SimulatorServer, sim_credential: Credential) -> None:
    huge = "Vendor.Reflected" + "X" * 5000
    simulator.world.inject(Fault(kind=FaultKind.ERROR, code=huge, message="m" * 100_000))
    failure = _poll(simulator, sim_credential)
    assert failure is not None
    assert failure.code == OTHER_CODE
    assert failure.error_class is ErrorClass.TRANSIENT
    assert len(failure.raw_code) <= MAX_CODE_CHARS and failure.raw_code.startswith("Vendor.Reflected")
    assert len(str(failure)) <= 500


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault(kind=FaultKind.HTTP_STATUS, status=502), "HTTPError"),
        (Fault(kind=FaultKind.HTTP_STATUS, status=429), "HTTPError"),
        (Fault(kind=FaultKind.HTTP_STATUS, status=403), "HTTPError"),
        (Fault(kind=FaultKind.HTTP_STATUS, status=400), "HTTPError"),
        (Fault(kind=FaultKind.HTML), "BadResponse"),
        (Fault(kind=FaultKind.TRUNCATED), "BadResponse"),
        (Fault(kind=FaultKind.WRONG_SHAPE), "BadResponse"),
        (Fault(kind=FaultKind.RESET), "NetworkError"),
        (Fault(kind=FaultKind.DELAY, delay=2.5), "Timeout"),
    ],
    ids=lambda value: str(value.kind if isinstance(value, Fault) else value),
)
def test_transport_failures_are_transient(
    fault: Fault, code: str, simulator: SimulatorServer, sim_credential: Credential
) -> None:
    simulator.world.inject(fault)
    failure = _poll(simulator, sim_credential)
    assert failure is not None
    assert failure.code == code
    assert failure.error_class is ErrorClass.TRANSIENT
    assert failure.hint == hint_for(code)
