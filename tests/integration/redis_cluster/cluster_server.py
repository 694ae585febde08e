"""A private Redis Cluster for the tests: six redis-servers (three primaries, three
replicas) on loopback, joined with ``redis-cli --cluster create --cluster-replicas 1``.

Each node is a `RedisServer` child process, so a test owns its PID and can SIGKILL exactly
that node. Skips locally when redis-server or redis-cli is missing; fails when ``CI`` is set.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from redis import Redis
from tests.integration.redis_server import RedisServer

#: Seconds the cluster may take to form (every node agreeing on the slots).
FORM_TIMEOUT = 60.0


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, both below 65536."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node (port and port + 10000)")


def redis_cli_binary() -> str:
    """The redis-cli path; skips (or fails under CI) when it is not installed."""
    path = shutil.which("redis-cli")
    if path:
        return path
    message = "redis-cli is not installed (scripts/redis.sh installs redis-server with it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class RedisClusterServers:
    """Six cluster-mode redis-servers: `start` forms the cluster, `stop` stops every node."""

    def __init__(self, directory: Path, nodes: int = 6) -> None:
        self.dir = directory
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
                "--maxmemory-policy",
                "noeviction",
            )
            for i in range(nodes)
        ]
        for node in self.nodes:
            node.port = cluster_port()
        self._cli = redis_cli_binary()

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,.../`` naming every node as a seed."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        return f"redis+cluster://{hosts}/"

    def start(self) -> None:
        """Start every node, create the cluster, and wait until all agree it is ok."""
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [
                    self._cli,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=FORM_TIMEOUT,
            )
            self.wait_ok(FORM_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def alive(self) -> list[RedisServer]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def wait_ok(self, timeout: float) -> None:
        """Wait until every live node says cluster_state:ok and knows all 16384 slots, and
        every live node that is not a primary with slots is a replica in sync: a replica
        that never synced would not be promoted when its primary dies."""
        deadline = time.monotonic() + timeout
        while True:
            alive = self.alive()
            # With every node up, each node's CLUSTER SLOTS must also list a replica for
            # every range: gossip can lag behind the replicas' own sync for a moment.
            whole = len(alive) == len(self.nodes)
            if (
                all(_cluster_ok(n) for n in alive)
                and all(_serving(n) for n in alive)
                and (not whole or all(_slots_list_replicas(n) for n in alive))
            ):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test cluster was not ok within {timeout:.0f} s")
            time.sleep(0.1)

    def primaries(self) -> list[RedisServer]:
        """The live nodes that are primaries now."""
        out = []
        for node in self.alive():
            with node.client() as c:
                if c.execute_command("ROLE")[0] == b"master":
                    out.append(node)
        return out

    def node_for_slot(self, slot: int) -> RedisServer:
        """The live primary serving ``slot`` now."""
        for node in self.primaries():
            with node.client() as c:
                for start, end, *_ in c.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end) and _owns(c, node.port, slot):
                        return node
        raise LookupError(f"no live primary serves slot {slot}")

    def node_id(self, node: RedisServer) -> str:
        """A node's cluster id."""
        with node.client() as c:
            return str(c.execute_command("CLUSTER", "MYID").decode())

    def stop(self) -> None:
        """Stop every node (each one by its own PID)."""
        for node in self.nodes:
            node.stop()


def _owns(client: Redis, port: int, slot: int) -> bool:
    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
        if int(start) <= slot <= int(end):
            return int(primary[1]) == port
    return False


def _cluster_ok(node: RedisServer) -> bool:
    try:
        with node.client() as c:
            info = c.execute_command("CLUSTER", "INFO").decode()
    except Exception:
        return False
    fields = dict(line.split(":", 1) for line in info.split() if ":" in line)
    return fields.get("cluster_state") == "ok" and fields.get("cluster_slots_ok") == "16384"


def migrate_slot(
    servers: RedisClusterServers, slot: int, dst: RedisServer, batch: int = 1000
) -> int:
    """Move ``slot`` to primary ``dst`` the way ``redis-cli --cluster reshard`` does
    (IMPORTING / MIGRATING, MIGRATE in batches, SETSLOT NODE everywhere); the keys moved."""
    src = servers.node_for_slot(slot)
    if src is dst:
        return 0
    src_id, dst_id = servers.node_id(src), servers.node_id(dst)
    moved = 0
    with src.client() as s, dst.client() as d:
        d.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        s.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := s.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            s.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 10_000, "KEYS", *keys)
            moved += len(keys)
        d.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        s.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    for node in servers.primaries():
        if node not in (src, dst):
            with node.client() as c:
                c.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    return moved


def keys_per_node(servers: RedisClusterServers, pattern: str) -> dict[int, int]:
    """Port -> keys matching ``pattern`` on each live primary."""
    out = {}
    for node in servers.primaries():
        with node.client() as c:
            out[node.port] = sum(1 for _ in c.scan_iter(match=pattern, count=1000))
    return out


def _serving(node: RedisServer) -> bool:
    """A primary holding slots, or a replica whose link to its primary is up."""
    try:
        with node.client() as c:
            info = c.info("replication")
            if info.get("role") == "slave":
                return bool(info.get("master_link_status") == "up")
            return any(
                int(primary[1]) == node.port
                for _, _, primary, *_ in c.execute_command("CLUSTER", "SLOTS")
            )
    except Exception:
        return False


def _slots_list_replicas(node: RedisServer) -> bool:
    """Whether ``node``'s CLUSTER SLOTS names at least one replica for every slot range."""
    try:
        with node.client() as c:
            ranges = c.execute_command("CLUSTER", "SLOTS")
    except Exception:  # a node still starting: not yet
        return False
    return bool(ranges) and all(len(r) >= 4 for r in ranges)
