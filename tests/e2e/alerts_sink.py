"""A webhook receiver on loopback that keeps every alert the daemon delivers.

Point ``TREASURY_ALERT_WEBHOOK_URL`` at :attr:`AlertSink.url` (with
``TREASURY_ALERT_FORMAT=json``): each POST body is parsed and kept in :attr:`received`,
in arrival order. The server runs in a thread of the test process, so it answers while
the test's event loop waits; it answers 200 to every well-formed JSON body.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class AlertSink:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.bad: list[str] = []  # bodies that were not JSON objects
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the sink is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/treasury"

    def kinds(self) -> list[str]:
        return [str(a.get("kind")) for a in self.alerts()]

    def alerts(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            found = list(self.received)
        return [a for a in found if kind is None or a.get("kind") == kind]

    def _keep(self, raw: bytes) -> bool:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            if isinstance(body, dict):
                self.received.append(body)
                return True
            self.bad.append(raw.decode(errors="replace")[:500])
            return False

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                ok = sink._keep(self.rfile.read(length))
                self.send_response(200 if ok else 400)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return  # quiet: pytest shows stderr of failing tests

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="alert-sink", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


@contextmanager
def alert_sink() -> Iterator[AlertSink]:
    sink = AlertSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
