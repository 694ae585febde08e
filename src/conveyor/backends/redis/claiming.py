"""Claiming on Redis: ``claim.lua`` now, or parked until work arrives (``park.lua`` and a
blocking pop on the handle's wake list) with the claim pipelined behind the pop.

A parked worker's claim rides right behind its BLPOP in one pipeline, so Redis runs it
the moment a wake token arrives: no extra round trip between being woken and leasing.
What that claim leases is the result of the same `claim` call; nothing is kept for later.
`RedisBackend.claim` runs the wait as a task of its own, so a cancelled caller can end the
pop (`RedisConnection.unblock`), wait for the reply in flight and release what it leased.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from conveyor.backends.redis.clients import SOCKET_TIMEOUT
from conveyor.backends.redis.connection import RedisConnection, translated
from conveyor.backends.redis.keys import Keys, routing_json
from conveyor.backends.redis.quarantine import Claimed, claimed
from conveyor.backends.redis.scripts import load_all, script
from conveyor.job import JobRecord, Routing

#: Scheduled jobs promoted per claim.
PROMOTE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """What one `RedisBackend.claim` call asks for."""

    worker_id: str
    routing: Routing
    limit: int
    lease_seconds: float

    def args(self, token_base: str) -> list[Any]:
        """claim.lua's ARGV after the prefix and now; ``token_base`` is fresh each call
        (`new_token_base`)."""
        return [
            self.worker_id,
            self.limit,
            repr(float(self.lease_seconds)),
            token_base,
            routing_json(self.routing),
            PROMOTE_BATCH,
        ]


def new_token_base() -> str:
    """The random part of the lease tokens one claim.lua call hands out."""
    return secrets.token_hex(16)


@functools.cache
def claim_keys(k: Keys) -> tuple[str, ...]:
    """KEYS of claim.lua, built once per store."""
    return (k.lanes, k.scheduled, k.leases, k.counts, k.paused)


async def claim_now(conn: RedisConnection, request: ClaimRequest) -> list[JobRecord]:
    """Lease up to ``limit`` matching jobs in one round trip, in run order."""
    while True:
        base = new_token_base()
        reply = await conn.run("claim", claim_keys(conn.keys), *request.args(base))
        got = await claimed(conn, reply, request.worker_id, base)
        # Only quarantined records were leased: claim again rather than report no work.
        if got.jobs or not got.leased:
            return got.jobs


async def claim_waiting(
    conn: RedisConnection, request: ClaimRequest, wait: float, abandoned: asyncio.Event
) -> list[JobRecord]:
    """Claim; with nothing there, park and claim again when woken, until ``wait`` is over.

    ``abandoned`` is set when the caller gave up (it was cancelled): the loop then stops
    before it parks or pops again, and returns what it holds for the caller to release.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        jobs = await claim_now(conn, request)
        left = deadline - loop.time()
        if jobs or left <= 0 or abandoned.is_set():
            return jobs
        block = await park(conn, request.routing, left)
        if block > 0 and not abandoned.is_set():
            jobs = await _sleep(conn, request, block, abandoned)
            if jobs:
                return jobs


async def park(conn: RedisConnection, routing: Routing, timeout: float) -> float:
    """Register as a waiter for ``routing``: the seconds to block, or 0 when work is there."""
    k = conn.keys
    wait = await conn.run(
        "park",
        [k.lanes, k.scheduled, k.waiters, k.paused],
        conn.waiter,
        routing_json(routing),
        repr(float(timeout)),
    )
    return float(wait)


async def _sleep(
    conn: RedisConnection, request: ClaimRequest, seconds: float, abandoned: asyncio.Event
) -> list[JobRecord]:
    """Block on the wake list up to ``seconds``; what the claim behind the pop leased.

    The claim rides behind the pop only on the server's clock: an injected clock's now
    would be the time the pipeline was sent, not the time the pop returned. Then the pop
    alone is sent, and the caller claims when it returns.
    """
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    pipelined = conn.server_time and request.limit > 0
    while (left := until - loop.time()) > 0 and not abandoned.is_set():
        # Blocks below the socket timeout, so a dead server still shows as an error.
        block = min(left, SOCKET_TIMEOUT - 1)
        if not pipelined:
            with translated(conn.target):
                if await conn.client().blpop([conn.keys.wake(conn.waiter)], timeout=block):
                    return []
            continue
        popped, got = await _pop_then_claim(conn, request, block)
        if got.jobs or got.leased or popped:
            return got.jobs
    return []


async def _pop_then_claim(
    conn: RedisConnection, request: ClaimRequest, block: float
) -> tuple[bool, Claimed]:
    """One pipeline: BLPOP on the wake list, then claim.lua; whether a token came, and
    what the claim leased."""
    client = conn.client()
    keys = claim_keys(conn.keys)
    base = new_token_base()
    with translated(conn.target):
        async with client.pipeline(transaction=False) as pipe:
            pipe.blpop([conn.keys.wake(conn.waiter)], timeout=block)
            args = (conn.keys.base, conn.now(), *request.args(base))
            pipe.evalsha(script("claim").sha, len(keys), *keys, *args)
            popped, reply = await pipe.execute(raise_on_error=False)
    if isinstance(popped, Exception):
        with translated(conn.target):
            raise popped
    if isinstance(reply, NoScriptError):
        with translated(conn.target):
            await load_all(client)
        return True, Claimed([], 0)  # the caller's own claim comes next
    if isinstance(reply, Exception):
        with translated(conn.target):
            raise reply
    return bool(popped), await claimed(conn, reply, request.worker_id, base)
