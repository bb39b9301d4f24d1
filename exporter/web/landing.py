"""The landing page at ``/``: who we are, how each account/region is doing, where to go next.

Shaped after exporter-toolkit's ``LandingConfig``: a small value in, a page out. Account and
region names come from the operator's config and stream counts from the vendor; every value
is HTML-escaped regardless, because the page must never become a script injection point.
The page is one self-contained document: no external CSS, fonts or scripts, so it works on
an air-gapped network and under a strict Content-Security-Policy (inline style only).

Every value also passes the caller's ``scrub`` (the secret redactor) before escaping, so a
secret an upstream reflected into an error code never reaches the page, escaped or not.
A ``--demo`` run says so in a banner at the top: simulated streams must never be mistaken
for a real fleet on a shared screen.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.model import RegionStatus

__all__ = ["LandingConfig", "LandingLink", "operator_links", "render_landing"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LandingLink:
    """An extra link below the standard ones (e.g. a runbook or dashboard)."""

    address: str
    text: str
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class LandingConfig:
    name: str = "Tencent Cloud Live Exporter"
    description: str = "Prometheus exporter for Tencent Cloud Live master/backup streams"
    version: str = ""
    links: tuple[LandingLink, ...] = ()
    demo: bool = False  # serving the embedded simulator (--demo): show the banner


def operator_links(*, runbook_url: str | None, dashboards_url: str | None) -> tuple[LandingLink, ...]:
    """The ``--web.runbook-url`` / ``--web.dashboards-url`` links; an unset one is left out.

    Raises:
        ValueError: not an ``http(s)://`` URL or an absolute path (no ``javascript:`` links).
    """
    links = []
    for url, text, description in (
        (runbook_url, "Runbook", "what each alert means and what to do"),
        (dashboards_url, "Dashboards", "Grafana dashboards for this exporter"),
    ):
        if not url:
            continue
        if not url.startswith(("http://", "https://", "/")) or any(c.isspace() for c in url):
            raise ValueError(f"{text.lower()} URL must be http(s)://... or an absolute path: {url!r}")
        links.append(LandingLink(address=url, text=text, description=description))
    return tuple(links)


_STYLE = (
    "body{font-family:-apple-system,system-ui,sans-serif;margin:0}"
    "header{background:#e6522c;color:#fff;padding:.6em 1em}h1{margin:0;font-size:1.4em}"
    "main{padding:0 1em}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
    ".up{color:#1a7f37}.down{color:#cf222e}.pending{color:#777}"
    ".demo{background:#fff3cd;border-bottom:2px solid #e0a800;padding:.6em 1em;font-weight:bold}"
)
_DEMO_BANNER = (
    '<div class="demo" role="alert">Demo mode: every stream, region and event on this exporter is '
    "simulated (--demo, embedded simulator). No Tencent Cloud account is polled.</div>"
)


def _identity(text: str) -> str:
    return text


def render_landing(
    config: LandingConfig,
    *,
    telemetry_path: str,
    statuses: Sequence[RegionStatus],
    now: float,
    scrub: Callable[[str], str] = _identity,
) -> bytes:
    """The whole page as UTF-8 bytes.

    Args:
        config: names, version and extra links.
        telemetry_path: where metrics really are (``--web.telemetry-path``), so the link works.
        statuses: one row per configured account/region.
        now: Unix seconds, for "how long ago" (passed in so the page is testable).
        scrub: applied to every value before escaping (the secret redactor).
    """

    def esc(value: object) -> str:
        return html.escape(scrub(str(value)), quote=True)

    links = [
        LandingLink(address=telemetry_path, text="Metrics", description="Prometheus text format"),
        LandingLink(address="/events", text="Events", description="recent switchovers, joins, losses (JSON)"),
        LandingLink(address="/healthz", text="Health", description="200 while the process is alive"),
        LandingLink(address="/readyz", text="Readiness", description="200 once every region was polled"),
        *config.links,
    ]
    items = "".join(
        f'<li><a href="{esc(link.address)}">{esc(link.text)}</a>'
        + (f" — {esc(link.description)}" if link.description else "")
        + "</li>"
        for link in links
    )
    version = f"<p>Version: {esc(config.version)}</p>" if config.version else ""
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(config.name)}</title><style>{_STYLE}</style></head>"
        f"<body><header><h1>{esc(config.name)}</h1></header>"
        f"{_DEMO_BANNER if config.demo else ''}<main>"
        f"<p>{esc(config.description)}</p>{version}"
        f"<ul>{items}</ul>"
        f"<h2>Accounts and regions</h2>{_status_table(statuses, now, esc)}"
        "</main></body></html>\n"
    )
    return page.encode("utf-8")


def _status_table(statuses: Sequence[RegionStatus], now: float, esc: Callable[[object], str]) -> str:
    if not statuses:
        return "<p>No account or region configured.</p>"
    head = (
        "<tr><th>Account</th><th>Region</th><th>Up</th><th>Last success</th>"
        "<th>Last error</th><th>Streams</th></tr>"
    )
    ordered = sorted(statuses, key=lambda s: (s.account, s.region))
    rows = "".join(_status_row(status, now, esc) for status in ordered)
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _status_row(status: RegionStatus, now: float, esc: Callable[[object], str]) -> str:
    if not status.polled:
        state = '<td class="pending">not polled yet</td>'
    elif status.up:
        state = '<td class="up">up</td>'
    else:
        state = '<td class="down">down</td>'
    if status.last_success is None:
        success = "<td>never</td>"
    else:
        stamp = _rfc3339(status.last_success)
        age = _age(now - status.last_success)
        success = f'<td><time datetime="{esc(stamp)}">{esc(stamp)}</time> ({esc(age)})</td>'
    error = esc(status.last_error) if status.last_error else "—"
    return (
        f"<tr><td>{esc(status.account)}</td><td>{esc(status.region)}</td>{state}{success}"
        f"<td>{error}</td><td>{status.streams:d}</td></tr>"
    )


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(round(timestamp), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(seconds: float) -> str:
    """Short, human "how long ago": ``12s ago``, ``4m10s ago``, ``2h05m ago``, ``3d04h ago``."""
    if seconds < 0:
        return "in the future (clock skew?)"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h ago"
    if hours:
        return f"{hours}h{minutes:02d}m ago"
    if minutes:
        return f"{minutes}m{secs:02d}s ago"
    return f"{secs}s ago"
