"""The HTTP surface: ``/metrics``, ``/healthz``, ``/readyz``, ``/``, ``/events``, ``/-/reload``; else 404.

Why an asyncio server on its own event loop thread, rather than the stdlib threaded server
it replaced: a thread per connection made every idle or trickling client cost a thread and
its stack, and the stdlib's per-operation socket timeout let a client that sends (or reads)
one byte every few seconds hold a connection, and a reference to a 100 MB body, forever.
On one loop, a connection costs a few kilobytes, a deadline is a deadline (the head must
arrive in full by a fixed time, a response must be written by one), and the connection cap
is a counter. Measured with ``benchmarks/attack.py`` (figures in the commit that made the
switch and in the README): idle connections, slow readers and header tricklers no longer
move ``/healthz`` or a gzip scrape, and RSS under attack stays near its quiet value.

The loop is not the poll loop: it runs in a thread of its own, so a busy poll loop (parsing
a 20,000-stream reply) never delays a scrape (SPEC section 7). Anything that may take CPU
time (bcrypt on a cache miss, rendering a page, calling a metrics source, a reload) runs in
a small thread pool, so one slow request never stalls the accept loop or ``/healthz``.

Auth policy: basic auth (when configured) wraps every route, ``/healthz`` and ``/readyz``
included, exactly as exporter-toolkit wraps the whole mux. A liveness probe behind auth must
send credentials (or probe the TCP port); keeping one rule means no route is accidentally
public. Every page (not the ``/metrics`` body, whose vendor strings are scrubbed before they
become labels) goes through ``exporter.redaction.SECRETS`` as its last step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import threading
import time
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
from .connection import Counters, Limits, Response, Stream, serve_connection
from .http1 import MAX_HEAD_BYTES, Request
from .landing import LandingConfig, render_landing
from .listeners import (
    BACKLOG,
    ListenAddress,
    bind_listener,
    open_files_limit,
    parse_listen_address,
    raise_open_files_limit,
)
from .stats import WebCollector
from .webconfig import TLSSettings, WebConfig

__all__ = [
    "METRICS_CONTENT_TYPE",
    "Body",
    "Limits",
    "ListenAddress",
    "WebServer",
    "WebSources",
    "gzip_accepted",
    "parse_listen_address",
]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RELOAD_PATH = "/-/reload"
_REALM = 'Basic realm="tencent-live-exporter"'
_FD_RESERVE = 256  # descriptors kept for vendor connections, the state file and logs
_WORKERS = 4
# bcrypt checks (cache misses) run one at a time on a thread of their own, so a flood of wrong
# passwords never takes the workers that serve pages and metrics; past this many waiting,
# more are refused at once (503) instead of queueing without bound.
_MAX_AUTH_PENDING = 32
_RETRY = (("Retry-After", "1"),)
_ACCEPT_BATCH = 16
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


@dataclass(frozen=True, slots=True)
class _State:
    """Everything a web config controls, swapped as one reference on reload."""

    tls: TLSSettings | None
    auth: BasicAuth | None
    limiter: TokenBucket | None
    headers: MappingProxyType[str, str]

    @classmethod
    def of(cls, config: WebConfig) -> _State:
        auth = BasicAuth(config.users) if config.users else None
        limit = config.rate_limit
        limiter = TokenBucket(interval=limit.interval, burst=limit.burst) if limit else None
        return cls(config.tls, auth, limiter, MappingProxyType(dict(config.headers)))


class WebServer:
    """Serves cached exporter state over HTTP(S) from a background event loop thread.

    Args:
        listen: one or more ``--web.listen-address`` values (``:9877``, ``127.0.0.1:0``, ...).
        inherited_sockets: listening sockets passed in (``--web.systemd-socket``), served too.
        telemetry_path: ``--web.telemetry-path``; wins over a built-in route of the same path.
        sources: the cached state to serve.
        landing: names, version, links and demo flag for ``/``.
        web_config: TLS, basic auth, extra headers; ``None`` is plain HTTP without auth.
        reload: ``--web.enable-lifecycle``: called (in a worker thread) for ``POST /-/reload``;
            returns False or raises (the message is the reason) on failure. ``None``: 403.
        clock: Unix seconds, for the landing page's "how long ago".
        limits: connection, byte and time bounds; the default suits production.
    """

    def __init__(
        self,
        listen: str | Sequence[str] = (),
        *,
        inherited_sockets: Sequence[socket.socket] = (),
        telemetry_path: str = "/metrics",
        sources: WebSources,
        landing: LandingConfig,
        web_config: WebConfig | None = None,
        reload: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.time,
        limits: Limits | None = None,
    ) -> None:
        if not telemetry_path.startswith("/"):
            raise ValueError(f"telemetry path must start with '/': {telemetry_path!r}")
        listens = (listen,) if isinstance(listen, str) else tuple(listen)
        self._addresses = [parse_listen_address(text) for text in listens]
        if not self._addresses and not inherited_sockets:
            raise ValueError("nothing to listen on: give a listen address or an inherited socket")
        self._inherited = list(inherited_sockets)
        self._telemetry_path = telemetry_path
        self._sources = sources
        self._landing = landing
        self._reload = reload
        self._clock = clock
        self._limits = limits or Limits()
        self._config = web_config or WebConfig()
        self._state = _State.of(self._config)
        self.counters = Counters()
        self._routes: dict[str, Callable[[Request], Response]] = {
            "/": self._landing_page,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/events": self._events,
            telemetry_path: self._metrics,
        }
        self._inline = (self._healthz, self._readyz, _not_found)
        self._sockets: list[socket.socket] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._auth_executor: ThreadPoolExecutor | None = None
        self._auth_pending = 0

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The first bound port (useful with port 0); only valid after ``start()``."""
        if not self._sockets:
            raise RuntimeError("WebServer is not started")
        return int(self._sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL of the first listener for clients on this host (loopback for wildcards)."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        """Base URL of every listener, in order (listen addresses, then inherited sockets)."""
        if not self._sockets:
            raise RuntimeError("WebServer is not started")
        scheme = "https" if self._state.tls is not None else "http"
        out = []
        for sock in self._sockets:
            host, port = sock.getsockname()[:2]
            if host in ("", "::", "0.0.0.0"):
                # A wildcard listen answers on every loopback name; "localhost" is what people type.
                host = "127.0.0.1" if sock.family == socket.AF_INET else "localhost"
            out.append(f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}")
        return out

    @property
    def max_connections(self) -> int:
        """The connection cap in force: the configured one, lowered to fit the open-files limit."""
        limit = open_files_limit()
        cap = self._limits.max_connections
        return cap if limit is None else max(16, min(cap, limit - _FD_RESERVE))

    def collector(self) -> WebCollector:
        """A prometheus_client collector of this server's connection metrics, for a registry."""
        return WebCollector(self)

    def start(self) -> None:
        """Raise the open-files limit, bind every address, serve from a daemon thread.

        Raises:
            OSError: an address cannot be bound (in use, no permission, no such interface).
        """
        if self._loop is not None:
            raise RuntimeError("WebServer already started")
        raised = raise_open_files_limit()
        if raised is not None:
            _log.info("open_files_limit_raised", old=raised[0], new=raised[1])
        sockets: list[socket.socket] = []
        try:
            for address in self._addresses:
                sockets.append(bind_listener(address))
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        self._sockets = sockets + self._inherited
        self._limits = dataclasses.replace(self._limits, max_connections=self.max_connections)
        self._executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="web-worker")
        self._auth_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-auth")
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="web-server", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result()
        for note in self._config.notes:
            _log.warning("web_config_note", note=note)
        for url in self.urls:
            _log.info(
                "listening",
                address=url.partition("://")[2],
                tls=self._state.tls is not None,
                basic_auth=self._state.auth is not None,
                telemetry_path=self._telemetry_path,
                max_connections=self._limits.max_connections,
            )

    def stop(self) -> None:
        """Stop accepting, close open (keep-alive) connections, release the ports."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
            if not loop.is_running():
                loop.close()
            for executor in (self._executor, self._auth_executor):
                if executor is not None:
                    executor.shutdown(wait=False, cancel_futures=True)
            for sock in self._sockets:
                sock.close()

    def reload_web_config(self, config: WebConfig) -> None:
        """Swap TLS context, users, headers and rate limit at once (e.g. on SIGHUP).

        ``config`` is already fully validated by ``load_web_config``, so nothing here can
        half-apply. New connections get the new TLS context; open ones keep theirs but get
        the new auth on their next request.
        """
        self._state = _State.of(config)
        self._config = config
        for note in config.notes:
            _log.warning("web_config_note", note=note)
        _log.info("web_config_reloaded", tls=config.tls is not None, basic_auth=bool(config.users))

    async def _listen(self) -> None:
        for sock in self._sockets:
            # asyncio's backlog is also how many connections one loop callback accepts in a row:
            # small, so a burst of 1,000 reconnecting clients cannot hold the loop (and /healthz)
            # for a whole batch. It calls listen() with it, so the kernel queue is set back after.
            server = await asyncio.start_server(
                self._on_connection, sock=sock, limit=MAX_HEAD_BYTES, backlog=_ACCEPT_BATCH
            )
            sock.listen(BACKLOG)
            self._servers.append(server)

    async def _shutdown(self) -> None:
        for server in self._servers:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for server in self._servers:
            await server.wait_closed()

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await serve_connection(
                reader,
                writer,
                handler=self._respond,
                tls=self._state.tls,
                limits=self._limits,
                counters=self.counters,
                common_headers=lambda: self._state.headers,
            )
        except asyncio.CancelledError:
            writer.transport.abort()
        finally:
            if task is not None:
                self._tasks.discard(task)

    # -- requests -------------------------------------------------------------------------------

    async def _respond(self, request: Request) -> Response:
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
        state = self._state
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
            self.counters.shed += 1
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
            _log.error("web_reload_failed", reason=_scrub(str(exc)))
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
            scrub=_scrub,
        )
        return Response(status=200, body=_page(page.decode("utf-8")), content_type="text/html; charset=utf-8")


def _not_found(request: Request) -> Response:
    return Response(status=404, body=b"404 page not found\n")


def _scrub(text: str) -> str:
    return SECRETS.scrub_text(text)


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
