"""The vendor protocol as a plain function of one request: ``POST /`` in, reply out.

Transport-free so the same core serves the threaded HTTP server, an ``httpx.MockTransport``
and direct calls. It checks what the vendor checks, in the order a gateway would: action,
version, region, Authorization, timestamp, key, signature, token (``gateway.py``); then the
per-key budget, the parameters, pending faults, and finally renders the world. The reply
shapes, faulty ones included, are ``replies.py``; STS and the metadata service are routed
to ``sts.py`` and ``metadata.py``.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping

from exporter.simulator.errors import (
    ACTION,
    ACTION_REGIONS,
    OTHER_TENCENT_REGIONS,
    SERVICE,
    VERSION,
    VendorError,
)
from exporter.simulator.faults import expand
from exporter.simulator.gateway import MAX_SKEW_SECONDS, authenticate, error_body, json_params, only, require
from exporter.simulator.metadata import METADATA_PREFIX, handle_metadata
from exporter.simulator.ratelimit import RequestLog, RequestRecord, SlidingWindowLimiter
from exporter.simulator.replies import JSON, Reply, fault_reply, html_reply, json_reply, list_reply
from exporter.simulator.sts import STS_ACTIONS, Identity
from exporter.simulator.world import World

__all__ = ["JSON", "MAX_SKEW_SECONDS", "Headers", "Reply", "Simulator"]

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class _Context:
    """What the log wants to know about a request, filled in as the checks get to it."""

    __slots__ = ("region", "secret_id", "stream_name")

    def __init__(self) -> None:
        self.secret_id: str | None = None
        self.region: str | None = None
        self.stream_name: str | None = None


def _lower(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {name.lower(): value for name, value in items}


class Simulator:
    """The protocol core bound to a world.

    Args:
        world: accounts, streams and faults.
        rate_limit: default requests per ``window`` per SecretId (an ``Account.rate_limit`` wins).
        seed: seeds RequestIds, so a golden test sees the same bytes every run.
        clock: Unix seconds, for the timestamp-skew check.
        monotonic: arrival times for the budget and the request log.
        sleep: used by ``handle`` to honour a delay fault.
    """

    def __init__(
        self,
        world: World,
        *,
        rate_limit: float = 20.0,
        window: float = 1.0,
        max_skew: float = MAX_SKEW_SECONDS,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.world: World = world
        self.rate_limit = rate_limit
        self.max_skew = max_skew
        self.request_log: RequestLog = RequestLog()
        self._limiter = SlidingWindowLimiter(window)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._ids = random.Random(seed)
        self._ids_lock = threading.Lock()
        # Roles, STS and the metadata service (sts.py, metadata.py): temporary credentials.
        self.identity = Identity(world, clock=clock, seed=seed)

    # ----- entry points ---------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: Headers, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Blocking convenience form: sleeps through a delay fault, raises on a reset fault.

        Raises:
            ConnectionResetError: a ``reset`` fault matched.
        """
        reply = self.respond(method, path, headers, body)
        if reply.delay:
            self._sleep(reply.delay)
        if reply.reset:
            raise ConnectionResetError("connection reset by the simulator (fault)")
        return reply.status, dict(reply.headers), reply.body

    def respond(self, method: str, target: str, headers: Headers, body: bytes) -> Reply:
        """Answer one request; ``target`` is the request path, optionally with a query."""
        path, _, query = target.partition("?")
        if path == "/_sim" or path.startswith("/_sim/"):
            from exporter.simulator.control import handle_control

            return handle_control(self, method, path, query, body)
        if path.startswith(METADATA_PREFIX):  # the instance metadata service (metadata.py)
            status, content_type, page = handle_metadata(self.identity, method, path)
            return Reply(status=status, headers=(("Content-Type", content_type),), body=page)
        headers = _lower(headers)  # once: an iterable of pairs may be single-use
        if path == "/" and headers.get("x-tc-action") in STS_ACTIONS:  # STS (sts.py)
            return json_reply(self.identity.handle_sts(method, headers, body))
        if path != "/":
            return html_reply(404, "Not Found")
        arrival = self._monotonic()
        ctx = _Context()
        try:
            reply, code = self._vendor(method, headers, body, ctx, arrival)
        except VendorError as err:
            reply, code = self.error_reply(err.code, err.message), err.code
        self.request_log.append(
            RequestRecord(
                arrival=arrival,
                secret_id=ctx.secret_id,
                region=ctx.region,
                stream_name=ctx.stream_name,
                code=code,
            )
        )
        return reply

    def new_request_id(self) -> str:
        with self._ids_lock:
            return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def error_reply(self, code: str, message: str) -> Reply:
        return json_reply(error_body(code, message, self.new_request_id()))

    # ----- the checks -----------------------------------------------------------------

    def _vendor(
        self, method: str, headers: dict[str, str], body: bytes, ctx: _Context, arrival: float
    ) -> tuple[Reply, str]:
        ctx.secret_id = _claimed_secret_id(headers.get("authorization"))
        if method.upper() != "POST":
            return html_reply(405, "Method Not Allowed"), "HTTP405"
        self._check_action(headers)
        ctx.region = region = self._check_region(headers)
        secret_id = authenticate(
            headers,
            body,
            method=method,
            service=SERVICE,
            account=self.world.account,
            check_live=self.identity.check_live,  # an expired temporary credential (sts.py)
            now=self._clock(),
            max_skew=self.max_skew,
        )
        self._check_budget(secret_id, arrival)
        ctx.stream_name = stream_name = _parse_params(body)
        taken = self.world.faults.take(secret_id, region, stream_name is not None)
        if not taken:
            listing = self.world.render_list(region, stream_name)
            return list_reply(self.new_request_id(), listing), "OK"

        def fill(text: str) -> str:
            with self._ids_lock:
                return expand(text, headers=headers, secret_id=secret_id, rng=self._ids)

        return fault_reply(
            taken,
            listing=lambda: self.world.render_list(region, stream_name),
            request_id=self.new_request_id,
            fill=fill,
        )

    @staticmethod
    def _check_action(headers: Mapping[str, str]) -> None:
        action = require(headers, "x-tc-action", "Action")
        if action != ACTION:
            raise VendorError("InvalidAction", f"The requested action `{action}` does not exist.")
        version = require(headers, "x-tc-version", "Version")
        if version != VERSION:
            raise VendorError(
                "NoSuchVersion", f"The requested version `{version}` of service `{SERVICE}` does not exist."
            )

    @staticmethod
    def _check_region(headers: Mapping[str, str]) -> str:
        region = require(headers, "x-tc-region", "Region")
        if region in ACTION_REGIONS:
            return region
        if region in OTHER_TENCENT_REGIONS:
            raise VendorError(
                "UnsupportedRegion", f"The action `{ACTION}` is not supported in region `{region}`."
            )
        raise VendorError(
            "InvalidParameterValue", f"The value `{region}` of parameter `Region` is not valid."
        )

    def _check_budget(self, secret_id: str, arrival: float) -> None:
        account = self.world.account(secret_id)
        limit = account.rate_limit if account and account.rate_limit is not None else self.rate_limit
        admitted, count = self._limiter.admit(secret_id, arrival, limit)
        if not admitted:
            raise VendorError(
                "RequestLimitExceeded",
                f"Your current request times equals to `{count}` in a second, which exceeds the frequency "
                f"limit `{limit:g}` for a second. Please reduce the frequency of calls.",
            )


def _claimed_secret_id(authorization: str | None) -> str | None:
    """The SecretId a request claims, for the log, even when the header is otherwise broken."""
    if not authorization or "Credential=" not in authorization:
        return None
    claimed = authorization.split("Credential=", 1)[1].split("/", 1)[0].strip()
    return claimed or None


def _parse_params(body: bytes) -> str | None:
    """The request's StreamName, or ``None`` for the whole list.

    Raises:
        VendorError: InvalidParameter for a body that is no JSON object or a StreamName that is
            no string, UnknownParameter for any other key (the vendor rejects undefined params).
    """
    params = json_params(body)
    only(params, ("StreamName",))
    name = params.get("StreamName")
    if name is not None and not isinstance(name, str):
        raise VendorError("InvalidParameter", "The value type of parameter `StreamName` is not valid.")
    return name or None
