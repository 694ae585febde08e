"""Redis specifics the contract suite cannot see: URLs and passwords, the persistence
warning, wake-ups, round trips per batch, retention and the key layout."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from redis import Redis
from redis.crc import key_slot
from tests.acceptance.harness import Cluster
from tests.contract.support import new_job, server_url

from conveyor import BackendUnavailable, Conveyor
from conveyor.backends import create_backend
from conveyor.backends.redis import RedisBackend
from conveyor.clock import FakeClock
from conveyor.job import HistoryPoint, Lease, Routing, State

from .redis_server import RedisServer


def fresh_url(base: str | None = None) -> str:
    return f"{base or server_url('redis')}?prefix=it-{os.urandom(6).hex()}"


@pytest.fixture
async def backend() -> AsyncIterator[RedisBackend]:
    b = create_backend(fresh_url(), clock=FakeClock())
    assert isinstance(b, RedisBackend)
    await b.open()
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def raw() -> Iterator[Redis]:
    with Redis.from_url(server_url("redis")) as client:
        yield client


def evalsha_calls(client: Redis) -> int:
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


# -- URLs ----------------------------------------------------------------------------------
async def test_url_forms_reach_the_same_store() -> None:
    base = server_url("redis")
    host_port = base.split("://", 1)[1].split("/", 1)[0]
    prefix = f"url-{os.urandom(4).hex()}"
    forms = [
        f"redis://{host_port}?prefix={prefix}",
        f"redis://{host_port}/0?prefix={prefix}",
        f"redis://{host_port}/0?socket_timeout=2&prefix={prefix}&socket_connect_timeout=1",
    ]
    first = create_backend(forms[0])
    await first.open()
    [job_id] = [r.id for r in await first.enqueue([new_job()])]
    for url in forms[1:]:
        other = create_backend(url)
        await other.open()
        assert (await other.get(job_id)) is not None, url
        await other.close()
    await first.close()


def test_rediss_and_a_redis_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(create_backend("rediss://cache.example:6380/1"), RedisBackend)
    monkeypatch.setenv("CONVEYOR_URL", "redis://cache.example:6379/3")
    app = Conveyor()
    assert isinstance(app.backend, RedisBackend)
    assert app.backend.target.redis_url.startswith("redis://cache.example:6379/3")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "secured", password="s3cret-pw")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_password_in_the_url(secured: RedisServer) -> None:
    good = create_backend(f"{secured.url}?prefix=pw")
    await good.open()
    [result] = await good.enqueue([new_job()])
    assert (await good.get(result.id)) is not None
    await good.close()

    for url in (
        f"redis://:wrong@127.0.0.1:{secured.port}/0",
        f"redis://127.0.0.1:{secured.port}/0",
    ):
        bad = create_backend(url)
        with pytest.raises(BackendUnavailable) as info:
            await bad.open()
        assert "wrong" not in str(info.value) and "s3cret" not in str(info.value)
        await bad.close()


# -- persistence warning -------------------------------------------------------------------
async def test_warns_about_settings_that_lose_jobs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(
        tmp_path / "loose", "--appendonly", "no", "--maxmemory-policy", "allkeys-lru"
    )
    server.start()
    try:
        b = create_backend(server.url)
        with caplog.at_level(logging.WARNING, logger="conveyor.backend.redis"):
            await b.open()
        problems = await b.admin.diagnostics()
        await b.close()
    finally:
        server.stop()
    text = caplog.text
    assert "appendonly is 'no'" in text and "since the last RDB snapshot" in text
    assert "allkeys-lru" in text and "evicts" in text
    assert len(problems) == 2 and "appendonly" in problems[0]


async def test_no_warning_for_a_durable_server(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="conveyor.backend.redis"):
        b = create_backend(fresh_url())
        await b.open()
        await b.close()
    assert "appendonly" not in caplog.text and "maxmemory" not in caplog.text


# -- wake-ups ------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_idle_worker_wakes_on_enqueue_not_on_its_poll_interval(tmp_path: Path) -> None:
    # Given a worker that would sleep 30 s between polls, idle and registered
    cluster = Cluster(tmp_path, fresh_url())
    try:
        cluster.start_worker(env={"WORKER_SLEEP": "30"})
        deadline = time.monotonic() + 20
        while not cluster.workers():
            assert time.monotonic() < deadline, cluster.outputs()
            time.sleep(0.05)
        time.sleep(0.5)  # let it park (a claim that finds nothing, then the wait)

        # When a job is enqueued, Then it runs long before the poll interval would end
        for round_ in range(3):
            ids = cluster.enqueue_work(1, start=round_)
            cluster.wait_ended(ids, timeout=10)
    finally:
        cluster.close()


async def test_a_waiting_claim_ignores_work_for_other_routing(backend: RedisBackend) -> None:
    other = backend.clone()
    await other.open()
    waiter = asyncio.create_task(backend.claim("w", Routing(queues=("mail",)), 5, 30.0, wait=1.0))
    await asyncio.sleep(0.1)
    await other.enqueue([new_job(queue="jobs")])
    await asyncio.sleep(0.2)
    assert not waiter.done()  # not woken for a queue it does not serve
    [mail] = await other.enqueue([new_job(queue="mail")])
    assert [j.id for j in await asyncio.wait_for(waiter, 0.5)] == [mail.id]
    await other.close()


# -- round trips ---------------------------------------------------------------------------
async def test_one_claim_leases_many_jobs_in_one_script_call(
    backend: RedisBackend, raw: Redis
) -> None:
    await backend.enqueue([new_job(queue=f"q{i % 5}") for i in range(50)])
    raw.config_resetstat()

    claimed = await backend.claim("w", Routing(), 50, 30.0)

    assert len(claimed) == 50
    assert evalsha_calls(raw) == 1


async def test_bulk_enqueue_and_concurrent_acks_share_round_trips(
    backend: RedisBackend, raw: Redis
) -> None:
    raw.config_resetstat()
    results = await backend.enqueue([new_job() for _ in range(2500)])
    assert len(results) == 2500
    assert evalsha_calls(raw) == 3  # 1,000 jobs per script call, pipelined

    jobs = await backend.claim("w", Routing(), 100, 30.0)
    raw.config_resetstat()
    oks = await asyncio.gather(
        *(backend.complete(Lease(j.id, j.lease_token or ""), b"1") for j in jobs)
    )
    assert all(oks)
    assert evalsha_calls(raw) <= 2  # the first ack goes alone, the rest together


# -- glob patterns -------------------------------------------------------------------------
QUEUES = ["a.b", "a%b", "aQb", "a-b", "é", "éé", "x[1]", "100%", "q1", "Q1", "a]b", "a^b"]
PATTERNS = [
    "a?b",
    "a%b",
    "a[%.]b",
    "?",
    "??",
    "x[[]1]",
    "*%",
    "[!a]*",
    "[a-z]1",
    "a[!-]b",
    "a[]]b",
    "a[^]b",
    "*",
    "a*",
    "[qQ]?",
    "a[!%]b",
    "*[",
    "[z-a]*",
]


async def test_glob_patterns_match_exactly_like_fnmatch(backend: RedisBackend) -> None:
    await backend.enqueue([new_job(queue=q) for q in QUEUES])
    for pattern in PATTERNS:
        claimed = await backend.claim("w", Routing(queues=(pattern,)), 100, 30.0)
        got = sorted(j.queue for j in claimed)
        assert got == sorted(q for q in QUEUES if fnmatchcase(q, pattern)), pattern
        for job in claimed:
            assert await backend.release(Lease(job.id, job.lease_token or ""))


# -- retention and layout ------------------------------------------------------------------
async def test_a_job_to_run_now_keeps_run_at_out_of_its_record_and_its_place_in_line(
    raw: Redis,
) -> None:
    clock = FakeClock()
    b = create_backend(fresh_url(), clock=clock)
    assert isinstance(b, RedisBackend)
    await b.open()
    try:
        [first] = [r.id for r in await b.enqueue([new_job()])]
        assert raw.hget(b.keys.job(first), "run_at") is None  # it is created_at
        record = await b.get(first)
        assert record is not None and record.run_at == record.created_at == clock.now()
        # A job released or recovered goes back ahead of the jobs enqueued after it
        [job] = await b.claim("w", Routing(), 1, 30.0)
        clock.advance(5)
        later = [r.id for r in await b.enqueue([new_job(), new_job()])]
        clock.advance(5)
        assert await b.release(Lease(job.id, job.lease_token or ""))
        [again] = await b.claim("w", Routing(), 1, 30.0)
        assert again.id == first and again.run_at == record.run_at
        clock.advance(60)
        assert (await b.recover(max_recoveries=3)).recovered == 1
        assert [j.id for j in await b.claim("w", Routing(), 3, 30.0)] == [first, *later]
    finally:
        await b.close()


async def test_a_record_holds_max_retries_and_timeout_only_when_not_the_defaults(
    backend: RedisBackend, raw: Redis
) -> None:
    plain, own = [
        r.id
        for r in await backend.enqueue(
            [new_job(max_retries=3, timeout=300.0), new_job(max_retries=0, timeout=300.5)]
        )
    ]
    assert raw.hmget(backend.keys.job(plain), "max_retries", "timeout") == [None, None]
    assert raw.hmget(backend.keys.job(own), "max_retries", "timeout") == [b"0", b"300.5"]
    jobs = {j.id: j for j in await backend.claim("w", Routing(), 2, 30.0)}
    assert (jobs[plain].max_retries, jobs[plain].timeout) == (3, 300.0)
    assert (jobs[own].max_retries, jobs[own].timeout) == (0, 300.5)


async def test_a_payload_of_positional_arguments_only_is_kept_as_its_bare_arguments(
    backend: RedisBackend, raw: Redis
) -> None:
    bare = b'{"args":[1,"two"],"kwargs":{}}'
    whole = [b'{"args":[1],"kwargs":{"k":2}}', b"[1]", b'{"args":,"kwargs":{}}', b"\xff\x00"]
    # One batch alternating the two forms: every job gets its own field, in order.
    payloads = [bare, whole[0], bare, *whole[1:], bare]
    ids = [r.id for r in await backend.enqueue([new_job(payload=p) for p in payloads])]
    for job_id, payload in zip(ids, payloads, strict=True):
        fields = raw.hmget(backend.keys.job(job_id), "payload", "args")
        assert fields == ([None, b'[1,"two"]'] if payload == bare else [payload, None])
    claimed = await backend.claim("w", Routing(), len(ids), 30.0)
    assert [(j.id, j.payload) for j in claimed] == list(zip(ids, payloads, strict=True))
    got = await backend.get(ids[0])
    assert got is not None and got.payload == bare


async def test_purge_leaves_only_the_fixed_keys(raw: Redis) -> None:
    clock = FakeClock()
    url = fresh_url()
    prefix = url.rsplit("prefix=", 1)[1]
    b = create_backend(url, clock=clock)
    await b.open()
    await b.enqueue([new_job(queue=f"q{i % 3}", unique_key=f"k{i}") for i in range(30)])
    for job in await b.claim("w", Routing(), 30, 30.0):
        assert await b.complete(Lease(job.id, job.lease_token or ""), b"result")
    clock.advance(100)

    assert await b.admin.purge([State.SUCCEEDED], older_than=200) == 0
    assert await b.admin.purge([State.SUCCEEDED], older_than=50) == 30

    # (the registry of index buckets keeps a bucket until a query finds it empty)
    left = sorted(k.decode() for k in raw.scan_iter(match=f"{{{prefix}}}:*"))
    assert left == [f"{{{prefix}}}:buckets", f"{{{prefix}}}:seq"], left
    await b.close()


async def test_every_key_of_a_store_shares_one_cluster_slot(raw: Redis) -> None:
    url = fresh_url()
    prefix = url.rsplit("prefix=", 1)[1]
    b = create_backend(url, clock=FakeClock())
    await b.open()
    await b.enqueue([new_job(queue="a"), new_job(queue="b", run_at=2e9, unique_key="u")])
    await b.claim("w", Routing(), 1, 30.0)
    keys = list(raw.scan_iter(match=f"{{{prefix}}}:*"))
    assert len(keys) >= 8
    assert {key_slot(k) for k in keys} == {key_slot(prefix.encode())}
    await b.close()


async def test_enqueue_is_idempotent_by_job_id(backend: RedisBackend) -> None:
    job = new_job()
    [first] = await backend.enqueue([job])
    [again] = await backend.enqueue([job])  # e.g. a producer retrying after a timeout
    assert (first.existing, again.existing) == (False, True)
    assert len(await backend.claim("w", Routing(), 10, 30.0)) == 1


# -- pause, limits, history, delete --------------------------------------------------------
async def test_enqueueing_into_a_paused_queue_wakes_nobody(backend: RedisBackend) -> None:
    # Given a worker parked on a paused queue
    other = backend.clone()
    await other.open()
    await backend.admin.pause_queue("mail")
    waiter = asyncio.create_task(backend.claim("w", Routing(queues=("mail",)), 5, 30.0, wait=1.0))
    await asyncio.sleep(0.1)

    # When jobs arrive in that queue, it sleeps on
    await other.enqueue([new_job(queue="mail") for _ in range(3)])
    await asyncio.sleep(0.2)
    assert not waiter.done()

    # and resuming the queue wakes it, with the jobs claimed
    await other.admin.resume_queue("mail")
    assert len(await asyncio.wait_for(waiter, 0.5)) == 3
    await other.close()


async def test_claim_with_a_paused_queue_is_still_one_script_call(
    backend: RedisBackend, raw: Redis
) -> None:
    await backend.enqueue([new_job(queue=f"q{i % 5}") for i in range(50)])
    await backend.admin.pause_queue("q0")
    raw.config_resetstat()

    claimed = await backend.claim("w", Routing(), 50, 30.0)

    assert len(claimed) == 40 and {j.queue for j in claimed} == {"q1", "q2", "q3", "q4"}
    assert evalsha_calls(raw) == 1


async def test_new_keys_share_the_store_slot_and_delete_cleans_up(raw: Redis) -> None:
    # Given a store that used every new feature
    url = fresh_url()
    prefix = url.rsplit("prefix=", 1)[1]
    b = create_backend(url, clock=FakeClock())
    await b.open()
    await b.enqueue([new_job(queue="a", unique_key="u1"), new_job(queue="b")])
    await b.admin.pause_queue("b")
    assert await b.limits.rate_acquire("api:{x}", 5, 60.0) == 0.0
    assert await b.limits.slot_acquire("acct:1", "h", 2, 30.0)
    await b.telemetry.record_history([HistoryPoint(1_800_000_000, "a", 1, 0)], keep=1e12)
    [job] = await b.claim("w", Routing(), 1, 30.0)
    assert await b.complete(Lease(job.id, job.lease_token or ""), None)

    # Then every key lives in the store's slot (a "{" in a limit key changes nothing)
    keys = {k.decode() for k in raw.scan_iter(match=f"{{{prefix}}}:*")}
    assert {key_slot(k.encode()) for k in keys} == {key_slot(prefix.encode())}
    assert {f"{{{prefix}}}:paused", f"{{{prefix}}}:history"} <= keys

    # And deleting the finished job leaves no trace of it in any index
    assert await b.admin.delete([job.id, job.id]) == 1
    left = {k.decode() for k in raw.scan_iter(match=f"{{{prefix}}}:*")}
    assert f"{{{prefix}}}:job:{job.id}" not in left
    assert f"{{{prefix}}}:done:succeeded" not in left
    assert raw.zscore(f"{{{prefix}}}:all:0", job.id) is None
    counts = raw.hgetall(f"{{{prefix}}}:counts")
    assert all(not f.startswith(b"succeeded:") for f in counts)
    await b.close()


async def test_rate_windows_and_slots_expire_with_their_data(raw: Redis) -> None:
    url = fresh_url()
    prefix = url.rsplit("prefix=", 1)[1]
    b = create_backend(url, clock=FakeClock())
    await b.open()
    assert await b.limits.rate_acquire("k", 1, 60.0) == 0.0
    assert await b.limits.slot_acquire("k", "h", 1, 30.0)
    # A window lives one period after its newest start, slots as long as the last one.
    assert 59_000 < raw.pttl(f"{{{prefix}}}:rate:k") <= 60_001
    assert 29_000 < raw.pttl(f"{{{prefix}}}:slots:k") <= 30_001
    await b.limits.slot_release("k", "h")
    assert not raw.exists(f"{{{prefix}}}:slots:k")
    await b.close()


async def test_a_paused_queues_due_job_does_not_end_a_wait(backend: RedisBackend) -> None:
    # Given a paused queue whose scheduled job is due but not yet promoted (nobody claimed)
    clock = backend.clock
    assert isinstance(clock, FakeClock)
    await backend.admin.pause_queue("mail")
    await backend.enqueue([new_job(queue="mail", run_at=clock.now() + 1)])
    clock.advance(2)

    # Then a waiting claim still sleeps its whole wait, and claims nothing
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await backend.claim("w", Routing(queues=("mail",)), 5, 30.0, wait=0.3) == []
    assert loop.time() - started >= 0.25
