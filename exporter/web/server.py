"""The HTTP surface: ``/metrics``, ``/healthz``, ``/readyz``, ``/``, ``/events``; 404 elsewhere.

Why a stdlib threaded server in its own thread rather than an asyncio one: the poll loop may
be busy for a while (parsing a 20,000-stream reply, diffing, rendering), and a scrape must
never wait for it (SPEC section 7). Every source this server reads is a cached value behind
a lock held only for a copy, so a scrape costs a dictionary lookup and a socket write.

TLS handshakes run in the per-connection thread, not in the accept loop, so one slow or
hostile client cannot stall everybody else's accept.

Auth policy: basic auth (when configured) wraps every route, ``/healthz`` and ``/readyz``
included, exactly as exporter-toolkit wraps the whole mux. A liveness probe behind auth must
send credentials (or probe the TCP port); keeping one rule means no route is accidentally
public.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from types import MappingProxyType
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import structlog

from exporter.model import RegionStatus

from .auth import BasicAuth, TokenBucket
from .landing import LandingConfig, render_landing
from .webconfig import TLSSettings, WebConfig

__all__ = [
    "METRICS_CONTENT_TYPE",
    "ListenAddress",
    "WebServer",
    "WebSources",
    "gzip_accepted",
    "parse_listen_address",
]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HANDSHAKE_TIMEOUT = 10.0
_IDLE_TIMEOUT = 60.0  # keep-alive connections and slow readers are dropped after this
_REALM = 'Basic realm="tencent-live-exporter"'
_log = structlog.get_logger("exporter.web")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSources:
    """What the server reads; each callable must be cheap and thread-safe (cached state only)."""

    # Argument: gzip wanted. Returns the (gzipped) body, whole or as parts written in order:
    # at 100k streams the cached body is ~100 MB (5 MB gzipped), and joining it with the
    # small health text would copy it once per scrape.
    metrics: Callable[[bool], Body]
    events: Callable[[], list[dict[str, Any]]]
    ready: Callable[[], bool]
    statuses: Callable[[], Sequence[RegionStatus]]


Body = bytes | Sequence[bytes | memoryview]
"""A response body: bytes, or buffers sent one after the other without being joined."""


class ListenAddress(NamedTuple):
    family: socket.AddressFamily
    host: str
    port: int


def parse_listen_address(text: str) -> ListenAddress:
    """Prometheus-style ``HOST:PORT``: ``:9877`` is every interface (IPv6 and IPv4 when the
    host has dual stack), ``[::1]:9877`` an IPv6 literal, a name is resolved once.

    Raises:
        ValueError: not ``HOST:PORT``, bad port, or a name that does not resolve.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"listen address {text!r}: expected HOST:PORT, e.g. :9877 or 127.0.0.1:9877")
    port = int(port_text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"listen address {text!r}: put IPv6 addresses in brackets, e.g. [::1]:9877")
    if not host:
        if socket.has_dualstack_ipv6():
            return ListenAddress(socket.AF_INET6, "::", port)
        return ListenAddress(socket.AF_INET, "0.0.0.0", port)
    try:
        literal = ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return ListenAddress(family, host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ValueError(f"listen address {text!r}: cannot resolve {host!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    return ListenAddress(family, str(sockaddr[0]), port)


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
class _Response:
    status: int
    body: Body
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _State:
    """Everything a web config controls, swapped as one reference on reload."""

    tls: TLSSettings | None
    auth: BasicAuth | None
    limiter: TokenBucket | None
    headers: Mapping[str, str]

    @classmethod
    def of(cls, config: WebConfig) -> _State:
        auth = BasicAuth(config.users) if config.users else None
        limit = config.rate_limit
        limiter = TokenBucket(interval=limit.interval, burst=limit.burst) if limit else None
        return cls(config.tls, auth, limiter, MappingProxyType(dict(config.headers)))


class WebServer:
    """Serves cached exporter state over HTTP(S) from a background thread.

    Args:
        listen: ``--web.listen-address`` (``:9877``, ``127.0.0.1:0``, ``[::1]:9877``).
        telemetry_path: ``--web.telemetry-path``; wins over a built-in route of the same path.
        sources: the cached state to serve.
        landing: names and version for ``/``.
        web_config: TLS, basic auth, extra headers; ``None`` is plain HTTP without auth.
        clock: Unix seconds, for the landing page's "how long ago".
    """

    def __init__(
        self,
        listen: str,
        *,
        telemetry_path: str = "/metrics",
        sources: WebSources,
        landing: LandingConfig,
        web_config: WebConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not telemetry_path.startswith("/"):
            raise ValueError(f"telemetry path must start with '/': {telemetry_path!r}")
        self._address = parse_listen_address(listen)
        self._telemetry_path = telemetry_path
        self._sources = sources
        self._landing = landing
        self._clock = clock
        self._config = web_config or WebConfig()
        self._state = _State.of(self._config)
        self._routes: dict[str, Callable[[Message], _Response]] = {
            "/": self._landing_page,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/events": self._events,
            telemetry_path: self._metrics,
        }
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); only valid after ``start()``."""
        if self._httpd is None:
            raise RuntimeError("WebServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for clients on this host (loopback for wildcard listens)."""
        host = self._address.host
        if host in ("", "::", "0.0.0.0"):
            # A wildcard listen answers on every loopback name; "localhost" is what people type.
            host = "127.0.0.1" if self._address.family == socket.AF_INET else "localhost"
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._state.tls is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        Raises:
            OSError: the address cannot be bound (in use, no permission, no such interface).
        """
        if self._httpd is not None:
            raise RuntimeError("WebServer already started")
        self._httpd = _HTTPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="web-server", daemon=True
        )
        self._thread.start()
        for note in self._config.notes:
            _log.warning("web_config_note", note=note)
        _log.info(
            "listening",
            address=f"{self._address.host}:{self.port}",
            tls=self._state.tls is not None,
            basic_auth=self._state.auth is not None,
            telemetry_path=self._telemetry_path,
        )

    def stop(self) -> None:
        """Stop accepting, close open (keep-alive) connections, release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        # shutdown() waits for serve_forever's next poll; shutting the listening socket down
        # wakes its select() at once (Linux), so stopping takes milliseconds, not a poll period.
        waiter = threading.Thread(target=httpd.shutdown, name="web-server-stop", daemon=True)
        waiter.start()
        with contextlib.suppress(OSError):
            httpd.socket.shutdown(socket.SHUT_RDWR)
        waiter.join()
        httpd.server_close()
        with self._connections_lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):  # already gone
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

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

    # -- connection plumbing (called from the HTTP server's threads) --------------------------

    def _serve_connection(self, raw: socket.socket, client: Any, httpd: _HTTPServer) -> None:
        tls = self._state.tls
        conn = raw
        if tls is not None:
            wrapped = _handshake(raw, tls, client)
            if wrapped is None:
                return
            conn = wrapped
        self._track(conn, add=True)
        try:
            _Handler(conn, client, httpd)
        finally:
            self._track(conn, add=False)
            if conn is not raw:
                conn.close()

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # -- routes ---------------------------------------------------------------------------------

    def _metrics(self, headers: Message) -> _Response:
        wanted = gzip_accepted(headers.get("Accept-Encoding", ""))
        body = self._sources.metrics(wanted)
        extra = [("Vary", "Accept-Encoding")]
        if wanted:
            extra.append(("Content-Encoding", "gzip"))
        return _Response(200, body, METRICS_CONTENT_TYPE, tuple(extra))

    def _healthz(self, headers: Message) -> _Response:
        return _Response(200, b"OK")

    def _readyz(self, headers: Message) -> _Response:
        if self._sources.ready():
            return _Response(200, b"OK")
        return _Response(503, b"not ready: waiting for the first poll of every configured region")

    def _events(self, headers: Message) -> _Response:
        body = json.dumps({"events": self._sources.events()}, ensure_ascii=False, default=str)
        return _Response(200, body.encode("utf-8"), "application/json")

    def _landing_page(self, headers: Message) -> _Response:
        page = render_landing(
            self._landing,
            telemetry_path=self._telemetry_path,
            statuses=self._sources.statuses(),
            now=self._clock(),
        )
        return _Response(200, page, "text/html; charset=utf-8")

    def _respond(self, handler: _Handler, *, allowed: bool) -> _Response:
        """Rate limit, then auth, then method, then route: auth wraps everything."""
        state = self._state
        if state.limiter is not None and not state.limiter.allow():
            return _Response(429, b"too many requests\n")
        if state.auth is not None and not state.auth.check(handler.headers.get("Authorization")):
            return _Response(401, b"Unauthorized\n", headers=(("WWW-Authenticate", _REALM),))
        if not allowed:
            return _Response(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
        path = _request_path(handler.path)
        route = self._routes.get(path)
        if route is None:
            return _Response(404, b"404 page not found\n")
        try:
            return route(handler.headers)
        except Exception:
            # Full detail goes to the (redacting) log; the client learns nothing it could misuse.
            _log.error("web_handler_failed", path=path, exc_info=True)
            return _Response(500, b"internal server error\n")


def _request_path(target: str) -> str:
    """The path of a request target: origin-form (``/metrics?x``) or absolute-form (via proxies).

    Not ``urlsplit`` on origin-form: it would read ``//host/x`` as a network location.
    """
    if target.startswith(("http://", "https://")):
        return urlsplit(target).path or "/"
    return target.partition("?")[0].partition("#")[0]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes keep-alive connections itself
    request_queue_size = 128  # listen backlog; the stdlib default of 5 drops bursts of scrapers

    def __init__(self, address: ListenAddress, app: WebServer) -> None:
        self.address_family = address.family
        self.app = app
        super().__init__((address.host, address.port), _Handler, bind_and_activate=False)
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            # ":9877" means every interface, IPv4 included, as in Go.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        # Skip HTTPServer.server_bind: its getfqdn() can block on a DNS lookup.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.app._serve_connection(request, client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; a client hanging up is not news.
        _log.debug("web_connection_error", client=str(client_address), exc_info=True)


def _handshake(raw: socket.socket, tls: TLSSettings, client: Any) -> ssl.SSLSocket | None:
    raw.settimeout(_HANDSHAKE_TIMEOUT)
    try:
        conn = tls.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    except (OSError, ssl.SSLError) as exc:
        _log.debug("tls_handshake_failed", client=str(client), reason=str(exc))
        raw.close()
        return None
    try:
        conn.do_handshake()
        if tls.client_allowed_sans is not None and not _san_allowed(conn, tls.client_allowed_sans):
            _log.debug("tls_client_san_rejected", client=str(client))
            conn.close()
            return None
    except (OSError, ssl.SSLError) as exc:
        _log.debug("tls_handshake_failed", client=str(client), reason=str(exc))
        conn.close()
        return None
    return conn


def _san_allowed(conn: ssl.SSLSocket, allowed: frozenset[str]) -> bool:
    """exporter-toolkit ``VerifyPeerCertificate``: any DNS, IP, e-mail or URI SAN in the list."""
    cert = conn.getpeercert() or {}
    entries = cast(tuple[tuple[str, str], ...], cert.get("subjectAltName", ()))
    for kind, value in entries:
        text = value.strip()
        if kind == "IP Address":
            try:
                text = str(ip_address(text))
            except ValueError:
                continue
        if text in allowed:
            return True
    return False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Prometheus reuses connections (and TLS sessions)
    server_version = "tencent-live-exporter"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    _method = "GET"  # the request's real method; ``command`` is rewritten for non-GET/HEAD

    def parse_request(self) -> bool:
        """Funnels every method but GET and HEAD into one 405 path (after auth, as in Go)."""
        if not super().parse_request():
            return False
        self._method = self.command
        if self.command not in ("GET", "HEAD"):
            self.command = "OTHER"
        return True

    def do_GET(self) -> None:
        self._reply(allowed=True)

    def do_HEAD(self) -> None:
        self._reply(allowed=True)

    def do_OTHER(self) -> None:
        self._reply(allowed=False)

    def _reply(self, *, allowed: bool) -> None:
        app = cast(_HTTPServer, self.server).app
        if (
            self.headers.get("Content-Length", "0").strip() not in ("", "0")
            or "Transfer-Encoding" in self.headers
        ):
            # We never read request bodies; closing keeps the next request on this connection sane.
            self.close_connection = True
        response = app._respond(self, allowed=allowed)
        self.send_response(response.status)
        for name, value in app._state.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", response.content_type)
        parts = (response.body,) if isinstance(response.body, bytes) else response.body
        self.send_header("Content-Length", str(sum(len(part) for part in parts)))
        for name, value in response.headers:
            self.send_header(name, value)
        if not allowed:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self._method != "HEAD":
            for part in parts:
                self.wfile.write(part)

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        _log.debug("http_request", client=self.address_string(), request=self.requestline, code=str(code))

    def log_error(self, format: str, *args: Any) -> None:
        _log.debug("http_error", client=self.address_string(), message=format % args)
