"""``POST /-/reload`` (``--web.enable-lifecycle``), shaped after Prometheus' lifecycle API."""

from __future__ import annotations

import secrets
import threading

import httpx
import pytest

from exporter.redaction import SECRETS
from exporter.web.webconfig import load_web_config


class Reloads:
    """A reload callable that records calls and fails on demand (the runner's is real elsewhere)."""

    def __init__(self) -> None:
        self.calls = 0
        self.fail: Exception | bool | None = None
        self.threads: list[str] = []

    def __call__(self) -> bool:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        if isinstance(self.fail, Exception):
            raise self.fail
        return self.fail is not False


@pytest.fixture
def reloads() -> Reloads:
    return Reloads()


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_reload_calls_back_and_answers_200(serve_many, reloads, method):
    server = serve_many(["127.0.0.1:0"], reload=reloads)
    r = httpx.request(method, f"{server.url}/-/reload")
    assert r.status_code == 200 and r.content == b""
    assert reloads.calls == 1
    assert reloads.threads[0].startswith("web-worker")  # never on the serving loop


def test_failure_is_500_with_the_reason(serve_many, reloads):
    reloads.fail = ValueError("config.yml:3: accounts[0].regions[0]: unknown region")
    server = serve_many(["127.0.0.1:0"], reload=reloads)
    r = httpx.post(f"{server.url}/-/reload")
    assert r.status_code == 500
    assert r.text == "failed to reload config: config.yml:3: accounts[0].regions[0]: unknown region\n"
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_false_is_500_pointing_at_the_log(serve_many, reloads):
    reloads.fail = False
    server = serve_many(["127.0.0.1:0"], reload=reloads)
    r = httpx.post(f"{server.url}/-/reload")
    assert r.status_code == 500 and "log" in r.text


def test_a_secret_in_the_reason_is_redacted(serve_many, reloads):
    secret = "tok-" + secrets.token_hex(16)
    SECRETS.add(secret)
    reloads.fail = ValueError(f"vendor said: bad token {secret}")
    server = serve_many(["127.0.0.1:0"], reload=reloads)
    r = httpx.post(f"{server.url}/-/reload")
    assert r.status_code == 500
    assert secret not in r.text and "<redacted>" in r.text


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_other_methods_are_405(serve_many, reloads, method):
    server = serve_many(["127.0.0.1:0"], reload=reloads)
    r = httpx.request(method, f"{server.url}/-/reload")
    assert r.status_code == 405
    assert r.headers["Allow"] == "POST, PUT"
    assert reloads.calls == 0


def test_without_lifecycle_it_is_403(serve_many):
    server = serve_many(["127.0.0.1:0"])
    r = httpx.post(f"{server.url}/-/reload")
    assert r.status_code == 403
    assert r.text == "Lifecycle API is not enabled.\n"


def test_auth_comes_first(serve_many, reloads, tmp_path, hash_password):
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users:\n  ops: {hash_password('pw')}\n")
    server = serve_many(["127.0.0.1:0"], reload=reloads, web_config=load_web_config(path))
    assert httpx.post(f"{server.url}/-/reload").status_code == 401
    assert reloads.calls == 0
    assert httpx.post(f"{server.url}/-/reload", auth=("ops", "pw")).status_code == 200
    assert reloads.calls == 1
