"""The replies the simulated vendor sends: the list, its HTML pages, and what faults make of them.

Errors are HTTP 200 with ``Response.Error`` and ``Content-Type: application/json`` exactly: the
official SDK looks for errors only under that content type. Faults that change the normal reply
compose in queue order; one that replaces the reply comes last (the queue stops there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson

from exporter.simulator.faults import REPLACING, Fault, FaultKind, Taken, apply_to_list
from exporter.simulator.gateway import error_body

__all__ = ["HTML", "JSON", "Reply", "fault_reply", "html_reply", "json_reply", "list_reply"]

JSON: Final = "application/json"
HTML: Final = "text/html"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What to send back. ``delay``: wait that long first; ``reset``: send nothing, reset the socket."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    delay: float = 0.0
    reset: bool = False


def json_reply(payload: bytes, status: int = 200) -> Reply:
    return Reply(status=status, headers=(("Content-Type", JSON),), body=payload)


def html_reply(status: int, title: str) -> Reply:
    """The gateway's own HTML error page, as it answers before any action runs."""
    page = (
        f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {title}</h1></center>\r\n<hr><center>stgw</center>\r\n</body>\r\n</html>\r\n"
    ).encode("ascii")
    return Reply(status=status, headers=(("Content-Type", HTML),), body=page)


def list_reply(request_id: str, listing: bytes) -> Reply:
    """The success reply around already rendered ``StreamInfoList`` bytes (not re-encoded)."""
    rid = request_id.encode("ascii")
    return json_reply(b'{"Response":{"RequestId":"' + rid + b'","StreamInfoList":' + listing + b"}}")


def fault_reply(
    taken: list[Taken],
    *,
    listing: Callable[[], bytes],
    request_id: Callable[[], str],
    fill: Callable[[str], str],
) -> tuple[Reply, str]:
    """The reply the matching faults make of this request, and the code the log records.

    Args:
        listing: renders the normal ``StreamInfoList``.
        request_id: a fresh RequestId.
        fill: expands a fault's string template for this request.

    Delays add up and apply to any reply.
    """
    kinds = [t.fault.kind for t in taken]
    delay = sum(t.fault.delay for t in taken if t.fault.kind is FaultKind.DELAY)
    last = taken[-1].fault
    if last.kind in REPLACING:
        reply, label = _replacement(last, request_id, fill)
    else:
        reply = _changed(taken, listing, request_id, fill)
        label = next((_LABELS[k] for k in kinds if k is not FaultKind.DELAY), "OK")
    if delay:
        reply = Reply(status=reply.status, headers=reply.headers, body=reply.body, delay=delay)
    return reply, label[:_MAX_LABEL]


def _replacement(
    fault: Fault, request_id: Callable[[], str], fill: Callable[[str], str]
) -> tuple[Reply, str]:
    kind = fault.kind
    if kind is FaultKind.ERROR:
        code = fill(fault.code)
        rid = fill(fault.request_id) if fault.request_id else request_id()
        body = error_body(code, fill(fault.message), rid)
        return json_reply(body), fault.code  # the template: never a reflected secret
    if kind is FaultKind.RESET:
        return Reply(status=0, headers=(), body=b"", reset=True), "Reset"
    if kind is FaultKind.WRONG_SHAPE:
        return json_reply(_wrong_shape(request_id())), "WrongShape"
    status = fault.status if kind is FaultKind.HTTP_STATUS else 200
    label = f"HTTP{status}" if kind is FaultKind.HTTP_STATUS else "HTML"
    return html_reply(status, _REASONS.get(status, "Error")), label


def _changed(
    taken: list[Taken],
    listing: Callable[[], bytes],
    request_id: Callable[[], str],
    fill: Callable[[str], str],
) -> Reply:
    kinds = {t.fault.kind for t in taken}
    rendered = b"null" if FaultKind.NULL_LIST in kinds else listing()
    if kinds & {FaultKind.EDIT, FaultKind.DUPLICATE}:
        rid: Any = request_id()
        for fault in (t.fault for t in taken if t.fault.field == "RequestId"):
            rid = fill(fault.value) if isinstance(fault.value, str) else fault.value
        groups = apply_to_list(orjson.loads(rendered), taken, fill)
        reply = json_reply(orjson.dumps({"Response": {"RequestId": rid, "StreamInfoList": groups}}))
    else:
        reply = list_reply(request_id(), rendered)
    if FaultKind.TRUNCATED in kinds:
        return json_reply(reply.body[: max(1, len(reply.body) // 2)])
    return reply


_LABELS: Final = {
    FaultKind.TRUNCATED: "Truncated",
    FaultKind.NULL_LIST: "NullList",
    FaultKind.EDIT: "Edited",
    FaultKind.DUPLICATE: "Duplicated",
}
_MAX_LABEL: Final = 64  # a {pad:N} code must not bloat the request log

_REASONS: Final = {
    200: "OK",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _wrong_shape(request_id: str) -> bytes:
    """Valid JSON a strict parser must refuse: the list is an object, sequences are numbers."""
    payload: dict[str, Any] = {
        "Response": {
            "RequestId": request_id,
            "StreamInfoList": {
                "StreamName": "stream-00001",
                "BackupList": {"UpstreamSequence": 710313341080024595},
            },
        }
    }
    return orjson.dumps(payload)
