"""The slack channel: records go to an incoming webhook from a background thread.

``emit`` only formats the record and puts the line on a bounded queue, so the caller (a
job, the worker loop) never waits on the network. The thread sends what has queued up in
one message per batch, with an HTTP timeout. A full queue drops the line and counts it; a
failing webhook is reported on stderr once per outage, showing only the webhook's scheme and
host (the rest of the URL is the secret). Nothing a message or the webhook does can stop
the thread: each batch is sent inside its own catch-all.

The URL is checked when the handler is made (and when settings are read): an incoming
webhook is ``https://``; plain ``http://`` is accepted only to a loopback host (a local
relay, tests).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
import urllib.request
from urllib.parse import urlsplit

from conveyor.errors import ConfigError
from conveyor.redaction import origin
from conveyor.settings import webhook_problem

_STOP = object()


class SlackHandler(logging.Handler):
    """Post log lines to a Slack incoming webhook off the caller's path, in batches."""

    def __init__(
        self,
        webhook_url: str,
        *,
        username: str = "Conveyor",
        emoji: str = ":boom:",
        timeout: float = 5.0,
        batch_seconds: float = 1.0,
        batch_size: int = 20,
        max_queue: int = 1000,
    ) -> None:
        problem = webhook_problem(webhook_url)
        if problem is not None:
            raise ConfigError(problem)
        super().__init__()
        self._url = webhook_url.strip()
        self._shown = origin(self._url)
        self.username = username
        self.emoji = emoji
        self.timeout = timeout
        self.batch_seconds = batch_seconds
        self.batch_size = batch_size
        self.dropped = 0
        """Lines dropped because the queue was full (Slack slow or unreachable)."""
        self.sent_batches = 0
        self.failures = 0
        self._failing = False
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="conveyor-slack", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<SlackHandler {logging.getLevelName(self.level)}>"  # never the URL

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted line; drop it (and count) when the queue is full."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 (a handler never raises into the caller)
            self.handleError(record)
            return
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (waiting at most ``timeout`` seconds), then stop the thread."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=0.1)
            wait = self.timeout + self.batch_seconds if timeout is None else timeout
            self._thread.join(wait)
        super().close()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._collect(str(first))
            try:
                self._send(batch)
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any batch
                self._failed(exc)
            if stop:
                return

    def _collect(self, first: str) -> tuple[list[str], bool]:
        """Lines that arrive within ``batch_seconds`` of the first go in the same message."""
        batch = [first]
        deadline = time.monotonic() + self.batch_seconds
        while len(batch) < self.batch_size:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(str(item))
        return batch, False

    def _send(self, lines: list[str]) -> None:
        body = json.dumps(
            {
                "text": "\n".join(lines),
                "username": self.username,
                "icon_emoji": self.emoji,
            }
        ).encode()
        request = urllib.request.Request(  # noqa: S310 (the URL is the configured webhook)
            self._url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            response.read()
        self.sent_batches += 1
        self._failing = False

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self._failing:  # once per outage: a dead webhook must not flood stderr
            return
        self._failing = True
        # Only the exception's type and a reason without the URL: urllib quotes the full
        # URL in some messages ("unknown url type: ..."), and the path is the secret.
        reason = getattr(exc, "code", None) or getattr(exc, "reason", None) or exc
        text = str(reason).replace(self._url, self._shown)
        secret_path = urlsplit(self._url).path
        if len(secret_path) > 1:
            text = text.replace(secret_path, "/***")
        with contextlib.suppress(Exception):
            sys.stderr.write(
                f"conveyor: the slack log channel could not post to its webhook "
                f"{self._shown} ({type(exc).__name__}: {text}); lines are dropped until "
                "it recovers\n"
            )
