"""Sentinel over TLS on loopback: a primary and a replica that speak only TLS (replication
too) and one sentinel, also TLS-only, watching them as ``mymaster`` (quorum 1).

Every process asks its clients for a certificate signed by the throwaway CA and uses the
``node`` certificate (localhost and 127.0.0.1) to serve and to reach the others. Each is a
child of the test run, stopped by its PID.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from .sentinel_group import SERVICE
from .tls_support import Certificates, TlsServer

#: Replication and the sentinel's links to the servers use TLS too.
_TLS_LINKS = ("--tls-replication", "yes")
_QUICK_SYNC = ("--repl-diskless-sync-delay", "0")


class TlsSentinelGroup:
    """A TLS primary, a TLS replica and one TLS sentinel."""

    def __init__(self, directory: Path, certs: Certificates) -> None:
        self.certs = certs
        first = TlsServer(directory / "server-a", certs, *_TLS_LINKS, *_QUICK_SYNC, node=True)
        second = TlsServer(
            directory / "server-b", certs, *_TLS_LINKS, *_QUICK_SYNC,
            "--replicaof", "127.0.0.1", str(first.port), node=True,
        )  # fmt: skip
        self.servers = {first.port: first, second.port: second}
        conf = directory / "sentinel" / "sentinel.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            f"sentinel monitor {SERVICE} 127.0.0.1 {first.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 4000\n"
        )
        self.sentinel = TlsServer(
            conf.parent, certs, "--sentinel", *_TLS_LINKS, node=True, conf=conf
        )

    def start(self) -> None:
        """Start every process and wait until the sentinel knows the replica in sync."""
        for server in self.servers.values():
            server.start()
        self.sentinel.start()
        self.wait_settled(30)

    def stop(self) -> None:
        """Stop every process this group started."""
        self.sentinel.stop()
        for server in self.servers.values():
            server.stop()

    def url(self, query: str = "", ca: Path | None = None) -> str:
        """The ``rediss+sentinel://`` URL of the service with the CA (the right one unless
        ``ca``) and the client certificate, then ``query``."""
        c = self.certs
        tls = f"ssl_ca_certs={ca or c.ca}&ssl_certfile={c.client_cert}&ssl_keyfile={c.client_key}"
        more = f"&{query}" if query else ""
        return f"rediss+sentinel://localhost:{self.sentinel.port}/{SERVICE}/0?{tls}{more}"

    def primary_port(self) -> int | None:
        """The port the sentinel names as the primary."""
        with contextlib.suppress(Exception), self.sentinel.client() as c:
            found = c.execute_command("SENTINEL", "get-master-addr-by-name", SERVICE)
            return int(found[1]) if found else None
        return None

    def primary(self) -> TlsServer:
        """The server the sentinel names as the primary."""
        port = self.primary_port()
        assert port is not None, "the sentinel names no primary"
        return self.servers[port]

    def in_sync(self) -> bool:
        """Whether the primary has its replica online and the sentinel knows it."""
        port = self.primary_port()
        if port is None:
            return False
        try:
            with self.servers[port].client() as c:
                info = c.info("replication")
                entry = info.get("slave0")
                if info.get("role") != "master" or not isinstance(entry, dict):
                    return False
                if entry.get("state") != "online":
                    return False
            with self.sentinel.client() as c:
                replicas = c.execute_command("SENTINEL", "replicas", SERVICE)
                return any(
                    "down" not in r["flags"] and r.get("master-link-status") == "ok"
                    for r in replicas
                )
        except Exception:
            return False

    def wait_settled(self, timeout: float) -> None:
        """Wait until `in_sync`; fail with the sentinel's log tail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not self.in_sync():
            if time.monotonic() > deadline:
                log = (self.sentinel.dir / "redis.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"the TLS sentinel group did not settle in {timeout}s\n{log}")
            time.sleep(0.1)

    def wait_failover(self, old_port: int, timeout: float) -> None:
        """Wait until the sentinel names another primary and the old one is its replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port is not None and port != old_port:
                with contextlib.suppress(Exception), self.servers[old_port].client() as c:
                    if c.info("replication").get("role") == "slave":
                        return
            time.sleep(0.05)
        raise AssertionError(f"no failover within {timeout}s")
