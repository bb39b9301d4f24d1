"""What a request gets: rate limit, then basic auth, then method, then route.

Auth policy: basic auth (when configured) wraps every route, ``/healthz`` and ``/readyz``
included, exactly as exporter-toolkit wraps the whole mux. A liveness probe behind auth must
send credentials (or probe the TCP port); keeping one rule means no route is accidentally
public. Every page (not the ``/metrics`` body, whose vendor strings are scrubbed before they
become labels) goes through ``exporter.redaction.SECRETS`` as its last step.

Anything that may take CPU time (rendering a page, calling a metrics source, a reload) runs in
a small worker pool, and bcrypt cache misses on one thread of their own, so neither the
serving loop nor ``/healthz`` waits for them. ``serve_connection`` (connection.py) calls
:meth:`Router.respond` once per request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog

from exporter.model import RegionStatus
from exporter.redaction import SECRETS

from .auth import BasicAuth, TokenBucket
from .connection import Counters, Response, Stream
from .http1 import Request
from .landing import LandingConfig, render_landing
from .webconfig import TLSSettings, WebConfig

__all__ = [
    "METRICS_CONTENT_TYPE",
    "RELOAD_PATH",
    "Body",
    "Router",
    "WebSources",
    "WebState",
    "gzip_accepted",
]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RELOAD_PATH = "/-/reload"
_REALM = 'Basic realm="tencent-live-exporter"'
_WORKERS = 4
# bcrypt checks (cache misses) run one at a time on a thread of their own, so a flood of wrong
# passwords never takes the workers that serve pages and metrics; past this many waiting,
# more are refused at once (503) instead of queueing without bound.
_MAX_AUTH_PENDING = 32
_RETRY = (("Retry-After", "1"),)
_NOT_READY = b"not ready: waiting for the first poll of every configured region"
_log = structlog.get_logger("exporter.web")
_T = TypeVar("_T")

Body = bytes | Sequence[bytes | memoryview] | Iterable[bytes | memoryview]
"""What ``WebSources.metrics`` returns: bytes; a sequence of buffers (known length, written
in order under one ``Content-Length``); or any other iterable of chunks, sent under
``Content-Length: body.size`` when it has an integer ``size``, else with
``Transfer-Encoding: chunked``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSources:
    """What the server reads; each callable must be cheap and thread-safe (cached state only)."""

    metrics: Callable[[bool], Body]  # argument: gzip wanted
    events: Callable[[], list[dict[str, Any]]]
    ready: Callable[[], bool]
    statuses: Callable[[], Sequence[RegionStatus]]


@dataclass(frozen=True, slots=True)
class WebState:
    """Everything a web config controls, swapped as one reference on reload."""

    tls: TLSSettings | None
    auth: BasicAuth | None
    limiter: TokenBucket | None
    headers: MappingProxyType[str, str]

    @classmethod
    def of(cls, config: WebConfig) -> WebState:
        auth = BasicAuth(config.users) if config.users else None
        limit = config.rate_limit
        limiter = TokenBucket(interval=limit.interval, burst=limit.burst) if limit else None
        return cls(config.tls, auth, limiter, MappingProxyType(dict(config.headers)))


