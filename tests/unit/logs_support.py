"""A local HTTP server on 127.0.0.1 that records what Slack webhooks and Sentry receive."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """Requests the server has answered, and a gate that holds answers while it is shut."""

    url: str
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)


@contextmanager
def http_server(*, open_gate: bool = True) -> Iterator[Received]:
    """Serve on a free port; with ``open_gate=False`` every answer waits (a slow server)."""
    received = Received(url="")
    if open_gate:
        received.gate.set()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.gate.wait(10)
            received.requests.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client that timed out and left is what some tests are about

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    received.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        received.gate.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
