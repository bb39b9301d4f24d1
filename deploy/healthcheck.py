"""Container health check for tencent-live-exporter: exit 0 while the exporter answers HTTP.

Why not a plain ``urlopen("http://.../healthz")``: with ``--web.config.file`` the exporter may
speak only TLS, and with ``basic_auth_users`` every path (``/healthz`` too, as in
exporter-toolkit) answers 401 without credentials. Both still prove the process is alive and
serving, which is all a liveness check asks. So: try plain HTTP, then HTTPS (certificate not
verified: this is loopback and the check has no CA); 200 or 401 from ``/healthz`` is healthy,
anything else (refused, timeout, 5xx) is not. No credentials are needed or read.

    python /usr/local/share/tencent-live-exporter/healthcheck.py [HOST:PORT]   # default 127.0.0.1:9877
"""

from __future__ import annotations

import http.client
import ssl
import sys
from collections.abc import Sequence

__all__ = ["HEALTHY_STATUSES", "check", "main"]

HEALTHY_STATUSES = frozenset({200, 401})
DEFAULT_ADDRESS = "127.0.0.1:9877"


def _status(connection: http.client.HTTPConnection) -> int:
    try:
        connection.request("GET", "/healthz", headers={"User-Agent": "tencent-live-exporter-healthcheck"})
        return connection.getresponse().status
    finally:
        connection.close()


def check(address: str = DEFAULT_ADDRESS, timeout: float = 4.0) -> tuple[bool, str]:
    """Whether the exporter at ``address`` answers, and how (for the health log).

    ``timeout`` applies to each attempt: the Dockerfile's HEALTHCHECK allows both in full.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # Plain HTTP first: the default (no web config) then never sees a stray TLS handshake.
    attempts: list[tuple[str, http.client.HTTPConnection]] = [
        ("http", http.client.HTTPConnection(host, int(port), timeout=timeout)),
        ("https", http.client.HTTPSConnection(host, int(port), timeout=timeout, context=context)),
    ]
    problems = []
    for scheme, connection in attempts:
        try:
            status = _status(connection)
        except (OSError, http.client.HTTPException) as exc:  # refused, TLS mismatch, timeout
            problems.append(f"{scheme}: {type(exc).__name__}")
            continue
        if status in HEALTHY_STATUSES:
            return True, f"{scheme} /healthz {status}"
        problems.append(f"{scheme}: status {status}")
    return False, "; ".join(problems)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    healthy, how = check(args[0] if args else DEFAULT_ADDRESS)
    print(("healthy: " if healthy else "unhealthy: ") + how)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
