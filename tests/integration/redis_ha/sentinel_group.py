"""One Redis primary, one replica and three sentinels on loopback, for the whole session.

Sentinel is tuned to fail over in about two seconds (down after 1 s, quorum 2). Every
process is a child of the test run, stopped by its PID at the end. `SentinelGroup.kill_primary`
SIGKILLs whichever server is the primary now and waits for the sentinels to promote the
other; `SentinelGroup.heal` restarts the killed one, which the sentinels turn into a replica
of the new primary, and waits until it is in sync.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from redis import Redis
from tests.integration.redis_server import RedisServer, free_port, redis_server_binary

SERVICE = "mymaster"


class SentinelProcess:
    """One ``redis-server CONF --sentinel`` child process."""

    def __init__(self, directory: Path, primary_port: int) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.dir}",
                    f"logfile {self.dir / 'sentinel.log'}",
                    f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2",
                    f"sentinel down-after-milliseconds {SERVICE} 1000",
                    f"sentinel failover-timeout {SERVICE} 4000",
                    f"sentinel parallel-syncs {SERVICE} 1",
                    "",
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the sentinel and wait until it answers."""
        self.proc = subprocess.Popen(
            [redis_server_binary(), str(self.conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(Exception), self.client() as c:
                if c.ping():
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = (self.dir / "sentinel.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"sentinel did not start on {self.port}:\n{log}")
            time.sleep(0.05)

    def client(self) -> Redis:
        """A client of this sentinel."""
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=3, decode_responses=True)

    def stop(self) -> None:
        """Stop the sentinel (SIGTERM, then SIGKILL after 10 s) and reap it."""
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


class SentinelGroup:
    """A primary, a replica and three sentinels watching them as service ``mymaster``."""

    def __init__(self, directory: Path) -> None:
        # A replica syncs at once (the default waits 5 s for others to share the transfer).
        quick = ("--repl-diskless-sync-delay", "0")
        first = RedisServer(directory / "server-a", *quick)
        second = RedisServer(
            directory / "server-b", *quick, "--replicaof", "127.0.0.1", str(first.port)
        )
        self.servers = {first.port: first, second.port: second}
        self.sentinels = [
            SentinelProcess(directory / f"sentinel-{n}", first.port) for n in range(3)
        ]
        self.killed: RedisServer | None = None

    # -- life ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start every process and wait until the sentinels know each other and the replica."""
        for server in self.servers.values():
            server.start()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_settled(timeout=30)

    def stop(self) -> None:
        """Stop every process this group started."""
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers.values():
            server.stop()

    # -- reading -------------------------------------------------------------------------
    def url(self, query: str = "") -> str:
        """The Sentinel URL of the service, with ``query`` appended."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0" + (f"?{query}" if query else "")

    def primary_port(self) -> int | None:
        """The port every answering sentinel names as the primary, if they agree."""
        seen = set()
        for sentinel in self.sentinels:
            with contextlib.suppress(Exception), sentinel.client() as c:
                found = c.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
                if found:
                    seen.add(int(found[1]))
        return seen.pop() if len(seen) == 1 else None

    def primary(self) -> RedisServer:
        """The server the sentinels name as the primary."""
        port = self.primary_port()
        assert port is not None, "the sentinels do not agree on a primary"
        return self.servers[port]

    def in_sync(self) -> bool:
        """Whether the primary reports one replica online and every sentinel knows two
        other sentinels and one healthy replica."""
        port = self.primary_port()
        if port is None:
            return False
        try:
            with self.servers[port].client() as c:
                info = c.info("replication")
                if info.get("role") != "master" or not _online(info):
                    return False
            for sentinel in self.sentinels:
                with sentinel.client() as c:
                    # redis-py reads these replies into dicts of strings.
                    state = c.execute_command("SENTINEL", "master", SERVICE)
                    if int(state["num-other-sentinels"]) != 2 or int(state["num-slaves"]) < 1:
                        return False
                    replicas = c.execute_command("SENTINEL", "replicas", SERVICE)
                    if not any(
                        "down" not in r["flags"] and r.get("master-link-status") == "ok"
                        for r in replicas
                    ):
                        return False
        except Exception:
            return False
        return True

    def wait_settled(self, timeout: float) -> None:
        """Wait until `in_sync`; fail with the sentinels' log tails after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not self.in_sync():
            if time.monotonic() > deadline:
                logs = "\n".join(
                    (s.dir / "sentinel.log").read_text(errors="replace")[-1500:]
                    for s in self.sentinels
                )
                raise AssertionError(f"the sentinel group did not settle in {timeout}s\n{logs}")
            time.sleep(0.1)

    # -- faults --------------------------------------------------------------------------
    def kill_primary(self) -> RedisServer:
        """SIGKILL the primary (no shutdown, no final write); the server killed."""
        victim = self.primary()
        victim.kill()
        self.killed = victim
        return victim

    def wait_failover(self, old_port: int, timeout: float) -> float:
        """Wait until the sentinels name another primary and it accepts writes; the
        seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            port = self.primary_port()
            if port is not None and port != old_port:
                with contextlib.suppress(Exception), self.servers[port].client() as c:
                    if c.info("replication").get("role") == "master":
                        return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"no failover within {timeout}s")

    def heal(self, timeout: float = 40) -> None:
        """Restart the killed server (the sentinels make it a replica of the new primary)
        and wait until the group is in sync again."""
        if self.killed is not None:
            self.killed.start()
            self.killed = None
        self.wait_settled(timeout)


def _online(info: dict[str, object]) -> bool:
    entry = info.get("slave0")
    return isinstance(entry, dict) and entry.get("state") == "online"
