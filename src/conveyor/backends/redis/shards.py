"""How a ``redis+cluster://`` store is spread over a Redis Cluster: its shards, which shard
holds which queue and which limit key, and how a lease names its shard.

A shard is one ordinary Redis store (the layout in the package docstring) whose hash tag
is its own: ``{conveyor.0}``, ``{conveyor.1}``... Every script still touches one slot, so
each state change stays one atomic script, and the cluster spreads the shards over its
primaries. Shard ``i`` of ``N`` takes the first of ``<prefix>.<i>``, ``<prefix>.<i>.1``,
``<prefix>.<i>.2``... whose slot lies in the ``i``-th of ``N`` equal slot ranges: where
``redis-cli --cluster create`` puts the ``i``-th primary's slots, so ``N`` shards on ``N``
primaries start one per primary (and ``CLUSTER SETSLOT`` can move any of them later).

* A queue lives on one shard, ``crc32(queue) % N``: its jobs, its order and its priority
  lanes are all in one place.
* A rate or concurrency limit key lives on one shard, ``crc32(key) % N``.
* The scheduler's leader lease and the worker registry and history live on shard 0.
* A lease names its shard: the store hands out tokens ``<shard>:<token>``.

``N`` is ``?shards=N`` (default 1) and is recorded in the cluster (``{<prefix>}:cluster``)
when the store is first opened: a URL with another count is refused, since it would move
queues to other shards and strand their jobs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import parse_qsl, urlencode

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from conveyor.backends.globs import is_pattern
from conveyor.errors import ConfigError
from conveyor.job import Routing

DEFAULT_PREFIX = "conveyor"
#: The most shards one store may have (each is a few keys per queue, and a claim over
#: every queue asks each shard).
MAX_SHARDS = 64
#: Separates a lease token's shard number from the shard store's own token.
TOKEN_SEP = ":"  # noqa: S105 - a separator, not a secret


@dataclass(frozen=True)
class Layout:
    """A ``redis+cluster://`` URL read: the shard count, the shards' prefixes and URLs."""

    url: str
    prefix: str
    count: int

    @cached_property
    def tags(self) -> tuple[str, ...]:
        """Each shard store's prefix (its hash tag), shard 0 first."""
        return tuple(shard_tag(self.prefix, i, self.count) for i in range(self.count))

    @cached_property
    def urls(self) -> tuple[str, ...]:
        """Each shard store's ``redis+cluster://`` URL (the same servers, its own prefix)."""
        base, _, query = self.url.partition("?")
        rest = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in _OWN]
        return tuple(f"{base}?{urlencode([*rest, ('prefix', tag)])}" for tag in self.tags)

    @property
    def meta_key(self) -> str:
        """Where the cluster records this store's shard count."""
        return "{" + self.prefix + "}:cluster"

    def of_queue(self, queue: str) -> int:
        """The shard that holds ``queue``'s jobs."""
        return _bucket(queue, self.count)

    def of_key(self, key: str) -> int:
        """The shard that holds rate or concurrency limit ``key``."""
        return _bucket(key, self.count)

    def for_routing(self, routing: Routing) -> tuple[int, ...]:
        """The shards a claim with ``routing`` must ask: those of its queues, or every
        shard when it names no queues or a glob pattern."""
        if routing.queues is None or any(is_pattern(q) for q in routing.queues):
            return tuple(range(self.count))
        return tuple(sorted({self.of_queue(q) for q in routing.queues}))

    def token(self, shard: int, token: str) -> str:
        """The lease token the store hands out for a shard store's ``token``."""
        return f"{shard}{TOKEN_SEP}{token}"

    def split_token(self, token: str) -> tuple[int | None, str]:
        """A lease token's shard and the shard store's own token; ``None`` when the token
        names no shard of this store (it is then fenced wherever it is presented)."""
        head, sep, rest = token.partition(TOKEN_SEP)
        # ASCII digits only, and few: int() refuses "²" and numbers of thousands of digits.
        if sep and head.isascii() and head.isdecimal() and len(head) <= len(str(MAX_SHARDS)):
            shard = int(head)
            if shard < self.count and str(shard) == head:
                return shard, rest
        return None, token


_OWN = frozenset({"shards", "prefix"})


def parse_layout(url: str) -> Layout:
    """Read ``?shards=`` and ``?prefix=`` from a ``redis+cluster://`` URL."""
    from conveyor.backends.redis.urls import redact_url_multi

    query = dict(parse_qsl(url.partition("?")[2], keep_blank_values=True))
    prefix = query.get("prefix", DEFAULT_PREFIX)
    if not prefix or any(c in prefix for c in "{}"):
        raise ConfigError(
            f"invalid prefix={prefix!r} in {redact_url_multi(url)!r}: use a non-empty name "
            "without braces (it names the store's hash tags)"
        )
    text = query.get("shards", "1")
    if not text.isdigit() or not 1 <= int(text) <= MAX_SHARDS:
        raise ConfigError(
            f"shards={text!r} in {redact_url_multi(url)!r} is not a whole number from 1 to "
            f"{MAX_SHARDS}: give the number of stores to spread the queues over, usually the "
            "number of primaries (redis+cluster://host:7000/?shards=3)"
        )
    if query.get("wait_replicas", "0").strip() not in ("", "0"):
        # redis-py sends a cluster's WAIT to every node on connections of its own, so it
        # would not wait for the write it follows: refused rather than promised falsely.
        raise ConfigError(
            f"wait_replicas in {redact_url_multi(url)!r} is not supported on a Redis Cluster "
            "yet: remove it (a failover can lose the last writes a primary acknowledged, "
            "as docs/redis.md says), or use redis+sentinel:// where it is"
        )
    return Layout(url, prefix, int(text))


def shard_tag(prefix: str, shard: int, count: int) -> str:
    """Shard ``shard``'s hash tag: the first candidate whose slot is in its slot range."""
    low = shard * REDIS_CLUSTER_HASH_SLOTS // count
    high = (shard + 1) * REDIS_CLUSTER_HASH_SLOTS // count
    for n in range(100_000):
        tag = f"{prefix}.{shard}" if n == 0 else f"{prefix}.{shard}.{n}"
        if low <= key_slot(("{" + tag + "}").encode()) < high:
            return tag
    return f"{prefix}.{shard}"  # unreachable in practice: some candidate always lands


def _bucket(name: str, count: int) -> int:
    return zlib.crc32(name.encode("utf-8", "surrogatepass")) % count


#: What a cluster store's ACL user needs beyond a one-server store's (`acl.acl_line`): the
#: shard count (once), and what redis-py's cluster client runs to learn the cluster.
CLUSTER_COMMANDS = ("hsetnx", "cluster|slots", "command")


def acl_line(
    user: str = "conveyor", prefix: str = DEFAULT_PREFIX, *, login: str = "PASSWORD"
) -> str:
    """``ACL SETUSER`` for a user that may run one ``redis+cluster://`` store and nothing
    else: the one-server line, with the shards' key patterns and `CLUSTER_COMMANDS`. ACL
    users are per node: run it on every node of the cluster."""
    from conveyor.backends.redis import acl

    line = acl.acl_line(user, prefix, login=login)
    own = f"~{{{prefix}}}:*"
    line = line.replace(own, f"{own} ~{{{prefix}.*}}:*")
    return line + "".join(f" +{c}" for c in CLUSTER_COMMANDS)
