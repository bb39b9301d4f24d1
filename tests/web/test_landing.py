"""The landing page: every value escaped, status rows right, links follow the telemetry path."""

from __future__ import annotations

import html
import re
import secrets
from html.parser import HTMLParser

import httpx
import pytest

from exporter.model import RegionStatus
from exporter.redaction import SECRETS
from exporter.web.landing import LandingConfig, LandingLink, operator_links, render_landing

NASTY = "<script>\"&'"
T0 = 1_795_762_800.0  # 2026-11-27T07:00:00Z


def status(**overrides: object) -> RegionStatus:
    values: dict[str, object] = {
        "account": "prod",
        "region": "ap-guangzhou",
        "polled": True,
        "up": True,
        "last_success": T0,
        "last_error": None,
        "streams": 42,
    }
    values.update(overrides)
    return RegionStatus(**values)  # type: ignore[arg-type]


class _Texts(HTMLParser):
    """Collects tags and text: proves the nasty value came back as text, not as markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attrs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(value or "" for _, value in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: bytes) -> _Texts:
    parser = _Texts()
    parser.feed(page.decode("utf-8"))
    return parser


def cells(page: bytes) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", page.decode("utf-8"))
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows[1:]]


class TestEscaping:
    def test_every_user_value_is_escaped(self):
        config = LandingConfig(
            name=NASTY,
            description=NASTY,
            version=NASTY,
            links=(LandingLink(address=f"/x?{NASTY}", text=NASTY, description=NASTY),),
        )
        statuses = [status(account=NASTY, region=NASTY, up=False, last_error=NASTY)]
        page = render_landing(config, telemetry_path="/metrics", statuses=statuses, now=T0)
        parsed = parse(page)
        assert "script" not in parsed.tags
        assert b"<script>" not in page
        assert page.count(b"&lt;script&gt;&quot;&amp;&#x27;") >= 7
        assert "".join(parsed.text).count(NASTY) >= 6  # round-trips as text
        assert f"/x?{NASTY}" in parsed.attrs  # and as an attribute value, quotes intact

    def test_escaped_over_http(self, serve, sources):
        server = serve(sources(statuses=[status(account=NASTY, region="ap-<b>", last_error="</td><script>")]))
        page = httpx.get(f"{server.url}/").content
        assert b"<script>" not in page and b"<b>" not in page
        assert "script" not in parse(page).tags
        assert "&lt;script&gt;&quot;&amp;&#x27;" in page.decode()


class TestStatusTable:
    def test_up_row(self):
        page = render_landing(LandingConfig(), telemetry_path="/metrics", statuses=[status()], now=T0 + 75)
        assert cells(page) == [
            ["prod", "ap-guangzhou", "up",
             '<time datetime="2026-11-27T07:00:00Z">2026-11-27T07:00:00Z</time> (1m15s ago)', "—", "42"],
        ]  # fmt: skip

    def test_down_row_shows_last_error_code(self):
        row = status(up=False, last_error="RequestLimitExceeded", last_success=T0 - 7200 - 300)
        page = render_landing(LandingConfig(), telemetry_path="/metrics", statuses=[row], now=T0)
        [[_, _, up, success, error, _]] = cells(page)
        assert (up, error) == ("down", "RequestLimitExceeded")
        assert success.endswith("(2h05m ago)")

    def test_never_polled_and_never_succeeded(self):
        row = status(polled=False, up=False, last_success=None, streams=0)
        page = render_landing(LandingConfig(), telemetry_path="/metrics", statuses=[row], now=T0)
        [[_, _, up, success, _, streams]] = cells(page)
        assert (up, success, streams) == ("not polled yet", "never", "0")

    def test_rows_sorted_by_account_then_region(self):
        rows = [
            status(account="b", region="r1"),
            status(account="a", region="r2"),
            status(account="a", region="r1"),
        ]
        page = render_landing(LandingConfig(), telemetry_path="/metrics", statuses=rows, now=T0)
        assert [(c[0], c[1]) for c in cells(page)] == [("a", "r1"), ("a", "r2"), ("b", "r1")]

    def test_days_and_clock_skew(self):
        page = render_landing(
            LandingConfig(),
            telemetry_path="/m",
            statuses=[status(), status(account="z")],
            now=T0 + 3 * 86400 + 4 * 3600,
        )
        assert b"(3d04h ago)" in page
        skewed = render_landing(LandingConfig(), telemetry_path="/m", statuses=[status()], now=T0 - 5)
        assert b"clock skew" in skewed

    def test_no_regions(self):
        page = render_landing(LandingConfig(), telemetry_path="/metrics", statuses=[], now=T0)
        assert b"No account or region configured" in page


class TestLinks:
    def test_links_follow_telemetry_path_and_extras(self):
        config = LandingConfig(
            version="1.2.3", links=(LandingLink(address="https://runbook.example/", text="Runbook"),)
        )
        page = render_landing(config, telemetry_path="/custom", statuses=[], now=T0).decode()
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert hrefs == ["/custom", "/events", "/healthz", "/readyz", "https://runbook.example/"]
        assert "Version: 1.2.3" in page

    def test_no_external_assets(self):
        page = render_landing(
            LandingConfig(), telemetry_path="/metrics", statuses=[status()], now=T0
        ).decode()
        assert "<script" not in page and "<link" not in page and "src=" not in page


class TestDemoAndOperatorLinks:
    def test_demo_banner_only_in_demo_mode(self):
        demo = render_landing(LandingConfig(demo=True), telemetry_path="/metrics", statuses=[], now=T0)
        real = render_landing(LandingConfig(), telemetry_path="/metrics", statuses=[], now=T0)
        assert b'class="demo"' in demo and b"simulated" in demo
        assert b'class="demo"' not in real and b"simulated" not in real

    def test_runbook_and_dashboards_links_when_set(self):
        links = operator_links(runbook_url="https://wiki.internal/runbook", dashboards_url="/grafana/d/x")
        page = render_landing(
            LandingConfig(links=links), telemetry_path="/metrics", statuses=[], now=T0
        ).decode()
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert hrefs[-2:] == ["https://wiki.internal/runbook", "/grafana/d/x"]

    def test_unset_links_are_left_out(self):
        assert operator_links(runbook_url=None, dashboards_url="") == ()

    @pytest.mark.parametrize("url", ["javascript:alert(1)", "wiki/runbook", "https://a b"])
    def test_bad_link_urls_are_refused(self, url):
        with pytest.raises(ValueError, match="runbook URL"):
            operator_links(runbook_url=url, dashboards_url=None)


class TestRedaction:
    """A secret an upstream reflected into a status or a stream name never reaches a page."""

    def test_landing_status_row(self, serve, sources):
        secret = "AKIDreflected" + secrets.token_hex(12)
        SECRETS.add(secret)
        statuses = [status(up=False, last_error=f"AuthFailure.{secret}", account=f"acct-{secret}")]
        server = serve(sources(statuses=statuses))
        page = httpx.get(f"{server.url}/").text
        assert secret not in page and html.escape(secret) not in page
        assert "&lt;redacted&gt;" in page

    def test_events_stream_name(self, serve, sources):
        secret = "token-" + secrets.token_hex(16)
        SECRETS.add(secret)
        events = [{"time": "2026-11-27T07:00:00Z", "account": "prod", "region": "ap-guangzhou",
                   "stream": f"room-{secret}", "kind": "stream_start"}]  # fmt: skip
        server = serve(sources(events=events))
        r = httpx.get(f"{server.url}/events")
        assert secret not in r.text
        assert r.json()["events"][0]["stream"] == "room-<redacted>"
