"""The HTTP client for vendor calls: proxies and CA bundles from the environment, as curl and Go do.

Most corporate and many cloud networks reach public APIs only through a forward proxy, and
operators configure that once, in the environment, for every tool (SPEC section 9 "Networks
like the rest of the fleet"). Rules, decided per request URL (one client serves the vendor API
and STS alike):

- proxy for ``https://`` URLs: ``https_proxy`` / ``HTTPS_PROXY``, else ``all_proxy`` /
  ``ALL_PROXY``; for ``http://`` URLs: ``http_proxy`` / ``HTTP_PROXY``, else ``all_proxy`` /
  ``ALL_PROXY`` (lower case first, as curl; an empty value is unset). An account's
  ``proxy_url`` replaces all of them. A proxy without a scheme is ``http://``, as in curl and
  Go; ``https://`` proxies work too; SOCKS needs the optional ``socksio`` package.
- ``no_proxy`` / ``NO_PROXY`` (also for ``proxy_url``, as curl applies it to ``--proxy``):
  comma or space separated; ``*`` bypasses everything; a name matches itself and its
  subdomains (a leading ``.`` or ``*.`` is ignored); ``host:port`` matches that port only; an
  IP address or CIDR block (``10.0.0.0/8``) matches literal IP hosts (names are not resolved).
- ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` replace the CA bundle (as in Go and OpenSSL); unset,
  the client verifies against httpx's default bundle.

Proxy credentials (``user:password@``) are added to the redaction store and never printed.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

from exporter.redaction import SECRETS

__all__ = ["ProxyRules", "http_client"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyRules:
    """Which proxy (if any) a URL goes through. Build with :meth:`from_env`."""

    http: str | None = None
    https: str | None = None
    bypass_all: bool = False
    names: tuple[str, ...] = ()  # lower case, no leading dot
    host_ports: tuple[tuple[str, int], ...] = ()
    networks: tuple[_Network, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, proxy_url: str | None = None) -> ProxyRules:
        """Read the proxy variables; ``proxy_url`` (an account's setting) replaces them.

        Raises:
            ValueError: a proxy URL with an unsupported scheme or no host.
        """

        def first(*names: str) -> str | None:
            for name in names:
                value = env.get(name, "").strip()
                if value:
                    return value
            return None

        fallback = first("all_proxy", "ALL_PROXY")
        if proxy_url:
            http = https = _normalise(proxy_url)
        else:
            http = _normalise(first("http_proxy", "HTTP_PROXY") or fallback)
            https = _normalise(first("https_proxy", "HTTPS_PROXY") or fallback)
        names: list[str] = []
        host_ports: list[tuple[str, int]] = []
        networks: list[_Network] = []
        bypass_all = False
        for entry in (first("no_proxy", "NO_PROXY") or "").lower().replace(",", " ").split():
            if entry == "*":
                bypass_all = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host, sep, port = entry.rpartition(":")
            if sep and port.isdigit() and host and not host.endswith(":"):
                host_ports.append((_bare(host), int(port)))
            else:
                names.append(_bare(entry))
        return cls(
            http=http,
            https=https,
            bypass_all=bypass_all,
            names=tuple(names),
            host_ports=tuple(host_ports),
            networks=tuple(networks),
        )

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy URL for a request, or ``None`` to connect directly."""
        proxy = self.https if url.scheme == "https" else self.http if url.scheme == "http" else None
        if proxy is None or self.bypass_all:
            return None
        host = url.host.lower().strip("[]")
        if self.networks:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                pass
            else:
                if any(address in network for network in self.networks):
                    return None
        if any(host == name or host.endswith("." + name) for name in self.names):
            return None
        port = url.port or (443 if url.scheme == "https" else 80)
        if any((host == name or host.endswith("." + name)) and port == p for name, p in self.host_ports):
            return None
        return proxy

    def __repr__(self) -> str:
        return (
            f"ProxyRules(http={_display(self.http)!r}, https={_display(self.https)!r}, "
            f"no_proxy={len(self.names) + len(self.host_ports) + len(self.networks)} entries"
            f"{', all' if self.bypass_all else ''})"
        )


def _bare(name: str) -> str:
    return name.removeprefix("*").lstrip(".")


def _normalise(proxy: str | None) -> str | None:
    if proxy is None:
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    parts = urlsplit(proxy)
    if parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
        raise ValueError(f"proxy {_display(proxy)!r}: want http(s)://host:port (or socks5://)")
    if parts.password:
        SECRETS.add(unquote(parts.password))
        SECRETS.add(parts.password)
    return proxy


def _display(proxy: str | None) -> str | None:
    """A proxy URL without its credentials, for reprs and messages."""
    if proxy is None:
        return None
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


def _ssl_context(env: Mapping[str, str]) -> ssl.SSLContext | bool:
    cafile = env.get("SSL_CERT_FILE") or None
    capath = env.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        return True
    return ssl.create_default_context(cafile=cafile, capath=capath)


class _Routed(httpx.AsyncBaseTransport):
    """Sends each request directly or through its proxy, as :class:`ProxyRules` decide."""

    def __init__(self, rules: ProxyRules, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        self._rules = rules
        self._direct = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
        self._proxied = {
            proxy: httpx.AsyncHTTPTransport(verify=verify, limits=limits, proxy=proxy)
            for proxy in {rules.http, rules.https} - {None}
            if proxy is not None
        }

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self._rules.proxy_for(request.url)
        transport = self._direct if proxy is None else self._proxied[proxy]
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._proxied.values():
            await transport.aclose()


def http_client(
    proxy_url: str | None = None,
    *,
    timeout: float,
    limits: httpx.Limits | None = None,
    env: Mapping[str, str] | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for vendor calls with the environment's proxy and CA settings.

    Args:
        proxy_url: an account's ``proxy_url``; replaces the proxy variables (not ``NO_PROXY``).
        timeout: default per-request timeout (the client passes its own too).
        env: the environment to read (default: ``os.environ``).

    Raises:
        ValueError: an unusable proxy URL (the message never shows its credentials).
        OSError / ssl.SSLError: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` cannot be read.
    """
    environment = os.environ if env is None else env
    rules = ProxyRules.from_env(environment, proxy_url=proxy_url)
    transport = _Routed(rules, _ssl_context(environment), limits or httpx.Limits())
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False)
