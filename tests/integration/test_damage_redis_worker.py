"""A real worker draining a real Redis store that holds damaged jobs: the healthy jobs all
run, each damaged one costs itself only, and the worker's loop stays up.

The property test writes random damage into one stored job among healthy ones. What the
damaged job becomes is decided by these rules (the store's, written out here as the
oracle), in this order:

* **dropped**: its key is not a hash, its ``priority`` is not exactly ``0``, ``1`` or ``2``,
  its ``queue`` is missing, or its ``state`` names another state than ``ready`` (a stale
  entry). No script can place such a record: it leaves the ready lane with a logged error
  naming it, and its key is kept exactly as it is.
* **quarantined**: the claim leases it but it cannot be read: ``state`` missing or not a
  state; ``attempts`` not an integer Redis can increment; ``id`` not the job's id;
  ``task``, ``queue`` not UTF-8; ``headers`` not a JSON object; ``max_retries``,
  ``recoveries`` not integers (Python's ``int``); ``timeout``, ``run_at``, ``created_at``
  not finite numbers; a required field missing. It ends ``dead`` with ``last_error``
  starting ``unreadable_record`` and naming the job and the field; the damaged value kept.
* **settled**: anything else is harmless to the store (fields the claim rewrites:
  ``updated_at``, a missing ``attempts``; fields a record may leave out, read as their
  first value: a missing ``id``, ``recoveries``, ``headers`` or ``run_at`` (the key's id,
  0, {}, ``created_at``); fields it never reads: ``seq``; values within
  the rules; any ``payload`` bytes). The job runs through the normal path: it succeeds, or
  the worker settles it as an ordinary failure (``unknown_task`` for a task no one
  registered, ``decode_error`` for a payload that is not arguments), never as unreadable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from tests.contract.support import server_url

from conveyor import Conveyor, State, Worker
from conveyor.backends.redis import RedisBackend
from conveyor.backends.unreadable import integer, number, text
from conveyor.job import JobQuery

from .damage_redis_support import UNREADABLE, fresh_url

#: The fields a job without a unique key may hold once enqueued (its payload of positional
#: arguments only is kept in ``args``; ``payload`` would hold any other, and wins).
FIELDS = (
    "id",
    "task",
    "queue",
    "priority",
    "state",
    "payload",
    "args",
    "headers",
    "attempts",
    "max_retries",
    "timeout",
    "run_at",
    "created_at",
    "updated_at",
    "recoveries",
    "seq",
)
STATES = {s.value.encode() for s in State}
#: Fields a record may leave out, read as their first or default value (the key's id, 0,
#: {}, created_at, 3, 300): enqueue.lua writes none of them for a job to run now with the
#: built-in defaults.
LEFT_OUT = ("id", "recoveries", "headers", "run_at", "max_retries", "timeout")
REDIS_INTEGER = re.compile(rb"0|-?[1-9][0-9]{0,18}")


class Captured(logging.Handler):
    """Errors the Redis backend logs during one example."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def new_app() -> tuple[Conveyor, list[int]]:
    app = Conveyor(fresh_url())
    ran: list[int] = []

    @app.task(name="app.work", retries=0)
    async def work(n: int) -> int:
        ran.append(n)
        return n

    return app, ran


def keys(app: Conveyor) -> RedisBackend:
    backend = app.backend
    assert isinstance(backend, RedisBackend)
    return backend


async def drain(app: Conveyor) -> Worker:
    """A burst worker's whole run: it must end on its own, having run out of jobs."""
    worker = Worker(app, concurrency=3, burst=True, reaper=False)
    assert await asyncio.wait_for(worker.run(), 30) == 0
    assert worker.stop_reason is not None and "burst" in worker.stop_reason
    return worker


# -- a worker and a store with several kinds of damage -------------------------------------


async def test_a_burst_worker_drains_a_store_with_damaged_jobs_among_healthy_ones() -> None:
    app, ran = new_app()
    work = app.tasks["app.work"]
    handles = [await work.enqueue_async(n) for n in range(12)]
    backend = keys(app)
    k = backend.keys
    bad = {handles[n].id: n for n in (2, 5, 8, 11)}
    with Redis.from_url(server_url("redis")) as raw:
        raw.hset(k.job(handles[2].id), "headers", "{garbage")  # quarantined
        raw.hset(k.job(handles[5].id), "timeout", b"\xff")  # quarantined
        raw.hdel(k.job(handles[8].id), "queue")  # dropped, kept
        raw.delete(k.job(handles[11].id))
        raw.set(k.job(handles[11].id), "garbage")  # dropped, kept
        raw.zadd(f"{k.base}ready:17:defaultapp.work", {"0" * 16 + "ghost": 0})
        raw.sadd(k.lanes, "not a lane")
        await drain(app)
        assert sorted(ran) == [n for n in range(12) if n not in bad.values()]
        for n, h in enumerate(handles):
            stored = raw.hgetall(k.job(h.id)) if n != 11 else {}
            if n in (2, 5):
                assert stored[b"state"] == b"dead"
                assert stored[b"last_error"].startswith(UNREADABLE.encode())
            elif n == 8:
                assert stored[b"state"] == b"ready" and b"queue" not in stored
            elif n == 11:
                assert raw.get(k.job(h.id)) == b"garbage"
            else:
                assert stored[b"state"] == b"succeeded"
        assert raw.zcard(f"{k.base}ready:17:defaultapp.work") == 0
        assert raw.smembers(k.lanes) == set()
    listed = await backend.admin.query(JobQuery(limit=50))
    assert len(listed) == 12 and {j.id for j in listed if j.unreadable} == set(bad)
    await backend.admin.stats()
    await backend.telemetry.workers()
    await app.aclose()


