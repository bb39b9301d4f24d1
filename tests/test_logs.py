"""The log chain: formats, levels, and secrets scrubbed from every rendered line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from exporter.logs import REDACTED, configure_logging, redact

SECRET = "AKIDsecretValue0123456789"


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


def _configure(level: str = "debug", fmt: str = "logfmt") -> io.StringIO:
    out = io.StringIO()
    configure_logging(level=level, fmt=fmt, secrets=[SECRET, ""], stream=out)
    return out


class TestRedaction:
    def test_secret_in_a_value_is_scrubbed(self) -> None:
        out = _configure()
        structlog.get_logger().info("poll_failed", message=f"bad key {SECRET}")
        assert SECRET not in out.getvalue()
        assert REDACTED in out.getvalue()

    def test_secret_in_a_traceback_is_scrubbed(self) -> None:
        out = _configure(fmt="json")
        try:
            raise RuntimeError(f"key was {SECRET}")
        except RuntimeError:
            structlog.get_logger().exception("crashed")
        text = out.getvalue()
        assert "RuntimeError" in text
        assert SECRET not in text

    def test_stdlib_loggers_go_through_the_same_chain(self) -> None:
        out = _configure()
        logging.getLogger("some.library").warning("job %s missed", SECRET)
        line = out.getvalue()
        assert "level=warning" in line
        assert SECRET not in line

    def test_redact_ignores_empty_secrets(self) -> None:
        assert redact("abc", ["", "b"]) == f"a{REDACTED}c"


class TestFormatsAndLevels:
    def test_logfmt_puts_timestamp_level_event_first(self) -> None:
        out = _configure()
        structlog.get_logger().info("starting", accounts=2)
        assert out.getvalue().split(" ")[1:3] == ["level=info", "event=starting"]

    def test_json_keeps_unicode(self) -> None:
        out = _configure(fmt="json")
        structlog.get_logger().info("stream_event", stream="直推流")
        assert json.loads(out.getvalue())["stream"] == "直推流"

    def test_level_filters_lower_lines(self) -> None:
        out = _configure(level="warn")
        structlog.get_logger().info("quiet")
        structlog.get_logger().warning("loud")
        assert "quiet" not in out.getvalue()
        assert "loud" in out.getvalue()

    @pytest.mark.parametrize(("level", "fmt"), [("verbose", "logfmt"), ("info", "xml")])
    def test_unknown_level_or_format_is_refused(self, level: str, fmt: str) -> None:
        with pytest.raises(ValueError, match="unknown log"):
            configure_logging(level=level, fmt=fmt)
