"""Admission: whether a claimed job of a limited task may start now (`conveyor.limits`).

Only tasks with ``rate_limit`` or ``max_concurrency`` pass through here, with the job's task
and arguments already decoded (`executor.prepare`). The verdict is a `Pass` (start, holding
a concurrency slot if the task has one), a `Deferred` (put the job back in storage for a
while, no attempt used), or a dead `Failed` when the task's key function itself is broken.
The store's `Limits` capability keeps the windows and slots, so the limits hold across every
worker sharing it.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError
from conveyor.limits import GUARD_SECONDS, Limits, Rate, limit_key
from conveyor.worker.executor import dead
from conveyor.worker.outcome import Deferred, Failed

if TYPE_CHECKING:
    from conveyor.backends import capabilities
    from conveyor.job import JobRecord
    from conveyor.worker.executor import Prepared

log = logging.getLogger("conveyor.worker")

#: Seconds a job waits in storage when its limits could not be checked (backend blip).
UNCHECKED_WAIT = 1.0
#: Longest pause between two tries of a job that waits for a concurrency slot.
MAX_SLOT_WAIT = 5.0
#: Header that counts how often a job waited for a concurrency slot (it sets the pause).
SLOT_WAITS_HEADER = "conveyor.slot_waits"


@dataclass(frozen=True, slots=True)
class Pass:
    """The job may start; it holds the concurrency slot ``slot`` (if any) while it runs."""

    slot: str | None = None


async def admit(
    store: capabilities.Limits,
    job: JobRecord,
    prepared: Prepared,
    slot_ttl: float,
    pacer: Pacer,
) -> Pass | Deferred | Failed:
    """Ask the store about the prepared job's task limits; never raises."""
    try:
        return await gate(
            store, job, prepared.task.limits, prepared.args, prepared.kwargs, slot_ttl, pacer
        )
    except ConfigError as exc:  # the task's key function failed on these arguments
        return dead(f"limit_key_error: {exc}", exc)
    except Exception as exc:  # noqa: BLE001 - a blip: try again soon, nothing is lost
        log.warning("job %s (%s): could not check its limits: %s", job.id, job.task, exc)
        return Deferred(UNCHECKED_WAIT, "unchecked")


async def gate(
    store: capabilities.Limits,
    job: JobRecord,
    limits: Limits,
    args: list[Any],
    kwargs: dict[str, Any],
    slot_ttl: float,
    pacer: Pacer,
) -> Pass | Deferred:
    """Ask the store whether ``job`` may start now under ``limits``.

    The concurrency slot is taken first and given back if the rate window then refuses, so
    a job waiting for its rate never sits on a slot.
    """
    slot = None
    if limits.max_concurrency is not None:
        slot = limit_key("concurrency", job.task, limits.concurrency_key, args, kwargs)
        if not await store.slot_acquire(slot, job.id, limits.max_concurrency, slot_ttl):
            waits = int(job.headers.get(SLOT_WAITS_HEADER, 0)) + 1
            delay = min(0.1 * 2 ** min(waits, 10), MAX_SLOT_WAIT)
            headers = {**job.headers, SLOT_WAITS_HEADER: waits}
            jitter = random.uniform(0.75, 1.25)  # noqa: S311 - not cryptographic
            return Deferred(delay * jitter, "concurrency", headers)
    if limits.rate is not None:
        key = limit_key("rate", job.task, limits.rate_key, args, kwargs)
        rate = limits.rate
        wait = pacer.known_wait(key)
        if wait <= 0:  # smoothing first: a refused start then costs no start of the window
            burst = rate.burst()
            wait = await store.rate_acquire(f"{key}:burst", burst.limit, burst.period)
        if wait <= 0:
            wait = await store.rate_acquire(key, rate.limit, rate.period + GUARD_SECONDS)
        if wait > 0:
            if slot is not None:
                await store.slot_release(slot, job.id)
            return Deferred(pacer.delay(key, wait, rate), "rate_limit")
    return Pass(slot)


class Pacer:
    """One worker's memory of the rate windows it found full.

    Jobs refused by a full window are spread over the coming windows one ``period / limit``
    apart, in the order they were refused, instead of all coming back at the instant the
    window frees (where all but one would be refused again, over and over). And while a
    window is known to be full, further jobs are put back without asking the store.
    """

    #: Entries kept before expired ones are dropped (per-key limits make many keys).
    MAX_KEYS = 10_000

    def __init__(self) -> None:
        self._full_until: dict[str, float] = {}
        self._next: dict[str, float] = {}

    def known_wait(self, key: str) -> float:
        """Seconds the window ``key`` is still known to be full (0: ask the store)."""
        return max(0.0, self._full_until.get(key, 0.0) - time.monotonic())

    def delay(self, key: str, wait: float, rate: Rate) -> float:
        """The delay for one more job refused by window ``key``, full for ``wait`` seconds."""
        now = time.monotonic()
        if len(self._next) > self.MAX_KEYS:
            self._forget(now)
        self._full_until[key] = max(self._full_until.get(key, 0.0), now + wait)
        step = rate.period / rate.limit
        at = max(now + wait, self._next.get(key, 0.0))
        self._next[key] = at + step
        return at - now + random.uniform(0.0, step)  # noqa: S311 - not cryptographic

    def _forget(self, now: float) -> None:
        for table in (self._full_until, self._next):
            for key in [k for k, t in table.items() if t < now]:
                del table[key]
