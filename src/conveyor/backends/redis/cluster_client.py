"""redis-py's cluster clients for ``redis+cluster://`` URLs.

``redis+cluster://[user:password@]host:port[,host:port...]/[0]?options``: every
``host:port`` is a seed node (the client learns the rest from ``CLUSTER SLOTS``); the
options a single-server URL takes (``socket_timeout``, ...) apply to every node. The
cluster client follows ``MOVED`` and ``ASK`` redirections and, after a failover, finds
the promoted replica by asking the cluster again: its own retries (with back-off) are
what carry a call across a failover, so no single-node retry policy is imposed here.

redis-py refuses ``SCRIPT LOAD`` inside a cluster pipeline; `ClusterClient.pipeline`
gives one that accepts it and sends it to every primary, so the Redis backend loads its
scripts the same way on one server and on a cluster.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.cluster import ClusterNode as SyncClusterNode
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.connection import parse_url as redis_parse_url

from conveyor.backends.redis.urls import Target
from conveyor.errors import ConfigError

#: What redis-py reads from one node's URL that a cluster client does not take.
_NODE_ONLY = frozenset({"host", "port", "db", "path", "connection_class"})


def client_options(target: Target) -> dict[str, Any]:
    """The connection options of a ``redis+cluster://`` URL, as cluster-client keywords.

    `urls.parse_url` has put the user, password and options on ``target.redis_url`` (with
    the first seed node as its host); redis-py reads them there as for one server. An
    option the cluster client does not take is refused, naming it.
    """
    try:
        options = dict(redis_parse_url(target.redis_url))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigError(f"the Redis Cluster URL {target.display!r} is invalid: {exc}") from None
    accepted = _accepted(RedisCluster.__init__)
    unknown = sorted(k for k in options if k not in accepted and k not in _NODE_ONLY)
    if unknown:
        raise ConfigError(
            f"the Redis Cluster URL {target.display!r} has options a cluster client does not "
            f"take: {', '.join(unknown)}; remove them"
        )
    return {k: v for k, v in options.items() if k not in _NODE_ONLY}


@cache
def _accepted(init: Callable[..., Any]) -> frozenset[str]:
    return frozenset(inspect.signature(init).parameters) - {"self"}


def _with_defaults(target: Target, init: Callable[..., Any], defaults: dict[str, Any]) -> Any:
    options = {k: v for k, v in defaults.items() if k in _accepted(init)}
    options.update(client_options(target))
    return options


def async_cluster_client(target: Target, **defaults: Any) -> ClusterClient:
    """An asyncio cluster client for ``target``; ``defaults`` (timeouts) yield to the URL's."""
    options = _with_defaults(target, RedisCluster.__init__, defaults)
    nodes = [ClusterNode(host, port) for host, port in target.hosts]
    return ClusterClient(startup_nodes=nodes, **options)


def sync_cluster_client(target: Target, **defaults: Any) -> SyncRedisCluster:
    """A thread-safe sync cluster client for ``target``, for `enqueue_sync` and `get_sync`."""
    options = _with_defaults(target, SyncRedisCluster.__init__, defaults)
    nodes = [SyncClusterNode(host, port) for host, port in target.hosts]  # type: ignore[no-untyped-call]
    return SyncRedisCluster(startup_nodes=nodes, **options)


class ClusterClient(RedisCluster):
    """redis-py's asyncio cluster client whose pipelines also take ``SCRIPT LOAD``."""

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        """A non-transactional pipeline in which ``script_load`` goes to every primary."""
        if transaction or shard_hint:
            return super().pipeline(transaction, shard_hint)
        return ScriptLoadingPipeline(self)  # type: ignore[abstract]


class ScriptLoadingPipeline(ClusterPipeline):
    """A cluster pipeline that sends queued ``SCRIPT LOAD`` calls to every primary first.

    Scripts are loaded before the pipeline's other commands run, so an ``EVALSHA`` queued
    after the load finds its script; each load's reply (the SHA1) keeps its place.
    """

    def __init__(self, client: ClusterClient) -> None:
        super().__init__(client, False)
        self._loads: dict[int, str] = {}
        self._client = client

    def script_load(self, script: Any) -> ScriptLoadingPipeline:  # type: ignore[override]
        """Queue ``SCRIPT LOAD`` (sent to every primary when the pipeline executes)."""
        self._loads[len(self) + len(self._loads)] = script
        return self

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        """Load the queued scripts on every primary, then run the other commands."""
        loads, self._loads = self._loads, {}
        shas = {at: await self._client.script_load(source) for at, source in loads.items()}
        replies = await super().execute(raise_on_error, allow_redirections) if len(self) else []
        rest = iter(replies)
        return [shas[at] if at in shas else next(rest) for at in range(len(shas) + len(replies))]
