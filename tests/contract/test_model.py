"""Model-based check: random operation sequences leave every backend looking exactly like the
memory backend (the reference), on a shared fake clock.

Lease tokens are random per backend, so each lease is tracked as a pair and records are
compared with the token reduced to "held or not".
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from conveyor.backends import create_backend
from conveyor.backends.base import Backend
from conveyor.clock import FakeClock
from conveyor.job import (
    Failure,
    JobQuery,
    JobRecord,
    Lease,
    NewJob,
    Priority,
    Routing,
    State,
)

from .support import BACKEND_URLS

T = TypeVar("T")
ACTIONS = ["complete", "retry", "dead", "release", "extend"]
ROUTINGS = [
    Routing(),
    Routing(queues=("a",)),
    Routing(queues=("c-*",), priorities=(Priority.HIGH, Priority.LOW)),
    Routing(tasks=("t2",)),
]


def comparable(job: JobRecord | None) -> JobRecord | None:
    if job is None or job.lease_token is None:
        return job
    return dataclasses.replace(job, lease_token="held")


class SameAsMemory(RuleBasedStateMachine):
    """Drives the reference and one other backend with the same calls."""

    other_url: Callable[[Path], str]

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="conveyor-model-"))
        # Before the loop exists: the URL may skip the test (no server), leaking nothing.
        url = type(self).other_url(self.tmp)
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.ref = create_backend("memory://", clock=self.clock)
        self.sut = create_backend(url, clock=self.clock)
        self.ids: list[str] = []
        self.leases: dict[str, tuple[Lease, Lease]] = {}
        self.stale: list[tuple[Lease, Lease]] = []

    def both(self, call: Callable[[Backend], Awaitable[T]]) -> tuple[T, T]:
        ref = self.loop.run_until_complete(call(self.ref))
        sut = self.loop.run_until_complete(call(self.sut))
        return ref, sut

    def same(self, call: Callable[[Backend], Awaitable[Any]]) -> Any:
        ref, sut = self.both(call)
        assert ref == sut
        return ref

    @initialize()
    def open(self) -> None:
        self.both(lambda b: b.open())

    def teardown(self) -> None:
        try:
            self.both(lambda b: b.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- rules ---------------------------------------------------------------------------
    @rule(
        queue=st.sampled_from(["a", "b", "c-1"]),
        task=st.sampled_from(["t1", "t2"]),
        priority=st.sampled_from(list(Priority)),
        delay=st.sampled_from([None, 0.0, 1.0, 10.0, 40.0]),
        relative=st.booleans(),
        unique=st.sampled_from([None, None, "k1", "k2"]),
        count=st.integers(1, 3),
    )
    def enqueue(
        self,
        queue: str,
        task: str,
        priority: Priority,
        delay: float | None,
        relative: bool,
        unique: str | None,
        count: int,
    ) -> None:
        # A delay travels either as itself (the store adds its now) or as a time
        run_at = None if delay is None or relative else self.clock.now() + delay
        jobs = []
        for _ in range(count):
            job_id = f"job-{len(self.ids):04d}"
            self.ids.append(job_id)
            jobs.append(
                NewJob(
                    task=task,
                    queue=queue,
                    priority=priority,
                    payload=job_id.encode(),
                    max_retries=2,
                    timeout=9.0,
                    run_at=run_at,
                    unique_key=unique,
                    id=job_id,
                    delay=delay if relative else None,
                )
            )
        self.same(lambda b: b.enqueue(jobs))

    @rule(data=st.data(), routing=st.sampled_from(ROUTINGS), limit=st.integers(1, 3))
    def claim(self, data: st.DataObject, routing: Routing, limit: int) -> None:
        ref, sut = self.both(lambda b: b.claim("w", routing, limit, 30.0))
        assert [comparable(j) for j in ref] == [comparable(j) for j in sut]
        for a, b in zip(ref, sut, strict=True):
            pair = (Lease(a.id, a.lease_token or ""), Lease(b.id, b.lease_token or ""))
            self.leases[a.id] = pair
            # Act on most jobs at once: waiting for a separate step would let most leases
            # expire first and leave the lease paths barely explored.
            action = data.draw(st.sampled_from([*ACTIONS, "keep"]))
            if action != "keep":
                self.use(pair, action)

    @precondition(lambda self: bool(self.leases))
    @rule(
        data=st.data(),
        action=st.sampled_from(ACTIONS),
    )
    def finish(self, data: st.DataObject, action: str) -> None:
        job_id = data.draw(st.sampled_from(list(self.leases)))
        pair = self.leases[job_id]
        self.use(pair, action)

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data(), action=st.sampled_from(["complete", "retry", "release", "extend"]))
    def zombie(self, data: st.DataObject, action: str) -> None:
        pair = data.draw(st.sampled_from(self.stale))
        self.use(pair, action)

    def use(self, pair: tuple[Lease, Lease], action: str) -> None:
        leases = {id(self.ref): pair[0], id(self.sut): pair[1]}
        calls: dict[str, Callable[[Backend], Awaitable[object]]] = {
            "complete": lambda b: b.complete(leases[id(b)], b"done"),
            "retry": lambda b: b.fail(leases[id(b)], Failure("e", "tb", retry_in=3)),
            "dead": lambda b: b.fail(leases[id(b)], Failure("e", None)),
            "release": lambda b: b.release(leases[id(b)]),
            "extend": lambda b: b.extend([leases[id(b)]], 30.0),
        }
        self.same(calls[action])

    @rule(seconds=st.sampled_from([1.0, 10.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(max_recoveries=st.integers(1, 3))
    def recover(self, max_recoveries: int) -> None:
        self.same(lambda b: b.recover(max_recoveries))

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids))
        self.same(lambda b: b.cancel(job_id))

    @rule(data=st.data(), everything=st.booleans())
    def retry_dead(self, data: st.DataObject, everything: bool) -> None:
        ids = None if everything or not self.ids else data.draw(st.lists(st.sampled_from(self.ids)))
        self.same(lambda b: b.retry_dead(ids))

    @rule(states=st.lists(st.sampled_from(list(State)), max_size=3), aged=st.booleans())
    def purge(self, states: list[State], aged: bool) -> None:
        older_than = 5.0 if aged else None
        self.same(lambda b: b.purge(states, older_than))

    # -- what must always agree ------------------------------------------------------------
    @invariant()
    def leases_follow_the_reference(self) -> None:
        for job_id, pair in list(self.leases.items()):
            job = self.loop.run_until_complete(self.ref.get(job_id))
            if job is None or job.lease_token != pair[0].token:
                del self.leases[job_id]
                self.stale.append(pair)

    @invariant()
    def same_observable_state(self) -> None:
        for job_id in self.ids:
            ref, sut = self.both(lambda b, job_id=job_id: b.get(job_id))
            assert comparable(ref) == comparable(sut), job_id
        ref_list, sut_list = self.both(lambda b: b.query(JobQuery(limit=10_000)))
        assert [comparable(j) for j in ref_list] == [comparable(j) for j in sut_list]
        self.same(lambda b: b.stats())
        self.same(lambda b: b.counters())


OTHERS = [name for name in sorted(BACKEND_URLS) if name != "memory"]


@pytest.mark.parametrize("name", OTHERS)
def test_backend_behaves_like_memory(name: str) -> None:
    machine = type(f"SameAsMemory_{name}", (SameAsMemory,), {"other_url": BACKEND_URLS[name]})
    machine.TestCase.settings = settings(
        max_examples=30,
        stateful_step_count=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine.TestCase().runTest()
