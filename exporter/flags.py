"""The command line: every flag of SPEC section 3, parsed and checked into :class:`Flags`.

Flags follow the Prometheus exporter conventions (dotted names, defaults shown in ``--help``).
A malformed flag exits with argparse's usage message (code 2) before anything is built.
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from exporter import __version__
from exporter.logs import FORMATS, LEVELS
from exporter.web.connection import DEFAULT_MAX_CONNECTIONS
from exporter.web.landing import operator_links

__all__ = ["Flags", "parse_flags", "version_text"]

_DESCRIPTION = """\
Prometheus exporter for Tencent Cloud Live (CSS) master/backup push streams.

Polls DescribeBackupStreamList per account and region within the account's API rate
budget, detects master switchovers, lost backups and dropped streams, and serves
them on /metrics. Try it without an account: tencent-live-exporter --demo
"""

_EPILOG = """\
credentials: from the config file, or the environment variables the official SDKs use:
  TENCENTCLOUD_SECRET_ID, TENCENTCLOUD_SECRET_KEY, TENCENTCLOUD_SESSION_TOKEN (or TENCENTCLOUD_TOKEN).

web config (--web.config.file): the exporter-toolkit format shared by all Prometheus exporters,
  https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class Flags:
    """The parsed command line, by SPEC section 3 name."""

    config_file: Path | None
    telemetry_path: str
    web_config_file: Path | None
    log_level: str
    log_format: str
    demo: bool
    check_config: bool
    listen_addresses: tuple[str, ...] = (":9877",)  # every --web.listen-address, in order
    systemd_socket: bool = False
    enable_lifecycle: bool = False
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    runbook_url: str | None = None
    dashboards_url: str | None = None

    @property
    def listen_address(self) -> str:
        """The first ``--web.listen-address``."""
        return self.listen_addresses[0]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tencent-live-exporter",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = p.add_argument
    add("--config.file", dest="config_file", type=Path, metavar="PATH", help="YAML configuration file.")
    add(
        "--web.listen-address",
        dest="listen_address",
        action="append",
        metavar="HOST:PORT",
        help="Address to serve /metrics and the landing page on; repeatable. (default: :9877)",
    )
    add(
        "--web.systemd-socket",
        dest="systemd_socket",
        action="store_true",
        help="Use systemd socket activation listeners instead of port listeners (Linux only).",
    )
    add(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="Enable reload via HTTP request (POST /-/reload).",
    )
    add(
        "--web.max-connections",
        dest="max_connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="Client connections served at once; more are refused at once. (default: %(default)s)",
    )
    add("--web.runbook-url", dest="runbook_url", metavar="URL", help="Runbook link for the landing page.")
    add(
        "--web.dashboards-url",
        dest="dashboards_url",
        metavar="URL",
        help="Dashboards link for the landing page.",
    )
    add(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        metavar="PATH",
        help="Path under which to expose metrics. (default: %(default)s)",
    )
    add(
        "--web.config.file",
        dest="web_config_file",
        type=Path,
        metavar="PATH",
        help="exporter-toolkit web config: TLS and basic auth.",
    )
    add(
        "--log.level",
        dest="log_level",
        default="info",
        choices=list(LEVELS),
        help="Only log lines at or above this level. (default: %(default)s)",
    )
    add(
        "--log.format",
        dest="log_format",
        default="logfmt",
        choices=list(FORMATS),
        help="Log line format. (default: %(default)s)",
    )
    add(
        "--demo", action="store_true", help="Run against the embedded simulator: no account or config needed."
    )
    add(
        "--check-config",
        dest="check_config",
        action="store_true",
        help="Validate the config (and web config), print what is wrong, exit 0 or 1.",
    )
    add("--version", action="store_true", help="Print version and exit.")
    return p


def parse_flags(argv: Sequence[str] | None = None) -> Flags | str:
    """Parse the command line; returns the text to print instead when it is ``--version``."""
    ns = _parser().parse_args(argv)
    if ns.version:
        return version_text()
    if not ns.telemetry_path.startswith("/"):
        _parser().error(f"--web.telemetry-path must start with '/': {ns.telemetry_path!r}")
    listen = tuple(ns.listen_address or (":9877",))
    try:
        operator_links(runbook_url=ns.runbook_url, dashboards_url=ns.dashboards_url)
    except ValueError as exc:
        _parser().error(str(exc))
    if ns.max_connections < 1:
        _parser().error("--web.max-connections must be at least 1")
    return Flags(
        config_file=ns.config_file,
        listen_addresses=listen,
        systemd_socket=ns.systemd_socket,
        enable_lifecycle=ns.enable_lifecycle,
        max_connections=ns.max_connections,
        runbook_url=ns.runbook_url,
        dashboards_url=ns.dashboards_url,
        telemetry_path=ns.telemetry_path,
        web_config_file=ns.web_config_file,
        log_level=ns.log_level,
        log_format=ns.log_format,
        demo=ns.demo,
        check_config=ns.check_config,
    )


def version_text() -> str:
    return (
        f"tencent-live-exporter, version {__version__} "
        f"(python {platform.python_version()}, {platform.system().lower()}/{platform.machine()})"
    )
