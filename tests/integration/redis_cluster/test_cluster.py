"""What a ``redis+cluster://`` store does beyond the contract: shards on different nodes,
its URL's checks, leases naming their shard, wake-ups from every shard, and a slot moved
to another primary while the store is in use (MOVED followed)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from redis.crc import key_slot
from tests.integration.cli_support import conveyor_cli

from conveyor.backends import create_backend
from conveyor.backends.redis.cluster import ClusterBackend
from conveyor.backends.redis.shards import parse_layout, shard_tag
from conveyor.errors import BackendError, ConfigError
from conveyor.job import JobQuery, Lease, NewJob, Priority, Routing, State

from .cluster_server import RedisClusterServers, keys_per_node, migrate_slot
from .conftest import fresh_url

pytestmark = pytest.mark.timeout(120)

LEASE = 30.0


def job(queue: str) -> NewJob:
    return NewJob(
        task="app.work",
        queue=queue,
        priority=Priority.NORMAL,
        payload=b"[]",
        max_retries=3,
        timeout=60.0,
    )


async def opened(url: str) -> ClusterBackend:
    store = create_backend(url)
    assert isinstance(store, ClusterBackend)
    await store.open()
    return store


async def drain(store: ClusterBackend, count: int) -> set[str]:
    """Claim and complete until ``count`` jobs are done (bounded); their ids."""
    done: set[str] = set()
    for _ in range(200):
        if len(done) >= count:
            break
        for record in await store.claim("w", Routing(), 100, LEASE, wait=0.5):
            assert record.lease_token is not None
            assert await store.complete(Lease(record.id, record.lease_token), None)
            done.add(record.id)
    return done


def queue_on(store: ClusterBackend, shard: int) -> str:
    """A queue name the store keeps on ``shard``."""
    return next(f"q{i}" for i in range(1000) if store.layout.of_queue(f"q{i}") == shard)


async def test_queues_spread_over_shards_on_different_primaries(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given a store of three shards on a cluster of three primaries
    url = fresh_url(redis_cluster, 3)
    store = await opened(url)
    try:
        # When jobs of twelve queues are enqueued
        queues = [f"queue-{i}" for i in range(12)]
        results = await store.enqueue([job(q) for q in queues for _ in range(5)])

        # Then the queues use every shard, and the shards' keys sit on all three primaries
        assert {store.layout.of_queue(q) for q in queues} == {0, 1, 2}
        prefix = parse_layout(url).prefix
        per_node = keys_per_node(redis_cluster, "{" + prefix + ".*")
        assert sum(1 for n in per_node.values() if n) == 3, per_node
        # and every job is found by id, runs once, and ends succeeded.
        assert await drain(store, 60) == {r.id for r in results}
        stats = await store.admin.stats()
        assert sum(row.counts.get(State.SUCCEEDED, 0) for row in stats) == 60
    finally:
        await store.close()


async def test_a_job_is_on_its_queue_shard_only(redis_cluster: RedisClusterServers) -> None:
    store = await opened(fresh_url(redis_cluster, 3))
    try:
        queue = queue_on(store, 2)
        [result] = await store.enqueue([job(queue)])

        found = [await shard.get(result.id) for shard in store.stores]

        assert [f is not None for f in found] == [False, False, True]
    finally:
        await store.close()


def test_each_shard_tag_lies_in_its_slot_range() -> None:
    for count in (1, 2, 3, 5):
        for shard in range(count):
            slot = key_slot(("{" + shard_tag("conveyor", shard, count) + "}").encode())
            assert shard * 16384 // count <= slot < (shard + 1) * 16384 // count


async def test_a_different_shard_count_is_refused(redis_cluster: RedisClusterServers) -> None:
    # Given a store created with three shards
    url = fresh_url(redis_cluster, 3)
    await (await opened(url)).close()

    # When it is opened with two, it is refused, naming the count to use
    other = create_backend(url.replace("shards=3", "shards=2"))
    with pytest.raises(ConfigError, match=r"created with shards=3.*use \?shards=3"):
        await other.open()
    await other.close()

    # and a recorded count that is not a number is named, not a ValueError.
    layout = parse_layout(url)
    garbled = create_backend(url)
    assert isinstance(garbled, ClusterBackend)
    client = garbled.stores[0].connection.client()
    await client.hset(layout.meta_key, "shards", "three")
    with pytest.raises(ConfigError, match=r"field shards\) is 'three', not a number: set it back"):
        await garbled.open()
    await garbled.close()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("shards=0", "shards='0' .* not a whole number from 1 to 64"),
        ("shards=many", "shards='many'"),
        ("shards=2&prefix=a{b}", "invalid prefix"),
        ("shards=2&wait_replicas=1", "wait_replicas .* not supported on a Redis Cluster"),
    ],
)
def test_bad_cluster_options_are_one_clear_error(
    redis_cluster: RedisClusterServers, query: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        create_backend(f"{redis_cluster.url}?{query}")


def test_a_database_other_than_0_is_refused(redis_cluster: RedisClusterServers) -> None:
    with pytest.raises(ConfigError, match="only database 0"):
        create_backend(redis_cluster.url + "2?shards=2")


async def test_an_option_the_cluster_client_does_not_take_is_named(
    redis_cluster: RedisClusterServers,
) -> None:
    store = create_backend(f"{redis_cluster.url}?shards=2&prefix=x&single_connection_client=1")
    with pytest.raises(ConfigError, match="does not take: single_connection_client"):
        await store.open()
    await store.close()


async def test_a_lease_naming_another_shard_is_fenced(redis_cluster: RedisClusterServers) -> None:
    # Given a running job on shard 1
    store = await opened(fresh_url(redis_cluster, 3))
    try:
        await store.enqueue([job(queue_on(store, 1))])
        [record] = await store.claim("w", Routing(), 1, LEASE)
        assert record.lease_token is not None and record.lease_token.startswith("1:")
        inner = record.lease_token.partition(":")[2]

        # When its token is presented naming another shard, or no shard, it is fenced
        assert not await store.complete(Lease(record.id, f"2:{inner}"), None)
        assert not await store.complete(Lease(record.id, inner), None)
        assert await store.admin.counters() == {"fenced": 2, "recovered": 0, "poisoned": 0}

        # and the real lease still completes it.
        assert await store.complete(Lease(record.id, record.lease_token), None)
        done = await store.get(record.id)
        assert done is not None and done.state is State.SUCCEEDED
    finally:
        await store.close()


async def test_a_waiting_claim_wakes_for_a_job_on_any_shard(
    redis_cluster: RedisClusterServers,
) -> None:
    store = await opened(fresh_url(redis_cluster, 3))
    other = store.clone()
    await other.open()
    try:
        for shard in range(3):
            waiter = asyncio.create_task(store.claim("w", Routing(), 10, LEASE, wait=20))
            await asyncio.sleep(0.2)
            [result] = await other.enqueue([job(queue_on(store, shard))])
            claimed = await asyncio.wait_for(waiter, 5)
            assert [j.id for j in claimed] == [result.id]
    finally:
        await other.close()
        await store.close()


async def test_moved_is_followed_after_a_slot_moves_while_jobs_flow(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given a store in use: its clients know where every shard's slot is
    url = fresh_url(redis_cluster, 3)
    store = await opened(url)
    acknowledged: list[str] = []
    stop = asyncio.Event()

    async def produce() -> None:
        n = 0
        while not stop.is_set():
            batch = [job(f"q{(n + i) % 6}") for i in range(10)]
            acknowledged.extend(r.id for r in await store.enqueue(batch))
            n += 10
            await asyncio.sleep(0.01)

    done: set[str] = set()

    async def work() -> None:
        while not stop.is_set() or len(done) < len(acknowledged):
            for record in await store.claim("w", Routing(), 50, LEASE, wait=0.2):
                assert record.lease_token is not None
                assert await store.complete(Lease(record.id, record.lease_token), None)
                done.add(record.id)

    try:
        flow = [asyncio.create_task(produce()), asyncio.create_task(work())]
        await asyncio.sleep(0.5)

        # When shard 1's slot is moved to another primary while jobs are enqueued and run,
        # ten keys at a time (as redis-cli --cluster reshard does), so the shard is split
        # over two nodes for a while
        tag = store.layout.tags[1]
        slot = key_slot(("{" + tag + "}").encode())
        source = redis_cluster.node_for_slot(slot)
        target = next(n for n in redis_cluster.primaries() if n is not source)
        moved = await asyncio.to_thread(migrate_slot, redis_cluster, slot, target, 10)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*flow), 60)

        # Then the keys are on the new primary, the handle followed them (MOVED), and
        # every acknowledged job ran once and succeeded
        assert moved > 0
        assert redis_cluster.node_for_slot(slot) is target
        assert done == set(acknowledged)
        stats = await store.admin.stats()
        assert sum(r.counts.get(State.SUCCEEDED, 0) for r in stats) == len(acknowledged)
        assert {s for r in stats for s in r.counts} == {State.SUCCEEDED}
    finally:
        stop.set()
        await store.close()


async def test_status_shows_where_each_shard_is(
    redis_cluster: RedisClusterServers, tmp_path: Path
) -> None:
    # Given a store of three shards on three primaries, each with a replica
    url = fresh_url(redis_cluster, 3)
    store = await opened(url)
    try:
        # When its diagnostics are read
        lines = await store.admin.diagnostics()
    finally:
        await store.close()

    # Then one topology line per shard names its slot, primary and replica, no secrets
    shown = [line for line in lines if line.startswith("topology: Redis Cluster shard")]
    assert len(shown) == 3, lines
    primaries = set()
    for shard, line in enumerate(shown):
        slot = key_slot(("{" + store.layout.tags[shard] + "}").encode())
        node = redis_cluster.node_for_slot(slot)
        assert f"shard {shard} " in line and f"(slot {slot})" in line
        assert f"primary 127.0.0.1:{node.port}; replicas 127.0.0.1:" in line, line
        primaries.add(node.port)
    assert len(primaries) == 3
    assert not any("share the primary" in line or "no replica" in line for line in lines)

    # and conveyor status prints them as facts about the store.
    run = conveyor_cli(tmp_path, {**os.environ, "CONVEYOR_URL": url})
    done = await asyncio.to_thread(run, "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("topology: Redis Cluster shard") == 3, done.stdout


def test_a_lease_token_names_its_shard_and_nothing_else_passes_for_one() -> None:
    layout = parse_layout("redis+cluster://h:7000/?shards=3")

    assert layout.split_token(layout.token(2, "abc.1")) == (2, "abc.1")
    # No shard, a shard out of range, or one written another way: not this store's token.
    for token in ("abc.1", "3:abc.1", "02:abc.1", "-1:abc", ":abc", "x:abc", "²:abc", "\u0661:a"):
        assert layout.split_token(token) == (None, token)
    assert layout.split_token("9" * 5000 + ":abc")[0] is None


async def test_a_garbled_lease_token_is_fenced_not_an_error(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given a running job
    store = await opened(fresh_url(redis_cluster, 3))
    try:
        await store.enqueue([job("q1")])
        [record] = await store.claim("w", Routing(), 1, LEASE)
        assert record.lease_token is not None

        # When tokens that are not this store's are presented (digits int() refuses, a
        # number too long for it, nothing at all), each is fenced, none raises
        inner = record.lease_token.partition(":")[2]
        for token in (f"²:{inner}", "9" * 5000 + f":{inner}", ""):
            lease = Lease(record.id, token)
            assert await store.extend([lease], LEASE) == [False]
            assert not await store.complete(lease, None)

        # and the job is still running under its real lease.
        assert await store.complete(Lease(record.id, record.lease_token), None)
    finally:
        await store.close()


async def test_a_batch_whose_shard_fails_stores_the_other_shards_jobs_then_raises(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given a store whose shard 1 cannot take an enqueue (its counter is of the wrong type)
    store = await opened(fresh_url(redis_cluster, 3))
    try:
        broken = store.stores[1]
        await broken.connection.client().hset(broken.keys.seq, "x", "1")
        jobs = [job(queue_on(store, shard)) for shard in (0, 1, 2) for _ in range(3)]
        others = {j.id for j in jobs if store.layout.of_queue(j.queue) != 1}

        # When a batch over all three shards is enqueued, it raises the shard's error
        with pytest.raises(BackendError):
            await store.enqueue(jobs)
        # only after every other shard stored its part (read without yielding to the loop)
        assert {j.id for j in jobs if store.get_sync(j.id) is not None} == others

        # and so does the synchronous enqueue, whose shards are tried one after another.
        later = [job(queue_on(store, shard)) for shard in (2, 1, 0)]
        with pytest.raises(BackendError):
            await asyncio.to_thread(store.enqueue_sync, later)
        stored = {j.id for j in later if await store.get(j.id) is not None}
        assert stored == {later[0].id, later[2].id}

        # Once the shard is repaired, the same batch again stores the rest, nothing twice.
        await broken.connection.client().delete(broken.keys.seq)
        results = await store.enqueue(jobs)
        assert [r.id for r in results] == [j.id for j in jobs]
        assert sum(sum(r.counts.values()) for r in await store.admin.stats()) == 9 + 2
    finally:
        await store.close()


async def test_recover_sweeps_the_other_shards_while_one_fails(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given jobs whose leases expired on shards 0 and 2, and shard 1 that cannot be swept
    store = await opened(fresh_url(redis_cluster, 3))
    try:
        await store.enqueue([job(queue_on(store, 0)), job(queue_on(store, 2))])
        assert len(await store.claim("w", Routing(), 10, 0.2)) == 2
        broken = store.stores[1]
        await broken.connection.client().set(broken.keys.leases, "damaged")

        # When leases are recovered (until the two leases have expired on the server clock)
        recovered = 0
        for _ in range(50):
            recovered += (await store.recover(max_recoveries=5)).recovered
            if recovered >= 2:
                break
            await asyncio.sleep(0.1)

        # Then the other shards' jobs are back, though shard 1 failed each sweep
        assert recovered == 2
        assert len(await store.claim("w2", Routing(), 10, LEASE)) == 2
        with pytest.raises(BackendError):
            await broken.recover(max_recoveries=5)
    finally:
        await store.close()


async def test_a_limit_key_lives_on_one_shard_whatever_the_jobs_shard(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given two handles on a store of three shards, and a concurrency key kept on a shard
    # other than the one of the queue whose jobs it limits
    store = await opened(fresh_url(redis_cluster, 3))
    other = store.clone()
    await other.open()
    try:
        key = next(f"k{i}" for i in range(1000) if store.layout.of_key(f"k{i}") == 2)
        await store.enqueue([job(queue_on(store, 0)) for _ in range(2)])
        first, second = await store.claim("w", Routing(), 2, LEASE)

        # When both jobs ask for the key's one slot, from different handles
        assert await store.limits.slot_acquire(key, first.id, 1, LEASE)
        # Then the second is refused, as on one Redis: the slot is held on shard 2 only
        assert not await other.limits.slot_acquire(key, second.id, 1, LEASE)
        assert not await other.stores[2].limits.slot_acquire(key, second.id, 1, LEASE)
        assert await other.stores[0].limits.slot_acquire(key, "probe", 1, LEASE)
        # and once the first gives it back, the second gets it.
        await store.limits.slot_release(key, first.id)
        assert await other.limits.slot_acquire(key, second.id, 1, LEASE)
    finally:
        await other.close()
        await store.close()


async def test_a_cancelled_waiting_claim_leaves_nothing_leased_on_any_shard(
    redis_cluster: RedisClusterServers,
) -> None:
    # Given claims waiting on all three shards
    store = await opened(fresh_url(redis_cluster, 3))
    other = store.clone()
    await other.open()
    try:
        sent: list[str] = []
        held: set[str] = set()
        for round_ in range(5):
            waiter = asyncio.create_task(store.claim("w", Routing(), 10, LEASE, wait=20))
            await asyncio.sleep(0.1)

            # When jobs arrive on every shard at once and the claim is cancelled meanwhile
            arriving = asyncio.create_task(
                other.enqueue([job(queue_on(store, s)) for s in (0, 1, 2)])
            )
            await asyncio.sleep(0.001 * round_)
            waiter.cancel()
            try:  # a claim that returned before the cancel landed holds its jobs
                for record in await asyncio.wait_for(waiter, 15):
                    held.add(record.id)
                    assert await store.complete(Lease(record.id, record.lease_token or ""), None)
            except asyncio.CancelledError:
                pass
            sent += [r.id for r in await arriving]

        # Then no job is left leased on any shard: a fresh claim gets every other one.
        for shard in store.stores:
            assert await shard.admin.query(JobQuery(states=(State.RUNNING,))) == []
        claimed = await store.claim("w2", Routing(), 100, LEASE)
        assert sorted(j.id for j in claimed) == sorted(set(sent) - held)
        assert len(held) < len(sent)
    finally:
        await other.close()
        await store.close()


def test_a_claim_asks_only_the_shards_of_its_queues() -> None:
    layout = parse_layout("redis+cluster://h:7000/?shards=3&prefix=p")
    a, b = (
        next(q for q in (f"q{i}" for i in range(99)) if layout.of_queue(q) == s) for s in (0, 2)
    )

    assert layout.for_routing(Routing(queues=(a,))) == (0,)
    assert layout.for_routing(Routing(queues=(b, a))) == (0, 2)
    assert layout.for_routing(Routing(queues=(a, "mail-*"))) == (0, 1, 2)
    assert layout.for_routing(Routing()) == (0, 1, 2)
    assert layout.for_routing(Routing(queues=())) == ()


def test_shard_urls_keep_the_options_and_set_each_prefix() -> None:
    layout = parse_layout("redis+cluster://u:pw@h1:7000,h2:7001/?shards=2&socket_timeout=9")

    assert layout.prefix == "conveyor" and layout.tags[0].startswith("conveyor.0")
    assert layout.meta_key == "{conveyor}:cluster"
    for url, tag in zip(layout.urls, layout.tags, strict=True):
        assert url == f"redis+cluster://u:pw@h1:7000,h2:7001/?socket_timeout=9&prefix={tag}"


def test_the_password_is_never_shown() -> None:
    store = create_backend("redis+cluster://app:s3cr3t@h1:7000,h2:7001/?shards=2")

    assert "s3cr3t" not in repr(store)
    assert repr(store) == "ClusterBackend('redis+cluster://app:***@h1:7000,h2:7001/?shards=2')"
    with pytest.raises(ConfigError) as caught:
        create_backend("redis+cluster://app:s3cr3t@h1:7000/?shards=99")
    assert "s3cr3t" not in str(caught.value) and "app:***@h1:7000" in str(caught.value)
