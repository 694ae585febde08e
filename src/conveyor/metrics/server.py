"""``/metrics``, ``/livez`` and ``/readyz`` on one port, from a stdlib HTTP server thread.

A scrape or a probe never touches the event loop or the backend: it reads the worker's
counters and the refresher's cached view, so a busy worker still answers.

* ``/livez``: 200 while the event loop ticks (the refresher's timestamp is recent). A loop
  stuck for `STALL_SECONDS` (a blocking call in an ``async def``) gets 503. The backend is
  deliberately not consulted: an outage must not make Kubernetes restart every worker.
* ``/readyz``: 200 when the backend answered the last read in time and the worker's
  heartbeat (its registry entry) is fresh; 503 with the reasons otherwise.
* ``/debug/stacks`` and ``/debug/profile``: `conveyor.debug`, behind its access rules.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, ClassVar, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from conveyor.debug import DebugRoutes
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.metrics.refresher import Refresher
    from conveyor.metrics.source import MetricsSource

log = logging.getLogger("conveyor.metrics")

#: Seconds without an event loop tick before ``/livez`` fails.
STALL_SECONDS = 30.0


class ProbeSet(Protocol):
    """What ``/livez`` and ``/readyz`` ask: the reasons for failing (empty: pass)."""

    def live(self) -> list[str]:
        """Why the process is not live."""
        ...

    def ready(self) -> list[str]:
        """Why the process is not ready."""
        ...


class Probes:
    """The liveness and readiness verdicts, each with the reasons when it fails."""

    def __init__(self, worker: MetricsSource, refresher: Refresher) -> None:
        self.worker = worker
        self.refresher = refresher

    def live(self) -> list[str]:
        """Why the process is not live (empty: it is)."""
        stalled = time.monotonic() - self.refresher.loop_tick
        if stalled > STALL_SECONDS:
            return [f"the event loop has not run for {stalled:.0f}s"]
        return []

    def ready(self) -> list[str]:
        """Why the worker is not ready (empty: it is)."""
        problems = self.live()
        if self.worker.stop_reason is not None:
            problems.append(f"the worker is stopping: {self.worker.stop_reason}")
        if not self.refresher.backend_fresh():
            problems.append(f"backend unreachable: {self.refresher.error or 'no recent read'}")
        age = self.worker.heartbeat_age()
        if age is None:
            problems.append("no heartbeat has reached the worker registry yet")
        elif age > self.worker.heartbeat_ttl():
            problems.append(f"heartbeat stale: last registry refresh {age:.1f}s ago")
        return problems


class _Handler(BaseHTTPRequestHandler):
    registry: ClassVar[CollectorRegistry]
    probes: ClassVar[ProbeSet]
    debug: ClassVar[DebugRoutes]

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/debug" or path.startswith("/debug/"):
            reply = self.debug.handle(
                path,
                query,
                host_header=self.headers.get("Host"),
                authorization=self.headers.get("Authorization"),
            )
            self._send(reply.status, reply.body, reply.content_type)
        elif path == "/metrics":
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path in ("/livez", "/readyz"):
            problems = self.probes.live() if path == "/livez" else self.probes.ready()
            body = "\n".join(problems) if problems else "ok"
            self._send(503 if problems else 200, (body + "\n").encode())
        else:
            self._send(404, b"not found: try /metrics, /livez, /readyz or /debug\n")

    def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics http: " + format, *args)


class MetricsServer:
    """Serves a registry and the probes on ``host:port`` from a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        probes: ProbeSet,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        flag: str = "--metrics-port",
        debug_token: str | None = None,
    ) -> None:
        #: ``/debug/*``: guarded by ``debug_token`` (default: ``$CONVEYOR_DEBUG_TOKEN``, so
        #: a supervisor's endpoint follows it too), or open to loopback requests when
        #: ``host`` is a loopback address (`conveyor.debug.routes`). A weak token fails here.
        self.debug = (
            DebugRoutes(host=host, token=debug_token) if debug_token else DebugRoutes.from_env(host)
        )
        handler = type(
            "Handler",
            (_Handler,),
            {"registry": registry, "probes": probes, "debug": self.debug},
        )
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); pick a free "
                f"{flag}, or 0 for any"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="conveyor-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The host and port actually bound (useful with port 0)."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start answering on the server thread.

        Called on a running event loop (a worker), ``/debug/stacks`` lists that loop's tasks.
        """
        try:
            self.debug.loop = asyncio.get_running_loop()
        except RuntimeError:
            self.debug.loop = None  # a supervisor: threads only
        self._thread.start()
        log.info("serving /metrics, /livez and /readyz on http://%s:%d", *self.address)

    def stop(self) -> None:
        """Stop answering and close the socket (blocks until the thread ends)."""
        if self._thread.is_alive():  # shutdown() would wait forever for a loop never run
            self._server.shutdown()
        self._server.server_close()
