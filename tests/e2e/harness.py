"""Test plumbing for the acceptance tests: the exporter wired like ``cli.py``, and a real process.

``stack()`` builds the same parts ``exporter.cli`` builds (config loader, ``TencentClient`` over
httpx, ``Runner``, ``MetricStore``, ``HealthMetrics``, ``EventLog``, ``WebServer``) and lets the
test drive one poll at a time with ``Runner.poll_once``; nothing of ours is faked, only the
vendor (``vendor_fake``) and the wall clock. ``Exporter`` runs ``python -m exporter`` as a
subprocess for what only a real process shows (flags, scheduler, signals, exit codes).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exporter import __version__
from exporter.cli import build_pipeline, http_limits
from exporter.config import parse_config
from exporter.events import EventLog
from exporter.metrics import HealthMetrics, MetricStore
from exporter.model import RegionKey
from exporter.scheduler.runner import RetryPolicy, Runner
from exporter.web.landing import LandingConfig
from exporter.web.server import WebServer

__all__ = [
    "PROMTOOL",
    "REPO",
    "Clock",
    "Exporter",
    "Metrics",
    "Stack",
    "await_condition",
    "exporter_env",
    "free_port",
    "promtool_check",
    "stack",
]

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
PROMTOOL = "/usr/bin/promtool"
# Fast retries keep a scripted fault to a fraction of a second; three attempts as in production.
FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@dataclass
class Clock:
    """An injected wall clock: tests move it, so event times and timestamps are exact."""

    now: float = 1_767_600_000.0  # 2026-01-05T08:00:00Z

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 15.0) -> float:
        self.now += seconds
        return self.now


class Metrics:
    """A parsed /metrics body with exact-label lookups."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def get(self, name: str, **labels: str) -> float | None:
        want = {k: str(v) for k, v in labels.items()}
        for sample in self.samples:
            if sample.name == name and sample.labels == want:
                return sample.value
        return None

    def select(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Every sample of ``name`` whose labels include ``labels``."""
        return [
            (dict(s.labels), s.value)
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def type_of(self, family: str) -> str:
        return self.families[family].type


@dataclass
class Stack:
    runner: Runner
    store: MetricStore
    health: HealthMetrics
    events: EventLog
    web: WebServer
    clock: Clock
    account: str = "prod"
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0, trust_env=False))

    async def poll(self, region: str, *, account: str | None = None, tick: float = 15.0) -> bool:
        """One poll of one region, the clock moved ``tick`` seconds first."""
        self.clock.tick(tick)
        return await self.runner.poll_once(RegionKey(account or self.account, region))

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.http.get(self.web.url + path, **kwargs)  # type: ignore[arg-type]

    def metrics(self) -> Metrics:
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        return Metrics(response.text)

    def events_list(self) -> list[dict[str, object]]:
        response = self.get("/events")
        assert response.status_code == 200
        return list(response.json()["events"])


@asynccontextmanager
async def stack(
    config_text: str, *, clock: Clock | None = None, base_dir: Path | None = None
) -> AsyncIterator[Stack]:
    """The exporter's parts wired as ``cli.py`` wires them, for a config given as YAML text."""
    config = parse_config(config_text, source="e2e.yml", base_dir=base_dir or Path.cwd(), env={})
    clock = clock or Clock()
    async with httpx.AsyncClient(limits=http_limits(config), trust_env=False) as http:
        pipeline = build_pipeline(config, http, clock=clock, retry=FAST_RETRY)
        runner, store, health, events = pipeline.runner, pipeline.store, pipeline.health, pipeline.events
        web = WebServer(
            "127.0.0.1:0",
            telemetry_path="/metrics",
            sources=pipeline.web_sources(),
            landing=LandingConfig(version=__version__),
            clock=clock,
        )
        web.start()
        s = Stack(runner=runner, store=store, health=health, events=events, web=web, clock=clock)
        try:
            await pipeline.open()  # credentials first, as the daemon does
            await runner.restore()
            yield s
        finally:
            await pipeline.stop()
            web.stop()
            s.http.close()


def await_condition(check: Callable[[], T | None], *, timeout: float = 15.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; the deadline replaces any sleep."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.TransportError, OSError):
            last = None
        if last:
            return last
        time.sleep(0.05)  # the retry interval of a deadline loop, not a wait for a poll
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def exporter_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any ambient Tencent credentials, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    return {**base, **(extra or {}), "PYTHONPATH": str(REPO)}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def promtool_check(body: str) -> None:
    """``promtool check metrics`` must be silent and succeed on the body."""
    if not shutil.which(PROMTOOL):
        import pytest

        pytest.skip("promtool not installed")
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


class Exporter:
    """``python -m exporter`` as a child process on a free loopback port."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable,
            "-m",
            "exporter",
            "--web.listen-address",
            f"127.0.0.1:{self.port}",
            *args,
        ]
        self.env = exporter_env(env)
        self.proc: subprocess.Popen[str] | None = None
        self.out = ""
        self.err = ""

    def __enter__(self) -> Exporter:
        self.proc = subprocess.Popen(
            self.args, env=self.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5.0, trust_env=False)

    def metrics(self) -> Metrics:
        return Metrics(self.get("/metrics").text)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            assert self.alive(), f"exporter exited early: {self.collect()}"
            return self.get("/healthz").status_code == 200

        await_condition(ready, timeout=timeout, what="exporter listening")

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, then the exit code (SIGKILL only if it hangs, and then the test fails)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.collect()
                raise AssertionError(f"exporter ignored SIGTERM for {timeout}s") from None
        self.collect()
        return int(self.proc.returncode)

    def collect(self) -> str:
        assert self.proc is not None
        if self.proc.poll() is not None and self.proc.stdout is not None and not self.proc.stdout.closed:
            self.out, self.err = self.proc.communicate()
        return self.out + self.err


def iter_lines(text: str) -> Iterator[str]:
    yield from (line for line in text.splitlines() if line.strip())
