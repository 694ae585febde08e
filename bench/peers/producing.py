"""The producing side of a measurement, shared by the Redis and PostgreSQL drivers.

Stdlib only, so each peer's own virtualenv can load it. A peer is anything with the
``enqueue``/``aenqueue``/``bulk``/``abulk``/``bulk_api`` fields of the drivers' ``Peer``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class Producer(Protocol):
    """The enqueue calls a peer offers (``None`` where it has no such API)."""

    enqueue: Callable[[float], object] | None
    aenqueue: Callable[[float], Awaitable[object]] | None
    bulk: Callable[[list[float]], object] | None
    abulk: Callable[[list[float]], Awaitable[object]] | None
    bulk_api: str


async def enqueue_single(
    peer: Producer, jobs: int, probe: Callable[[], dict[str, float]] | None = None
) -> dict[str, Any]:
    """One call per job from one producer; sync API when the peer has one.

    Besides the seconds, ``client_us``: this process's CPU time per call (user + system,
    so a busy machine does not inflate it). ``probe`` reads server counters; its readings
    right after the warm-up call and right after the last call are returned as
    ``probe_before`` and ``probe_after``.
    """
    if peer.enqueue is not None:
        fn = peer.enqueue
        fn(0.0)
        before = probe() if probe else {}
        cpu, start = time.process_time(), time.perf_counter()
        for _ in range(jobs):
            fn(0.0)
        api = "sync"
    else:
        assert peer.aenqueue is not None
        afn = peer.aenqueue
        await afn(0.0)
        before = probe() if probe else {}
        cpu, start = time.process_time(), time.perf_counter()
        for _ in range(jobs):
            await afn(0.0)
        api = "async, awaited one by one"
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    out: dict[str, Any] = {"seconds": seconds, "api": api, "client_us": cpu / jobs * 1e6}
    if probe:
        out.update(probe_before=before, probe_after=probe())
    return out


async def enqueue_concurrent(peer: Producer, jobs: int, producers: int) -> dict[str, Any]:
    """``jobs`` async enqueues from ``producers`` coroutines at once."""
    if peer.aenqueue is None:
        return {"error": "no async enqueue API"}
    afn = peer.aenqueue
    await afn(0.0)

    async def producer(n: int) -> None:
        for _ in range(n):
            await afn(0.0)

    shares = [jobs // producers + (1 if i < jobs % producers else 0) for i in range(producers)]
    start = time.perf_counter()
    await asyncio.gather(*(producer(n) for n in shares))
    return {"seconds": time.perf_counter() - start}


async def enqueue_bulk(peer: Producer, jobs: int, batch: int) -> dict[str, Any]:
    """The peer's bulk API, ``batch`` jobs per call."""
    sizes = [min(batch, jobs - lo) for lo in range(0, jobs, batch)]
    if peer.bulk is not None:
        peer.bulk([0.0])
        start = time.perf_counter()
        for size in sizes:
            peer.bulk([0.0] * size)
    elif peer.abulk is not None:
        await peer.abulk([0.0])
        start = time.perf_counter()
        for size in sizes:
            await peer.abulk([0.0] * size)
    else:
        return {"error": "no bulk enqueue API"}
    return {"seconds": time.perf_counter() - start, "api": peer.bulk_api}


async def fill(peer: Producer, jobs: int) -> None:
    """Queue ``jobs`` jobs as fast as the peer allows (untimed)."""
    if peer.bulk is not None or peer.abulk is not None:
        await enqueue_bulk(peer, jobs - 1, 1000)  # its warm-up call adds the last one
    elif peer.aenqueue is not None:
        await enqueue_concurrent(peer, jobs - 1, 50)
    else:
        assert peer.enqueue is not None
        for _ in range(jobs):
            peer.enqueue(0.0)
