"""Basic auth wraps every route; unknown users pay bcrypt too; successes are cached as digests."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import bcrypt
import httpx
import pytest

from exporter.web.auth import BasicAuth, TokenBucket
from exporter.web.webconfig import load_web_config

REALM = 'Basic realm="tencent-live-exporter"'


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def auth_config(tmp_path: Path, hash_password):
    path = tmp_path / "web.yml"
    path.write_text(
        "basic_auth_users:\n"
        f"  prometheus: {hash_password('s3cret')}\n"
        f"  ops: {hash_password('pa:ss wörd')}\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
    )
    return load_web_config(path)


class TestOverHttp:
    @pytest.mark.parametrize("path", ["/metrics", "/", "/events", "/healthz", "/readyz", "/nope"])
    def test_every_route_needs_credentials(self, serve, auth_config, path):
        server = serve(web_config=auth_config)
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == REALM

    def test_right_credentials(self, serve, auth_config):
        server = serve(web_config=auth_config)
        r = httpx.get(f"{server.url}/metrics", auth=("prometheus", "s3cret"))
        assert r.status_code == 200 and r.content.startswith(b"# HELP demo_up")

    @pytest.mark.parametrize(
        ("user", "password"),
        [
            ("prometheus", "wrong"),
            ("prometheus", "s3cret "),  # no trimming
            ("Prometheus", "s3cret"),  # usernames are case-sensitive
            ("nobody", "s3cret"),  # unknown user
            ("", ""),
        ],
    )
    def test_wrong_credentials(self, serve, auth_config, user, password):
        server = serve(web_config=auth_config)
        r = httpx.get(f"{server.url}/metrics", auth=(user, password))
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == REALM
        assert b"demo_up" not in r.content

    def test_colon_in_password_and_non_ascii(self, serve, auth_config):
        server = serve(web_config=auth_config)
        # RFC 7617: the first colon splits, the rest (colons included) is the UTF-8 password.
        r = httpx.get(f"{server.url}/healthz", headers={"Authorization": basic("ops", "pa:ss wörd")})
        assert r.status_code == 200

    def test_method_check_comes_after_auth(self, serve, auth_config):
        server = serve(web_config=auth_config)
        assert httpx.post(f"{server.url}/metrics").status_code == 401
        assert httpx.post(f"{server.url}/metrics", auth=("prometheus", "s3cret")).status_code == 405

    def test_configured_headers_on_every_response(self, serve, auth_config):
        server = serve(web_config=auth_config)
        for r in (
            httpx.get(f"{server.url}/metrics"),
            httpx.get(f"{server.url}/metrics", auth=("prometheus", "s3cret")),
            httpx.get(f"{server.url}/nope", auth=("prometheus", "s3cret")),
        ):
            assert r.headers["X-Frame-Options"] == "deny"
            assert r.headers["X-Content-Type-Options"] == "nosniff"

    def test_reload_swaps_users(self, serve, auth_config, tmp_path, hash_password):
        server = serve(web_config=auth_config)
        assert httpx.get(f"{server.url}/healthz", auth=("prometheus", "s3cret")).status_code == 200
        path = tmp_path / "web2.yml"
        path.write_text(f"basic_auth_users:\n  grafana: {hash_password('new')}\n")
        server.reload_web_config(load_web_config(path))
        assert httpx.get(f"{server.url}/healthz", auth=("prometheus", "s3cret")).status_code == 401
        assert httpx.get(f"{server.url}/healthz", auth=("grafana", "new")).status_code == 200

    def test_rate_limit(self, serve, tmp_path):
        path = tmp_path / "web.yml"
        path.write_text("rate_limit:\n  interval: 1h\n  burst: 2\n")
        server = serve(web_config=load_web_config(path))
        codes = [httpx.get(f"{server.url}/healthz").status_code for _ in range(3)]
        assert codes == [200, 200, 429]


class TestBasicAuth:
    @pytest.mark.parametrize(
        "header",
        [
            None,
            "",
            "Bearer abc",
            "Basic",
            "Basic !!!not-base64!!!",
            "Basic " + base64.b64encode(b"no-colon-here").decode(),
            basic("prometheus", "s3cret").replace("Basic", "Digest"),
        ],
    )
    def test_malformed_headers(self, hash_password, header):
        auth = BasicAuth({"prometheus": hash_password("s3cret").encode()})
        assert auth.check(header) is False

    def test_scheme_is_case_insensitive(self, hash_password):
        auth = BasicAuth({"prometheus": hash_password("s3cret").encode()})
        assert auth.check(basic("prometheus", "s3cret").replace("Basic", "basic")) is True

    def test_long_password_compares_like_go(self):
        """bcrypt reads 72 bytes; htpasswd/Go hashes of longer passwords must keep working."""
        password = "x" * 100
        hashed = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(4))
        auth = BasicAuth({"u": hashed})
        assert auth.check(basic("u", password)) is True
        assert auth.check(basic("u", "y" * 100)) is False

    def test_success_is_cached_and_failure_is_not(self):
        """Cost 10 bcrypt is ~50-100 ms; a cache hit is microseconds. Ratios, not absolute times."""
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(10))
        auth = BasicAuth({"prometheus": hashed})
        first = _timed(auth, basic("prometheus", "s3cret"), expect=True)
        second = _timed(auth, basic("prometheus", "s3cret"), expect=True)
        wrong = _timed(auth, basic("prometheus", "nope"), expect=False)
        wrong_again = _timed(auth, basic("prometheus", "nope"), expect=False)
        assert second < first / 10
        assert wrong_again > second * 10  # failures pay bcrypt every time
        assert wrong > second * 10

    def test_unknown_user_pays_bcrypt_too(self):
        hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(10))
        auth = BasicAuth({"prometheus": hashed})
        known = min(_timed(auth, basic("prometheus", "wrong"), expect=False) for _ in range(3))
        unknown = min(_timed(auth, basic("mallory", "wrong"), expect=False) for _ in range(3))
        assert unknown > known / 3  # same order of magnitude: no cheap "no such user" path

    def test_cache_holds_no_password(self):
        auth = BasicAuth({"u": bcrypt.hashpw(b"hunter2-unique", bcrypt.gensalt(4))})
        assert auth.check(basic("u", "hunter2-unique"))
        state = repr({name: getattr(auth, name) for name in dir(auth) if not name.startswith("__")})
        assert "hunter2" not in state and "aHVudGVyMi1" not in state  # neither plain nor base64


class TestTokenBucket:
    def test_burst_then_refill(self):
        now = [100.0]
        bucket = TokenBucket(interval=10.0, burst=2, clock=lambda: now[0])
        assert [bucket.allow() for _ in range(3)] == [True, True, False]
        now[0] += 10.0
        assert [bucket.allow(), bucket.allow()] == [True, False]
        now[0] += 1000.0  # refills only up to the burst
        assert [bucket.allow() for _ in range(3)] == [True, True, False]


def _timed(auth: BasicAuth, header: str, *, expect: bool) -> float:
    start = time.perf_counter()
    assert auth.check(header) is expect
    return time.perf_counter() - start
