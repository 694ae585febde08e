"""A private redis-server for one test: its own port, directory and settings.

Started as a child process (not daemonized) so the test owns its PID and can stop, kill,
pause or restart exactly that server. Skips locally when redis-server is missing; fails
when ``CI`` is set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The redis-server path; skips (or fails under CI) when it is not installed."""
    path = shutil.which("redis-server")
    if path:
        return path
    message = "redis-server is not installed (scripts/redis.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class RedisServer:
    """One redis-server on 127.0.0.1; `start` and `stop` may be called again and again."""

    def __init__(self, directory: Path, *args: str, password: str | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._binary = redis_server_binary()

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> Redis:
        """A plain redis-py client, for setting up and inspecting the server."""
        return Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            socket_timeout=5,
            socket_connect_timeout=2,
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[RedisServer]:
        """Started for the block and stopped after it, also when the block fails."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (appendonly yes unless overridden) and wait until it answers."""
        args = [
            self._binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            str(self.dir / "redis.log"),
            *self.args,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as c:
                    if c.ping():
                        return
            except Exception:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not start on {self.port}:\n{log}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server gracefully (it writes its AOF), or kill it after 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no final AOF write) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None