class Router:
    """Answers requests on the serving loop; slow work goes to its worker threads.

    Args:
        state: the web state in force (read per request, so a reload applies at once).
        reload: ``POST /-/reload``; returns False or raises (the message is the reason) on
            failure. ``None``: 403 (no ``--web.enable-lifecycle``).
        counters: where shed auth checks are counted.
    """

    def __init__(
        self,
        *,
        telemetry_path: str,
        sources: WebSources,
        landing: LandingConfig,
        reload: Callable[[], object] | None,
        clock: Callable[[], float],
        state: Callable[[], WebState],
        counters: Counters,
    ) -> None:
        self._telemetry_path = telemetry_path
        self._sources = sources
        self._landing = landing
        self._reload = reload
        self._clock = clock
        self._state = state
        self._counters = counters
        self._routes: dict[str, Callable[[Request], Response]] = {
            "/": self._landing_page,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/events": self._events,
            telemetry_path: self._metrics,
        }
        self._inline = (self._healthz, self._readyz, _not_found)
        self._executor: ThreadPoolExecutor | None = None
        self._auth_executor: ThreadPoolExecutor | None = None
        self._auth_pending = 0

    def start(self) -> None:
        """Start the worker threads (created lazily by the pools)."""
        self._executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="web-worker")
        self._auth_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-auth")

    def stop(self) -> None:
        """Drop queued work; running calls finish in their threads."""
        for executor in (self._executor, self._auth_executor):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)

    async def respond(self, request: Request) -> Response:
        """Rate limit, then auth, then method, then route: auth wraps everything."""
        refused = await self._gate(request)
        if refused is not None:
            return refused
        path = _request_path(request.target)
        if path == RELOAD_PATH and path != self._telemetry_path:
            return await self._lifecycle_reload(request)
        if request.method not in ("GET", "HEAD"):
            allow = (("Allow", "GET, HEAD"),)
            return Response(status=405, body=b"method not allowed\n", headers=allow, close=True)
        route = self._routes.get(path, _not_found)
        try:
            if route in self._inline:  # no worker: a pool busy with bcrypt misses must not delay probes
                return route(request)
            return await self._in_worker(route, request)
        except Exception:
            # Full detail goes to the (redacting) log; the client learns nothing it could misuse.
            _log.error("web_handler_failed", path=path, exc_info=True)
            return Response(status=500, body=b"internal server error\n")

    async def _gate(self, request: Request) -> Response | None:
        """The rate limit and basic auth verdict, or None to go on."""
        state = self._state()
        if state.limiter is not None and not state.limiter.allow():
            return Response(status=429, body=b"too many requests\n")
        if state.auth is None:
            return None
        verdict = await self._authorized(state.auth, request)
        if verdict is None:
            return Response(status=503, body=b"too many authentication checks waiting\n", headers=_RETRY)
        if not verdict:
            return Response(status=401, body=b"Unauthorized\n", headers=(("WWW-Authenticate", _REALM),))
        return None

    async def _authorized(self, auth: BasicAuth, request: Request) -> bool | None:
        """True/False, or None when too many bcrypt checks already wait (shed: 503)."""
        header = request.header("authorization") or None
        if header is None:
            return False
        if auth.cached(header):
            return True
        if self._auth_pending >= _MAX_AUTH_PENDING:
            self._counters.shed += 1
            return None
        self._auth_pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._auth_executor, auth.check, header)
        finally:
            self._auth_pending -= 1

    async def _in_worker(self, fn: Callable[[Request], _T], request: Request) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, request)

    async def _lifecycle_reload(self, request: Request) -> Response:
        """Prometheus' ``/-/reload``: POST or PUT; 403 unless ``--web.enable-lifecycle``."""
        if request.method not in ("POST", "PUT"):
            return Response(status=405, body=b"This endpoint requires a POST request.\n",
                            headers=(("Allow", "POST, PUT"),))  # fmt: skip
        reload = self._reload
        if reload is None:
            return Response(status=403, body=b"Lifecycle API is not enabled.\n")
        try:
            result = await self._in_worker(lambda _: reload(), request)
        except Exception as exc:  # the reason is the operator's to read: config file and line
            _log.error("web_reload_failed", reason=SECRETS.scrub_text(str(exc)))
            return Response(status=500, body=_page(f"failed to reload config: {exc}\n"))
        if result is False:
            return Response(status=500, body=b"failed to reload config: see the exporter log\n")
        return Response(status=200, body=b"")

    def _healthz(self, request: Request) -> Response:
        return Response(status=200, body=b"OK")

    def _readyz(self, request: Request) -> Response:
        if self._sources.ready():
            return Response(status=200, body=b"OK")
        return Response(status=503, body=_NOT_READY)

    def _metrics(self, request: Request) -> Response:
        wanted = gzip_accepted(request.header("accept-encoding"))
        body = _as_body(self._sources.metrics(wanted))
        extra = [("Vary", "Accept-Encoding")]
        if wanted:
            extra.append(("Content-Encoding", "gzip"))
        return Response(status=200, body=body, content_type=METRICS_CONTENT_TYPE, headers=tuple(extra))

    def _events(self, request: Request) -> Response:
        text = json.dumps({"events": self._sources.events()}, ensure_ascii=False, default=str)
        return Response(status=200, body=_page(text), content_type="application/json")

    def _landing_page(self, request: Request) -> Response:
        page = render_landing(
            self._landing,
            telemetry_path=self._telemetry_path,
            statuses=self._sources.statuses(),
            now=self._clock(),
            scrub=SECRETS.scrub_text,
        )
        return Response(status=200, body=_page(page.decode("utf-8")), content_type="text/html; charset=utf-8")


def gzip_accepted(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip: an explicit ``gzip`` (or ``x-gzip``) entry
    decides by its q-value (``gzip;q=0`` refuses it), else ``*`` does, else no.
    """
    explicit: float | None = None
    wildcard: float | None = None
    for part in accept_encoding.split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        coding = coding.lower()
        if not coding:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                q = _qvalue(value.strip())
        if coding in ("gzip", "x-gzip"):
            explicit = q if explicit is None else max(explicit, q)
        elif coding == "*":
            wildcard = q
    if explicit is not None:
        return explicit > 0
    return wildcard is not None and wildcard > 0


def _qvalue(text: str) -> float:
    """RFC 9110 qvalue; anything malformed counts as 0 (refuse rather than guess)."""
    try:
        q = float(text)
    except ValueError:
        return 0.0
    return q if 0.0 <= q <= 1.0 else 0.0


def _not_found(request: Request) -> Response:
    return Response(status=404, body=b"404 page not found\n")


def _page(text: str) -> bytes:
    """Any page text, scrubbed of every known secret as the very last step."""
    return SECRETS.scrub_text(text).encode("utf-8")


def _as_body(body: Body) -> bytes | Sequence[bytes | memoryview] | Stream:
    """Known-length bodies pass through; any other iterable becomes a ``Stream`` whose first
    chunk is produced here, in the worker thread, so a failing source is still a clean 500.
    An iterable with an integer ``size`` attribute is sent under that Content-Length."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body) if isinstance(body, bytearray) else body
    if isinstance(body, Sequence):
        return body
    size = getattr(body, "size", None)  # e.g. the store's PlainChunks: length known, text not built
    iterator = iter(body)
    return Stream(next(iterator, None), iterator, size if isinstance(size, int) else None)


def _request_path(target: str) -> str:
    """The path of a request target: origin-form (``/metrics?x``) or absolute-form (via proxies).

    Not ``urlsplit`` on origin-form: it would read ``//host/x`` as a network location.
    """
    if target.startswith(("http://", "https://")):
        return urlsplit(target).path or "/"
    return target.partition("?")[0].partition("#")[0]
