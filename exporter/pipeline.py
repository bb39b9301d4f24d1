"""The polling half of the daemon, wired: credentials, HTTP clients, vendor clients, runner, store.

``cli.py`` is the composition root; this module is the part of it that tests build too
(``cli.build_pipeline`` is this :func:`build_pipeline`), so a test runs exactly the wiring the
daemon runs, with only the vendor (the embedded simulator) and the clocks faked.

Per account: one ``CredentialProvider`` (``exporter.credentials.build_provider``: static keys,
files, environment, profile, CVM role, TKE OIDC, ``role_arn``) whose refreshes feed the health
metrics, one HTTP client per distinct ``proxy_url`` (proxy and CA environment honoured), and one
``TencentClient``. A reload (:meth:`Pipeline.reload`) keeps the providers and clients of accounts
whose credentials, endpoint and proxy are unchanged, builds the others, and hands the runner the
new config; the runner keeps those regions' state and counters.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx
import structlog

from exporter import __version__
from exporter.config import AccountConfig, Config
from exporter.credentials import CredentialError, CredentialProvider, build_provider
from exporter.events import EventLog
from exporter.gcfreeze import GcFreezer
from exporter.metrics import HealthMetrics, MetricStore, metrics_source
from exporter.metrics.buildinfo import build_revision
from exporter.scheduler.runner import RetryPolicy, Runner
from exporter.tencent import http_client
from exporter.tencent.client import TencentClient
from exporter.web.server import WebSources

__all__ = ["HttpFactory", "Pipeline", "build_pipeline", "default_http_factory", "http_limits"]

HttpFactory = Callable[[str | None, Config], httpx.AsyncClient]
"""Builds the HTTP client for one ``proxy_url`` (``None``: the environment's proxy settings)."""


def http_limits(config: Config) -> httpx.Limits:
    """Keep-alive for a whole second's worth of requests.

    A budget burst must not pay new TCP/TLS handshakes, which also skew arrival times
    against the sliding window the vendor counts.
    """
    burst = int(sum(account.rate_limit for account in config.accounts)) + 8
    return httpx.Limits(max_connections=burst, max_keepalive_connections=burst)


def default_http_factory(proxy_url: str | None, config: Config) -> httpx.AsyncClient:
    """The vendor edge's client: proxy (``proxy_url`` or the environment) and CA settings honoured."""
    return http_client(proxy_url, timeout=config.request_timeout, limits=http_limits(config))


@dataclass(slots=True, kw_only=True)
class _Wired:
    """One account's built parts, and what they were built from (to tell whether a reload may keep them)."""

    settings: object
    endpoint: str
    proxy_url: str | None
    provider: CredentialProvider
    client: TencentClient
    started: bool = False


@dataclass(slots=True, kw_only=True)
class Pipeline:
    """What the runner writes and the web layer reads, plus the per-account wiring."""

    config: Config
    store: MetricStore
    health: HealthMetrics
    events: EventLog
    runner: Runner
    _wired: dict[str, _Wired] = field(default_factory=dict)
    _owned: dict[str | None, httpx.AsyncClient] = field(default_factory=dict)
    _build: Callable[[AccountConfig], _Wired] | None = None

    def web_sources(self) -> WebSources:
        return WebSources(
            metrics=metrics_source(self.store, self.health),
            events=self.events.recent,
            ready=self.health.all_polled,
            statuses=self.health.statuses,
        )

    @property
    def providers(self) -> dict[str, CredentialProvider]:
        return {name: wired.provider for name, wired in self._wired.items()}

    async def open(self) -> None:
        """Load every account's credentials (first fetch; ``auto`` reports every source tried).

        Raises:
            CredentialError: an account has no usable credential; the message names it.
        """
        for wired in self._wired.values():
            if not wired.started:
                await wired.provider.start()
                wired.started = True

    async def start(self) -> None:
        """Credentials first, then restore the state file and start polling."""
        await self.open()
        await self.runner.start()

    async def stop(self) -> None:
        """Stop polling (final state save), credential renewal, and close the HTTP clients we own."""
        await self.runner.stop()
        for wired in self._wired.values():
            await wired.provider.stop()
        for client in self._owned.values():
            await client.aclose()
        self._owned.clear()

    async def reread_credentials(self) -> None:
        """SIGHUP: re-read credential files (and re-fetch temporary keys) of every account."""
        log = structlog.get_logger("exporter")
        for name, wired in self._wired.items():
            if not wired.started:
                continue
            try:
                await wired.provider.renew()
            except CredentialError as exc:
                log.error(
                    "credential_reload_failed", account=name, error=str(exc), kept="the credential in force"
                )

    async def reload(self, config: Config) -> dict[str, int]:
        """Swap in a validated config: unchanged accounts keep providers, clients, state and counters.

        Raises:
            CredentialError: a new or changed account's credentials cannot load; nothing changed.
        """
        assert self._build is not None
        fresh: dict[str, _Wired] = {}
        kept: dict[str, _Wired] = {}
        for account in config.accounts:
            old = self._wired.get(account.name)
            if old is not None and (old.settings, old.endpoint, old.proxy_url) == _identity(account):
                kept[account.name] = old
            else:
                fresh[account.name] = self._build(account)
        try:
            for wired in fresh.values():
                await wired.provider.start()
                wired.started = True
        except CredentialError:
            for wired in fresh.values():
                await wired.provider.stop()
            raise
        clients = {name: w.client for name, w in (kept | fresh).items()}
        summary = await self.runner.reconfigure(config, clients)
        for name, old in self._wired.items():
            if kept.get(name) is not old:
                await old.provider.stop()
        self._wired = kept | fresh
        self._warn_store_settings(config)
        self.config = config
        self.store.set_expected(config.streams.expected)
        _declare(self.store, config)
        return summary

    def _warn_store_settings(self, config: Config) -> None:
        """Settings the store was built with: a reload keeps them, and says so when they changed."""
        old, new = self.config, config
        for name, before, after in (
            ("streams.per_stream_metrics", old.streams.per_stream_metrics, new.streams.per_stream_metrics),
            ("streams.max_per_region", old.streams.max_per_region, new.streams.max_per_region),
            ("stream_retention", old.stream_retention, new.stream_retention),
        ):
            if before != after:
                structlog.get_logger("exporter").warning(
                    "reload_needs_restart", setting=name, kept=before, configured=after
                )


def _identity(account: AccountConfig) -> tuple[object, str, str | None]:
    settings = getattr(account, "credentials", None) or getattr(account, "credential", None)
    return (settings, account.endpoint, getattr(account, "proxy_url", None))


def _declare(store: MetricStore, config: Config) -> None:
    """Expected streams exist in every configured region (``stream_expected``, ``stream_online 0``)."""
    for account in config.accounts:
        for region in account.regions:
            store.declare_region(account.name, region)


def _store_for(config: Config) -> MetricStore:
    return MetricStore(
        per_stream_metrics=config.streams.per_stream_metrics,
        max_per_region=config.streams.max_per_region,
        retention=config.stream_retention,
        expected=config.streams.expected,
    )


def build_pipeline(
    config: Config,
    http: httpx.AsyncClient | None = None,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    retry: RetryPolicy | None = None,
    env: Mapping[str, str] | None = None,
    http_factory: HttpFactory = default_http_factory,
    providers: Mapping[str, CredentialProvider] | None = None,
    process_metrics: bool = True,
    revision: str | None = None,
    freeze_gc: bool = False,
) -> Pipeline:
    """Store, health, event log, credentials, clients and the runner, wired as the daemon does.

    Args:
        http: one client for every account (tests: the simulator's transport or a loopback
            server); ``None`` builds one per distinct ``proxy_url`` with ``http_factory``.
        env: the environment credential sources read (default: ``os.environ``).
        providers: ready-made credential providers by account name (tests); the others are
            built from each account's ``credentials`` settings.
        revision: ``exporter_build_info{revision}``; detected when ``None``.
        freeze_gc: freeze the GC's view of the heap after applies (the daemon; see
            ``gcfreeze.py``); tests leave the collector alone.

    Call ``await pipeline.open()`` (credentials) before polling, or ``await pipeline.start()``.
    """
    environment = os.environ if env is None else env
    store = _store_for(config)
    health = HealthMetrics(
        __version__,
        revision=build_revision() if revision is None else revision,
        clock=clock,
        process_metrics=process_metrics,
    )
    events = EventLog()
    owned: dict[str | None, httpx.AsyncClient] = {}

    def client_for(proxy_url: str | None) -> httpx.AsyncClient:
        if http is not None:
            return http
        if proxy_url not in owned:
            owned[proxy_url] = http_factory(proxy_url, config)
        return owned[proxy_url]

    def on_refresh(account: str, result: str, expiry: float | None) -> None:
        health.credential_refreshed(account, result)
        if result == "ok":
            health.set_credential_expiry(account, expiry)

    def build(account: AccountConfig) -> _Wired:
        settings, endpoint, proxy_url = _identity(account)
        transport = client_for(proxy_url)
        provider = (providers or {}).get(account.name) or build_provider(
            account.credentials,
            account=account.name,
            env=environment,
            http=transport,
            clock=clock,
            on_refresh=on_refresh,
        )
        # Signing and credential expiry always use the real clock: the vendor checks both against its own.
        client = TencentClient(
            transport, endpoint=endpoint, credentials=provider, timeout=config.request_timeout
        )
        return _Wired(
            settings=settings, endpoint=endpoint, proxy_url=proxy_url, provider=provider, client=client
        )

    wired = {account.name: build(account) for account in config.accounts}
    runner = Runner(
        config,
        clients={name: w.client for name, w in wired.items()},
        store=store,
        health=health,
        events=events,
        clock=clock,
        monotonic=monotonic,
        retry=retry,
        after_apply=GcFreezer().after_apply if freeze_gc else None,
    )
    health.config_reloaded(True)
    _declare(store, config)
    return Pipeline(
        config=config,
        store=store,
        health=health,
        events=events,
        runner=runner,
        _wired=wired,
        _owned=owned,
        _build=build,
    )