# -- random damage ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """One piece of damage: a field and its new value (``None``: deleted), or the whole key
    replaced by another type (``kind``)."""

    field: str | None
    value: bytes | None = None
    kind: str | None = None


damages = st.one_of(
    st.builds(
        Damage,
        field=st.sampled_from(FIELDS),
        value=st.one_of(
            st.binary(max_size=16),
            st.text(max_size=16).map(str.encode),
            st.none(),
            st.sampled_from([b"0", b"1", b"2", b"-1", b"007", b"1e3", b"nan", b"{}", b"[]"]),
            st.sampled_from(sorted(STATES)),
        ),
    ),
    st.builds(Damage, field=st.none(), kind=st.sampled_from(["string", "list", "set", "zset"])),
)


def expected(d: Damage, job_id: str) -> str:
    """The oracle (see the module docstring): dropped, quarantined or settled."""
    if d.kind is not None:
        return "dropped"
    v = d.value
    if d.field == "priority":
        return "dropped" if v not in (b"0", b"1", b"2") else "settled"
    if d.field == "queue" and v is None:
        return "dropped"
    if d.field == "state":
        if v is not None and v in STATES:
            return "settled" if v == b"ready" else "dropped"
        return "quarantined"
    if d.field in ("updated_at", "seq") or (d.field == "payload" and v is None):
        return "settled"  # a payload left out is the one in `args`
    if v is None and d.field in LEFT_OUT:
        return "settled"
    if d.field == "attempts":
        return "settled" if v is None or _counts(v) else "quarantined"
    if v is None or d.field == "id":
        return "settled" if v == job_id.encode() else "quarantined"
    return "settled" if _reads(d.field or "", v) else "quarantined"


def _counts(v: bytes) -> bool:
    """Whether HINCRBY takes ``v`` and can add 1 to it."""
    return REDIS_INTEGER.fullmatch(v) is not None and -(2**63) <= int(v) < 2**63 - 1


def _reads(name: str, v: bytes) -> bool:
    decode: Any = {
        "task": text,
        "queue": text,
        "payload": bytes,
        "args": bytes,
        "headers": lambda raw: isinstance(json.loads(raw), dict),
        "max_retries": integer,
        "recoveries": integer,
        "timeout": number,
        "run_at": number,
        "created_at": number,
    }[name]
    try:
        return decode(v) is not False
    except Exception:  # the oracle: any failure means unreadable
        return False


def replace(raw: Redis, key: str, kind: str) -> None:
    """Put a key of another type than a hash where the job's hash was."""
    raw.delete(key)
    if kind == "string":
        raw.set(key, "x")
    elif kind == "list":
        raw.rpush(key, "x")
    elif kind == "set":
        raw.sadd(key, "x")
    else:
        raw.zadd(key, {"x": 1})


async def _scenario(d: Damage, healthy: int, position: int) -> None:
    app, ran = new_app()
    work = app.tasks["app.work"]
    handles = [await work.enqueue_async(n) for n in range(healthy + 1)]
    target = handles[position]
    k = keys(app).keys
    key = k.job(target.id)
    captured = Captured()
    logging.getLogger("conveyor.backend.redis").addHandler(captured)
    outcome = expected(d, target.id)
    try:
        with Redis.from_url(server_url("redis")) as raw:
            # Given one stored job damaged among healthy ones
            if d.kind is not None:
                replace(raw, key, d.kind)
            elif d.value is None:
                raw.hdel(key, d.field or "")
            else:
                raw.hset(key, d.field or "", d.value)
            before = raw.hgetall(key) if d.kind is None else raw.type(key)
            # When a burst worker drains the store
            await drain(app)
            # Then every healthy job ran and succeeded
            others = [n for n in range(healthy + 1) if n != position]
            assert sorted(n for n in ran if n != position) == others
            for n in others:
                assert raw.hget(k.job(handles[n].id), "state") == b"succeeded"
            # And the damaged one went the way the rules say
            if outcome == "dropped":
                after = raw.hgetall(key) if d.kind is None else raw.type(key)
                assert after == before
                assert any(target.id in line for line in captured.lines), captured.lines
            elif outcome == "quarantined":
                stored = raw.hgetall(key)
                error = stored[b"last_error"].decode()
                assert stored[b"state"] == b"dead", stored
                assert error.startswith(UNREADABLE) and target.id in error, error
                # A record without `args` (or `payload`) has no payload to read.
                assert repr("payload" if d.field == "args" else d.field) in error, error
                if d.field != "state":
                    assert stored.get((d.field or "").encode()) == d.value
            else:
                state = raw.hget(key, "state")
                assert state in (b"succeeded", b"dead", b"scheduled"), state
                assert not (raw.hget(key, "last_error") or b"").startswith(UNREADABLE.encode())
        # And reads keep working around it
        assert len(await app.backend.admin.query(JobQuery(limit=50))) == healthy + 1
        assert await app.backend.get(target.id) is not None
        await app.backend.admin.stats()
        await app.backend.telemetry.workers()
    finally:
        logging.getLogger("conveyor.backend.redis").removeHandler(captured)
        await app.aclose()


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data(), d=damages, healthy=st.integers(min_value=1, max_value=4))
def test_random_damage_to_one_job_costs_that_job_only(
    data: st.DataObject, d: Damage, healthy: int
) -> None:
    server_url("redis")  # skip early (not inside the example) without a server
    position = data.draw(st.integers(min_value=0, max_value=healthy), label="position")
    asyncio.run(_scenario(d, healthy, position))
