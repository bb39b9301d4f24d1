"""The exporter's configuration: one YAML loader (``loader``), the config schema (``schema``,
``accounts``). ``exporter.web.webconfig`` reads the web config with the same loader.
"""

from __future__ import annotations

from exporter.config.accounts import DEFAULT_ENDPOINT, DEFAULT_REGIONS, KNOWN_REGIONS, AccountConfig
from exporter.config.schema import (
    Config,
    ConfigError,
    ExpectedStreams,
    StreamFilter,
    demo_config,
    describe_config,
    load_config,
    parse_config,
)
from exporter.config.values import format_duration, parse_duration

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGIONS",
    "KNOWN_REGIONS",
    "AccountConfig",
    "Config",
    "ConfigError",
    "ExpectedStreams",
    "StreamFilter",
    "demo_config",
    "describe_config",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]
