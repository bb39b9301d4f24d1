"""The reply around the groups: the envelope (``Response``, ``RequestId``, ``Error``) and the cuts.

:func:`read_groups` parses a reply whole and returns ``StreamInfoList`` (or raises the error
the reply carries); :func:`cut_groups` finds the groups of a compact reply by offset, without
parsing them, so that only texts never seen before are parsed (``parse_snapshot_cached``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import pairwise
from os import urandom
from typing import Any, NoReturn

import orjson

from exporter.tencent.errors import MAX_REQUEST_ID_CHARS, BadResponse, PollError, api_error, shorten

__all__ = ["NotOneGroup", "cut_groups", "read_groups"]

_MAX_VENDOR_MESSAGE = 500
_MAX_VALUE_REPR = 40
_MAX_KEY = 64
_COMMA = ord(",")


class NotOneGroup(Exception):
    """A cut of a compact reply that is not exactly one JSON object: parse the reply whole."""


def cut_groups(body: bytes) -> tuple[Sequence[Any], list[int], str] | None:  # noqa: PLR0911
    """The groups of a compact reply, parsed only when asked for, and their texts' fingerprints.

    The reply is cut before every ``{"K":`` where ``K`` is the first key of the first group (in
    valid JSON those bytes can only start an object whose first key is ``K``). Each cut but
    the last must be exactly one JSON object and a comma: proven by ``orjson.loads`` when its
    text is read (``NotOneGroup`` otherwise), and before, by the same proof, when its
    fingerprint is remembered. The last cut (the last group and the rest of the reply) is
    parsed behind the head with a probe ``{"K":"<random>"},`` in place of all the others: if
    that document's ``StreamInfoList`` is exactly [probe, X], the cuts sit at element
    positions of ``StreamInfoList``. Anything else (whitespace, nesting, an error reply):
    ``None``, and the caller parses the reply whole.
    """
    marker = body.find(b'"StreamInfoList":[')
    if marker < 0:
        return None
    first = marker + len(b'"StreamInfoList":[')
    end = body.find(b'":', first + 2)
    if body[first : first + 2] != b'{"' or end < 0 or end - first > _MAX_KEY:
        return None
    delimiter = body[first : end + 2]
    if b"\\" in delimiter:  # an escaped key: not worth the trouble
        return None
    # Offsets, not pieces: no copy of the reply is made (each group is a view of it).
    starts = [found.start() for found in re.finditer(re.escape(delimiter), body)]
    if starts[0] != first:  # the key starts an object before StreamInfoList too
        return None
    view = memoryview(body)
    nonce = urandom(8).hex()
    try:
        probe_text = body[:first] + delimiter + b'"' + nonce.encode() + b'"},' + view[starts[-1] :]
        probe, request_id = read_groups(probe_text)
    except PollError:
        return None
    key = delimiter[2:-2].decode()
    if len(probe) != 2 or probe[0] != {key: nonce}:
        return None
    fingerprints = [hash(view[a:b]) for a, b in pairwise(starts)]
    try:  # the last group's text runs into the rest of the reply: fingerprint its value
        fingerprints.append(hash(orjson.dumps(probe[1])))
    except orjson.JSONEncodeError:
        return None
    return _CutGroups(view, starts, probe[1]), fingerprints, request_id


class _CutGroups(Sequence[Any]):
    """The groups of :func:`cut_groups`, parsed only when asked for (only new texts are).

    Group ``i`` is the reply's text from ``starts[i]`` to the comma before ``starts[i + 1]``.
    """

    def __init__(self, view: memoryview, starts: list[int], last: Any) -> None:
        self._view = view
        self._starts = starts
        self._last = last

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, index: Any) -> Any:
        if index == len(self._starts) - 1:
            return self._last
        start, end = self._starts[index], self._starts[index + 1] - 1
        if self._view[end] != _COMMA:
            raise NotOneGroup
        try:
            return orjson.loads(self._view[start:end])  # trailing bytes fail: one object only
        except orjson.JSONDecodeError:
            raise NotOneGroup from None


def read_groups(body: bytes) -> tuple[list[Any], str]:
    """``Response.StreamInfoList`` and ``Response.RequestId``, or the error the reply carries."""
    response = _response(body)
    request_id = response.get("RequestId")
    # Bounded: it rides along into log lines (a RequestId is a 36-character UUID).
    request_id = request_id[:MAX_REQUEST_ID_CHARS] if type(request_id) is str else ""
    error = response.get("Error")
    if error is not None:
        _raise_api_error(error, request_id)
    try:
        groups = response["StreamInfoList"]
    except KeyError:
        raise BadResponse("Response.StreamInfoList: missing", request_id=request_id) from None
    if groups is None:
        return [], request_id
    if type(groups) is not list:
        raise BadResponse(f"Response.StreamInfoList: not a list: {_short(groups)}", request_id=request_id)
    return groups, request_id


def _response(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadResponse(f"reply is not JSON ({exc}); starts with {_short(body[:32])}") from None
    if type(document) is not dict:
        raise BadResponse(f"reply is not a JSON object: {_short(document)}")
    response = document.get("Response")
    if type(response) is not dict:
        raise BadResponse(f"reply has no Response object: {_short(response)}")
    return response


def _raise_api_error(error: object, request_id: str) -> NoReturn:
    if type(error) is not dict:
        raise BadResponse(f"Response.Error: not an object: {_short(error)}", request_id=request_id)
    code = error.get("Code")
    if type(code) is not str or not code:
        raise BadResponse(f"Response.Error.Code: missing or empty: {_short(code)}", request_id=request_id)
    message = error.get("Message")
    text = message[:_MAX_VENDOR_MESSAGE] if type(message) is str else ""
    raise api_error(code, text, request_id=request_id)


def _short(value: object) -> str:
    """A bounded rendering of an offending value: a reply can be megabytes of nested JSON."""
    if type(value) is dict or type(value) is list:
        return f"{type(value).__name__} of {len(value)}"
    return shorten(repr(value), _MAX_VALUE_REPR)
