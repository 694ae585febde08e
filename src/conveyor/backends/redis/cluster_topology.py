"""Where a ``redis+cluster://`` store's shards are: each shard's slot, the primary serving
it and that primary's replicas (addresses only, never a password), read from the cluster
(``CLUSTER SLOTS``). ``conveyor status`` shows one ``topology:`` line per shard, and warns
when a shard has no replica or two shards share a primary; the metrics list the same nodes
(`ShardPlace.servers`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot

from conveyor.backends.capabilities import TOPOLOGY_PREFIX, ServerInfo
from conveyor.backends.redis.shards import Layout


@dataclass(frozen=True, slots=True)
class ShardPlace:
    """One shard: its hash tag, its slot, and the nodes serving that slot now."""

    shard: int
    tag: str
    slot: int
    primary: str | None  # None: no node serves the slot (the cluster is down there)
    replicas: tuple[str, ...]

    def describe(self) -> str:
        """One ``topology:`` line for ``conveyor status``."""
        where = f"primary {self.primary}" if self.primary else "no primary serves it"
        copies = ", ".join(self.replicas) if self.replicas else "none"
        return (
            f"{TOPOLOGY_PREFIX}Redis Cluster shard {self.shard} {{{self.tag}}} (slot {self.slot}): "
            f"{where}; replicas {copies}"
        )

    def servers(self) -> list[ServerInfo]:
        """The shard's primary (none while no node serves its slot) and its replicas."""
        out = [ServerInfo("shard-primary", self.primary, shard=self.shard)] if self.primary else []
        out += [ServerInfo("shard-replica", r, shard=self.shard) for r in self.replicas]
        return out


def _address(node: Any) -> str:
    host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
    return f"[{host}]:{int(node[1])}" if ":" in host else f"{host}:{int(node[1])}"


def places(layout: Layout, slots: Any) -> list[ShardPlace]:
    """Each shard's place, from redis-py's ``CLUSTER SLOTS`` reply: a mapping of
    ``(start, end)`` to ``{"primary": (host, port), "replicas": [(host, port), ...]}``."""
    out = []
    for shard, tag in enumerate(layout.tags):
        slot = key_slot(("{" + tag + "}").encode())
        primary: str | None = None
        replicas: tuple[str, ...] = ()
        for (start, end), nodes in dict(slots).items():
            if int(start) <= slot <= int(end):
                primary = _address(nodes["primary"])
                replicas = tuple(_address(r) for r in nodes.get("replicas", ()))
        out.append(ShardPlace(shard, tag, slot, primary, replicas))
    return out


def warnings(found: list[ShardPlace]) -> list[str]:
    """What the shards' placement cannot keep, one line each."""
    out = []
    by_primary: dict[str, list[int]] = {}
    for place in found:
        if place.primary is None:
            out.append(
                f"no node serves shard {place.shard}'s slot {place.slot}: its queues cannot "
                "be used until the cluster covers it again (CLUSTER INFO, redis-cli --cluster "
                "check)"
            )
            continue
        by_primary.setdefault(place.primary, []).append(place.shard)
        if not place.replicas:
            out.append(
                f"shard {place.shard}'s primary {place.primary} has no replica: if it fails, "
                "its jobs are unavailable until it is back (add a replica with "
                "redis-cli --cluster add-node --cluster-slave)"
            )
    for primary, shards in by_primary.items():
        if len(shards) > 1:
            listed = " and ".join(str(s) for s in shards)
            out.append(
                f"shards {listed} share the primary {primary}: they use one core between them; "
                "move one shard's slot to another primary to spread the load (docs/redis.md)"
            )
    return out
