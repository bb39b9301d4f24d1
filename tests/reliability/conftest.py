"""Shared rig for the reliability tests: the real runner, client, parse, diff, store and health,
polling a real ``SimulatorServer`` on loopback, driven poll by poll (no scheduler, no sleeps).

Metrics are read back the way Prometheus reads them: the store's and the health registry's text
exposition, parsed with ``prometheus_client.parser``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from exporter.cli import build_pipeline
from exporter.config import AccountConfig, Config
from exporter.credentials import Credential, CredentialSettings, StaticCredentials
from exporter.events import EventLog
from exporter.metrics.health import HealthMetrics
from exporter.metrics.store import MetricStore
from exporter.model import RegionKey
from exporter.scheduler.runner import RetryPolicy, Runner
from exporter.simulator import SimulatorServer
from tests._prom import Samples, samples, value

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "prod"
REGION = "ap-guangzhou"
KEY = RegionKey(ACCOUNT, REGION)
# Two tries per request, a millisecond apart: retries are exercised, not waited for.
FAST_RETRY = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.002)


@dataclass
class Rig:
    runner: Runner
    store: MetricStore
    health: HealthMetrics
    events: EventLog
    server: SimulatorServer
    config: Config

    def store_samples(self) -> Samples:
        """Per-stream and region families only (the store never renders a health family)."""
        return samples(self.store.render())

    def health_samples(self) -> Samples:
        return samples(self.health.render())

    def hvalue(self, name: str, **labels: str) -> float | None:
        return value(self.health.render(), name, **labels)

    def stat(self, name: str, **labels: str) -> float | None:
        return value(self.store.render(), name, **labels)

    def up(self) -> float | None:
        return self.hvalue("tencent_live_up", account=ACCOUNT, region=REGION)

    def requests(self, code: str) -> float:
        value = self.hvalue("tencent_live_api_requests_total", account=ACCOUNT, region=REGION, code=code)
        return value or 0.0

    def sim_requests(self) -> int:
        """Requests for our region the simulator has seen (answered or not)."""
        return sum(1 for r in self.server.request_log.records() if r.region == REGION)

    async def poll(self) -> bool:
        return await self.runner.poll_once(KEY)


def make_config(
    endpoint: str,
    credential: Credential,
    *,
    request_timeout: float = 2.0,
    drop_confirmations: int = 2,
    state_file: Path | None = None,
    rate_limit: float = 20.0,
    drop_confirm_queries: int = 0,  # SPEC 5 semantics; by-name confirmation is tested in tests/scheduler
) -> Config:
    settings = CredentialSettings(
        source="static",
        secret_id=credential.secret_id,
        secret_key=credential.secret_key,
        session_token=credential.token,
    )
    account = AccountConfig(
        name=ACCOUNT, credentials=settings, regions=(REGION,), endpoint=endpoint, rate_limit=rate_limit
    )
    return Config(
        poll_interval=15.0,
        request_timeout=request_timeout,
        drop_confirmations=drop_confirmations,
        drop_confirm_queries=drop_confirm_queries,
        state_file=state_file,
        accounts=(account,),
    )


@asynccontextmanager
async def open_rig(
    server: SimulatorServer,
    credential: Credential,
    *,
    request_timeout: float = 2.0,
    drop_confirmations: int = 2,
    keepalive: bool = True,
    retry: RetryPolicy = FAST_RETRY,
    rate_limit: float = 20.0,
    state_file: Path | None = None,
    drop_confirm_queries: int = 0,  # SPEC 5 semantics; by-name confirmation is tested in tests/scheduler
) -> AsyncIterator[Rig]:
    config = make_config(
        server.url,
        credential,
        state_file=state_file,
        request_timeout=request_timeout,
        drop_confirmations=drop_confirmations,
        rate_limit=rate_limit,
        drop_confirm_queries=drop_confirm_queries,
    )
    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as http:
        pipeline = build_pipeline(
            config,
            http,
            retry=retry,
            env={},
            providers={ACCOUNT: StaticCredentials(credential)},
            process_metrics=False,
            revision="test",
        )
        await pipeline.open()
        try:
            yield Rig(pipeline.runner, pipeline.store, pipeline.health, pipeline.events, server, config)
        finally:
            await pipeline.runner.stop(grace=0.2)
            await pipeline.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # a poll interval of the wait, not a wait for the event itself


class Daemon:
    """``python -m exporter`` as a subprocess on a free loopback port, its output kept in files."""

    def __init__(self, workdir: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self._out = tempfile.NamedTemporaryFile(dir=workdir, prefix="stdout-", delete=False)  # noqa: SIM115
        self._err = tempfile.NamedTemporaryFile(dir=workdir, prefix="stderr-", delete=False)  # noqa: SIM115
        base = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args, "--web.listen-address", f"127.0.0.1:{self.port}"],
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            env={**base, **(env or {})},
            cwd=REPO,
        )

    @property
    def stdout(self) -> str:
        return Path(self._out.name).read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return Path(self._err.name).read_text(encoding="utf-8", errors="replace")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5.0)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exporter exited with {self.proc.returncode}:\n{self.stderr}")
        try:
            return self.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 15.0) -> None:
        wait_for(self._ready, timeout=timeout, what="/readyz 200")

    def samples(self) -> Samples:
        response = self.get("/metrics")
        response.raise_for_status()
        return samples(response.content)

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, frozenset(labels.items())))

    def terminate(self, timeout: float = 5.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5.0)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._out.close()
        self._err.close()


class Kit:
    """The helpers above as one fixture (importlib mode: test modules cannot import conftest)."""

    ACCOUNT = ACCOUNT
    REGION = REGION
    KEY = KEY
    FAST_RETRY = FAST_RETRY
    open_rig = staticmethod(open_rig)
    make_config = staticmethod(make_config)
    run = staticmethod(run)
    wait_for = staticmethod(wait_for)
    Daemon = Daemon


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


__all__ = ["Daemon", "Kit", "Rig"]


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start exporter subprocesses; every one still running is killed at teardown."""
    started: list[Daemon] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Daemon:
        daemon = Daemon(tmp_path, args, env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()
