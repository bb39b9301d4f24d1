"""The HTTP surface: server, landing page and exporter-toolkit web config.

``web`` only reads cached state handed to it as ``WebSources``; it never imports the poll
pipeline, so a scrape can neither wait for a poll nor trigger one.
"""

from .landing import LandingConfig, LandingLink
from .server import WebServer, WebSources
from .webconfig import WebConfig, WebConfigError, load_web_config

__all__ = [
    "LandingConfig",
    "LandingLink",
    "WebConfig",
    "WebConfigError",
    "WebServer",
    "WebSources",
    "load_web_config",
]
