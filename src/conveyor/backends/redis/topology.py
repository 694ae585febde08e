"""Which Redis servers a store is on: the primary, its replicas and, behind a Sentinel
URL, the service and the sentinels; addresses only, never a password.

`RedisAdmin.topology` reads it (``INFO replication`` on the primary); `RedisAdmin.diagnostics`
shows it as a ``topology:`` line where there is more than one server, and warns when it
cannot keep the URL's promises (``wait_replicas`` above the replicas online, a URL that
names a replica); `RedisAdmin.servers` lists the same servers for the metrics
(`Topology.servers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from redis.exceptions import ResponseError

from conveyor.backends.capabilities import ServerInfo, ServerRole

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis

    from conveyor.backends.redis.urls import Target


@dataclass(frozen=True, slots=True)
class Replica:
    """One replica as its primary reports it."""

    address: str
    state: str  # "online", "wait_bgsave", "send_bulk"...
    lag: int  # seconds since its last acknowledgement


@dataclass(frozen=True, slots=True)
class Topology:
    """Where one store lives. ``role`` is the server's own word (``master``, ``slave``);
    ``None`` fields are unknown (the ACL user may not run INFO)."""

    kind: str  # "server", "sentinel" or "cluster"
    server: str  # the address Conveyor talks to: the primary, when all is well
    role: str | None
    replicas: tuple[Replica, ...] | None
    service: str = ""
    sentinels: tuple[str, ...] = ()

    @property
    def online(self) -> int:
        """Replicas the primary reports online."""
        return sum(r.state == "online" for r in self.replicas or ())

    def describe(self) -> str:
        """One line for ``conveyor status``: the servers and what each one is."""
        if self.kind == "sentinel":
            head = (
                f"Sentinel service {self.service!r} (sentinels {', '.join(self.sentinels)}): "
                f"primary {self.server}"
            )
        else:
            head = f"server {self.server} ({_role(self.role)})"
        if self.replicas is None:
            return f"{head}; replicas unknown (INFO is not allowed)"
        if not self.replicas:
            return f"{head}; no replicas"
        shown = ", ".join(f"{r.address} ({r.state}, lag {r.lag}s)" for r in self.replicas)
        return f"{head}; replicas {shown}"

    def servers(self) -> list[ServerInfo]:
        """Each server once, by role: the one Conveyor talks to, its replicas, the sentinels.

        The server is the ``primary`` unless it says it is a replica (a URL naming one);
        when INFO is not allowed its role is unknown and it counts as the primary, the
        server every change goes to, and its replicas are not listed. A shard of a
        Cluster store lists nothing here: the Cluster store lists its shards' nodes.
        """
        if self.kind == "cluster":
            return []
        out = [ServerInfo(_metric_role(self.role), self.server, self.service)]
        out += [ServerInfo("replica", r.address, self.service) for r in self.replicas or ()]
        out += [ServerInfo("sentinel", s, self.service) for s in self.sentinels]
        return out

    def to_json(self) -> dict[str, Any]:
        """The topology as plain data (addresses only)."""
        return {
            "kind": self.kind,
            "server": self.server,
            "role": self.role,
            "service": self.service or None,
            "sentinels": list(self.sentinels),
            "replicas": None
            if self.replicas is None
            else [{"address": r.address, "state": r.state, "lag": r.lag} for r in self.replicas],
        }


def _role(role: str | None) -> str:
    return {"master": "primary", "slave": "replica", None: "role unknown"}.get(role, str(role))


def _metric_role(role: str | None) -> ServerRole:
    return "replica" if role == "slave" else "primary"


def address(host: str | None, port: int | None) -> str:
    """``host:port``, with brackets around an IPv6 host."""
    host = host or "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def configured_address(target: Target) -> str:
    """The server a single-server URL names (a socket path for ``unix://``)."""
    parts = urlsplit(target.redis_url)
    if parts.scheme == "unix":
        return parts.path
    return address(parts.hostname or "localhost", parts.port or 6379)


async def read(client: AsyncRedis, target: Target) -> Topology:
    """Ask the server the client talks to (the primary, behind Sentinel) for its role
    and replicas."""
    server = configured_address(target)
    if target.kind == "cluster":  # a Cluster's nodes are shown by the Cluster store itself
        return Topology("cluster", server, None, None)
    if target.kind == "sentinel":
        server = address(*await client.connection_pool.get_master_address())  # type: ignore[attr-defined]
    try:
        info = await client.info("replication")
    except ResponseError:  # NOPERM: the user may not run INFO
        return _topology(target, server, None, None)
    replicas = []
    for n in range(int(info.get("connected_slaves", 0))):
        entry = info.get(f"slave{n}")
        if isinstance(entry, dict):
            replicas.append(
                Replica(
                    address(str(entry.get("ip")), int(entry.get("port", 0))),
                    str(entry.get("state", "?")),
                    int(entry.get("lag", 0)),
                )
            )
    return _topology(target, server, str(info.get("role")), tuple(replicas))


def _topology(
    target: Target, server: str, role: str | None, replicas: tuple[Replica, ...] | None
) -> Topology:
    return Topology(
        target.kind if target.kind == "sentinel" else "server",
        server,
        role,
        replicas,
        target.service,
        tuple(address(h, p) for h, p in target.hosts) if target.kind == "sentinel" else (),
    )


def warnings(target: Target, topology: Topology) -> list[str]:
    """What the servers cannot keep of the URL's promises, one line each."""
    out = []
    if topology.role == "slave":
        out.append(
            f"{topology.server} is a read-only replica: every change fails. Point the URL "
            "at the primary, or use redis+sentinel:// so Conveyor follows it."
        )
    wanted = target.wait_replicas
    if wanted and topology.replicas is not None and topology.online < wanted:
        out.append(
            f"wait_replicas={wanted} but the primary has {topology.online} replica(s) "
            f"online: every enqueue waits {target.wait_timeout_ms} ms and then fails. Bring "
            "a replica back or lower wait_replicas."
        )
    return out
