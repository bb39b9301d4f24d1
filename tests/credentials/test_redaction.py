"""The process-wide secret store: what it scrubs, what it ignores, and that logs use it."""

from __future__ import annotations

import io
import logging

import structlog

from exporter.logs import configure_logging
from exporter.redaction import MIN_SECRET_LENGTH, REDACTED, REFLECT_GRACE, SECRETS, Redactor

TOKEN = "renewed-token-abcdefghijklmnop"


class TestRedactor:
    def test_scrubs_text_and_bytes(self) -> None:
        r = Redactor()
        r.add(TOKEN)
        assert r.scrub_text(f"x {TOKEN} y") == f"x {REDACTED} y"
        assert r.scrub_bytes(f'{{"Code":"{TOKEN}"}}'.encode()) == f'{{"Code":"{REDACTED}"}}'.encode()
        assert r.contains(TOKEN.encode()) and r.contains(f"..{TOKEN}..")
        assert not r.contains(b"nothing here")

    def test_short_values_are_not_secrets_worth_scrubbing(self) -> None:
        r = Redactor()
        r.add("k" * (MIN_SECRET_LENGTH - 1))
        r.add("")
        r.add(None)
        assert len(r) == 0
        assert r.scrub_text("key=kkkkkkk") == "key=kkkkkkk"

    def test_longest_secret_wins_when_one_contains_another(self) -> None:
        r = Redactor()
        r.add("abcdefgh")
        r.add("abcdefgh-and-more")
        assert r.scrub_text("abcdefgh-and-more") == REDACTED

    def test_non_ascii_secret_in_bytes(self) -> None:
        r = Redactor()
        r.add("clé-secrète-0123")
        assert r.scrub_bytes("a clé-secrète-0123 b".encode()) == f"a {REDACTED} b".encode()


class TestExpiredTemporaryValues:
    def test_retired_from_body_scans_but_still_scrubbed_from_text(self) -> None:
        now = [1000.0]
        r = Redactor(clock=lambda: now[0])
        r.add("old-token-0123456789", expires_at=1100.0)
        r.add("static-key-0123456789")
        assert r.contains(b"x old-token-0123456789 x")
        now[0] = 1100.0 + REFLECT_GRACE + 1
        r.add("new-token-0123456789", expires_at=now[0] + 7200)  # the renewal that supersedes it
        assert not r.contains(b"x old-token-0123456789 x")  # no longer sent, so never reflected
        assert r.scrub_text("old-token-0123456789") == REDACTED  # text keeps every value
        assert r.contains(b"static-key-0123456789") and r.contains(b"new-token-0123456789")

    def test_body_scan_cost_stays_flat_over_many_renewals(self) -> None:
        now = [0.0]
        r = Redactor(clock=lambda: now[0])
        for i in range(1000):  # ~80 days of renewals every two hours
            now[0] = i * 7200.0
            r.add(f"token-{i:06d}-abcdefgh", expires_at=now[0] + 7200)
        assert len(r) == 1000
        assert r.contains(b"token-000999-abcdefgh") and not r.contains(b"token-000000-abcdefgh")
        body = b" ".join(f"token-{i:06d}-abcdefgh".encode() for i in range(998))
        assert not r.contains(body)  # none of the long-expired tokens is scanned for any more


def test_log_lines_scrub_a_secret_added_after_configuration() -> None:
    out = io.StringIO()
    configure_logging(level="info", fmt="logfmt", stream=out)
    try:
        SECRETS.add(TOKEN)  # e.g. a renewal an hour after startup
        structlog.get_logger().info("poll_failed", message=f"reflected {TOKEN}")
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
    assert TOKEN not in out.getvalue()
    assert REDACTED in out.getvalue()
