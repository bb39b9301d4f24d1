"""Structured logging: one structlog chain for our own lines and for stdlib loggers.

Why a redacting *renderer* rather than a processor: a secret can reach a log line through
any value, including a formatted traceback that only exists after ``format_exc_info``.
Scrubbing the final rendered text is the one place nothing can slip past.

The secrets come from ``exporter.redaction.SECRETS``, the process-wide store every credential
source adds to, so a token renewed an hour after startup is scrubbed like the startup keys.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import Processor

from exporter.redaction import REDACTED, SECRETS, Redactor

__all__ = ["FORMATS", "LEVELS", "REDACTED", "RedactingRenderer", "configure_logging", "redact"]

LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("logfmt", "json")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every given secret in ``text``; empty secrets are ignored.

    A standalone helper; the log chain itself scrubs through ``SECRETS``.
    """
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


class RedactingRenderer:
    """Wraps the final renderer and scrubs, through ``redactor``, the text it produced.

    The redactor is read at render time, so secrets added later (renewals) are scrubbed too.
    """

    def __init__(self, inner: Processor, redactor: Redactor = SECRETS) -> None:
        self._redactor = redactor
        self._inner = inner

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        rendered = self._inner(logger, method_name, event_dict)
        text = rendered if isinstance(rendered, str) else str(rendered)
        return self._redactor.scrub_text(text)


def _renderer(fmt: str) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(ensure_ascii=False)
    return structlog.processors.LogfmtRenderer(
        key_order=["ts", "level", "event"], drop_missing=True, bool_as_flag=False
    )


def configure_logging(
    *, level: str = "info", fmt: str = "logfmt", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Configure structlog and route stdlib logging (httpx, apscheduler) through the same chain.

    Args:
        level: one of ``LEVELS``.
        fmt: ``logfmt`` or ``json``.
        secrets: raw secret values to add to ``SECRETS`` (scrubbed from every rendered line,
            with everything added to the store later).
        stream: where lines go; stderr by default.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(FORMATS)}")
    numeric = LEVELS[level]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    SECRETS.add_all(secrets)
    renderer = RedactingRenderer(_renderer(fmt), SECRETS)
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # httpx logs every request at INFO: that is our own api_requests_total, not news.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # APScheduler announces every job at INFO and warns on every skipped run, which the
    # runner already reports as poll_late (log line and tencent_live_polls_late_total).
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.ERROR))
