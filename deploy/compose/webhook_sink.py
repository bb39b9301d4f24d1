"""A tiny Alertmanager webhook receiver: prints each notification, serves the recent ones.

Used by deploy/compose.yaml so `docker compose up` shows what would have paged (`/page`) or
opened a ticket (`/ticket`), and by tests/ops/test_e2e_prometheus.py as the receiving end.
Standard library only, so it runs in a bare python image.

    python webhook_sink.py --listen 0.0.0.0:8080
    curl http://localhost:8080/        # the last notifications, newest first, as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Notification", "SinkServer", "main"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One webhook POST: the path it came to (the receiver) and Alertmanager's JSON payload."""

    path: str
    payload: dict[str, Any]

    def alerts(self) -> list[dict[str, Any]]:
        alerts = self.payload.get("alerts", [])
        return alerts if isinstance(alerts, list) else []

    def lines(self) -> list[str]:
        """One human line per alert: receiver, status, name, identifying labels, summary."""
        out = []
        for alert in self.alerts():
            labels = alert.get("labels", {})
            where = " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
            summary = alert.get("annotations", {}).get("summary", "")
            out.append(f"{self.path} {alert.get('status')} {labels.get('alertname')} {where} :: {summary}")
        return out


@dataclass
class _Inbox:
    items: deque[Notification] = field(default_factory=lambda: deque(maxlen=500))
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)


class SinkServer:
    """The receiver on a background thread; ``port`` 0 picks a free one."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, echo: bool = False) -> None:
        self._inbox = _Inbox()
        self._echo = echo
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhook-sink", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def notifications(self) -> list[Notification]:
        with self._inbox.lock:
            return list(self._inbox.items)

    def wait_for(self, seconds: float) -> None:
        """Block until a notification arrives or ``seconds`` pass (a deadline, not a sleep)."""
        with self._inbox.changed:
            self._inbox.changed.wait(seconds)

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def _record(self, note: Notification) -> None:
        with self._inbox.changed:
            self._inbox.items.append(note)
            self._inbox.changed.notify_all()
        if self._echo:
            for line in note.lines():
                print(line, flush=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"error": "body must be JSON"})
                    return
                if not isinstance(payload, dict):
                    self._send(400, {"error": "body must be a JSON object"})
                    return
                sink._record(Notification(path=self.path, payload=payload))
                self._send(200, {"status": "ok"})

            def do_GET(self) -> None:
                recent = [{"path": n.path, **n.payload} for n in reversed(sink.notifications())]
                self._send(200, {"notifications": recent[:50]})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the notification lines are the log."""

        return Handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print and keep Alertmanager webhook notifications.")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = SinkServer(host or "0.0.0.0", int(port), echo=True)
    print(f"webhook sink listening on {server.url}", flush=True)
    # PID 1 in a container gets no default SIGTERM action: exit cleanly on it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
