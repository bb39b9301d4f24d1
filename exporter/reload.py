"""SIGHUP and ``POST /-/reload``: parse everything first, then swap; a bad file changes nothing.

As blackbox_exporter's ``ReloadConfig``: the new config file and web config are parsed in full
before anything changes; an invalid one is logged (``reload_failed``), sets
``tencent_live_config_last_reload_successful`` to 0 and leaves everything as it was. A valid one
goes to :meth:`Pipeline.reload` (accounts, credentials, regions) and to the web server (TLS,
users). Reloads are serialised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from exporter.config import Config, ConfigError
from exporter.credentials import CredentialError
from exporter.pipeline import Pipeline
from exporter.web.server import WebServer
from exporter.web.webconfig import WebConfig, WebConfigError

__all__ = ["ReloadError", "Reloader"]

_BACKGROUND: set[asyncio.Task[bool]] = set()


class ReloadError(Exception):
    """A refused reload; the message is the logged reason (file, line, key: never a value)."""


class Reloader:
    """Reloads one pipeline (and its web server, once set) from the files the daemon was started with.

    Args:
        load_config: reads and validates the config file (raises ``ConfigError``); ``None`` in
            ``--demo``, whose config is built in.
        load_web_config: reads ``--web.config.file`` (raises ``WebConfigError``), ``None`` without one.

    Create it on the event loop; ``reload_blocking`` is the thread-safe entry the web server's
    workers call, ``on_sighup`` the signal handler.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        load_config: Callable[[], Config] | None,
        load_web_config: Callable[[], WebConfig | None],
    ) -> None:
        self._pipeline = pipeline
        self._load_config = load_config
        self._load_web_config = load_web_config
        self._lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()
        self._log = structlog.get_logger("exporter")
        self.web: WebServer | None = None

    async def reload(self) -> bool:
        """Reload config and web config; True when both were valid and are now in force."""
        try:
            await self.apply()
        except ReloadError:
            return False
        return True

    async def apply(self) -> None:
        """As :meth:`reload`, raising ``ReloadError`` with the reason when the reload is refused."""
        async with self._lock:
            health = self._pipeline.health
            try:
                config = None if self._load_config is None else self._load_config()
                web_config = self._load_web_config()
            except (ConfigError, WebConfigError) as exc:
                raise self._failed(str(exc)) from None
            summary: dict[str, int] = {}
            if config is not None:
                try:
                    summary = await self._pipeline.reload(config)
                except (CredentialError, ValueError, OSError) as exc:  # credentials, proxy URL, CA file
                    raise self._failed(str(exc)) from None
                for warning in config.warnings:
                    self._log.warning("config_warning", detail=warning)
            if web_config is not None and self.web is not None:
                self.web.reload_web_config(web_config)
            health.config_reloaded(True)
            self._log.info("config_reloaded", **{f"regions_{k}": v for k, v in summary.items()})

    def _failed(self, reason: str) -> ReloadError:
        self._log.error("reload_failed", reason=reason, kept="the configuration in force")
        self._pipeline.health.config_reloaded(False)
        return ReloadError(reason)

    def reload_blocking(self, timeout: float = 60.0) -> bool:
        """For a thread other than the event loop's (the web server's workers): True, or
        ``ReloadError`` raised with the reason, which ``POST /-/reload`` shows (scrubbed)."""
        future = asyncio.run_coroutine_threadsafe(self.apply(), self._loop)
        future.result(timeout=timeout)
        return True

    def on_sighup(self) -> None:
        """Reload, and re-read credential files whatever the config's fate (a rotated Secret)."""
        task = self._loop.create_task(self._hangup())
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)

    async def _hangup(self) -> bool:
        ok = await self.reload()
        await self._pipeline.reread_credentials()
        return ok
