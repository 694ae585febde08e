"""Model-based check: random operation sequences leave a store looking exactly like the
memory store (the reference), on a shared fake clock.

The core verbs are always driven; cancel, retry_dead and purge, and the comparison of
listings, stats and counters, only when the store has `Admin`. Lease tokens are random per
store, so each lease is tracked as a pair and records are compared with the token reduced to
"held or not". Each run needs many new stores: the test asks ``new_store_url`` for them
(and uses ``store_url`` only to know which store is under test).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

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
from conveyor.backends.capabilities import Admin
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

T = TypeVar("T")
ACTIONS = ["complete", "retry", "dead", "release", "extend"]
ROUTINGS = [
    Routing(),
    Routing(queues=("a",)),
    Routing(queues=("c-*",), priorities=(Priority.HIGH, Priority.LOW)),
    Routing(tasks=("t2",)),
]


def comparable(job: JobRecord | None) -> JobRecord | None:
    """The record with its lease token reduced to whether one is held."""
    if job is None or job.lease_token is None:
        return job
    return dataclasses.replace(job, lease_token="held")  # noqa: S106 - a marker, not a secret


class SameAsMemory(RuleBasedStateMachine):
    """Drives the reference and the store under test with the same calls."""

    new_url: ClassVar[Callable[[], str]]

    def __init__(self) -> None:
        super().__init__()
        # Before the loop exists: the URL may skip the test (no server), leaking nothing.
        url = type(self).new_url()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.ref = create_backend("memory://", clock=self.clock)
        self.sut = create_backend(url, clock=self.clock)
        self.admin = self.sut.supports(Admin)
        self.ids: list[str] = []
        self.leases: dict[str, tuple[Lease, Lease]] = {}
        self.stale: list[tuple[Lease, Lease]] = []

    def both(self, call: Callable[[Backend], Awaitable[T]]) -> tuple[T, T]:
        """What ``call`` gives on the reference, then on the store under test."""
        ref = self.loop.run_until_complete(call(self.ref))
        sut = self.loop.run_until_complete(call(self.sut))
        return ref, sut

    def same(self, call: Callable[[Backend], Awaitable[Any]]) -> Any:
        """Call both; the answers must be equal."""
        ref, sut = self.both(call)
        assert ref == sut
        return ref

    @initialize()
    def open(self) -> None:
        """Open both stores."""
        self.both(lambda b: b.open())

    def teardown(self) -> None:
        """Close both stores and the loop."""
        try:
            self.both(lambda b: b.close())
        finally:
            self.loop.close()

    # -- core rules ------------------------------------------------------------------------
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
        """Enqueue jobs, delayed either as a delay (the store adds its now) or as a time."""
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
        """Claim on both; most claimed jobs are acted on at once."""
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
    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def finish(self, data: st.DataObject, action: str) -> None:
        """Act on a job held under a lease."""
        job_id = data.draw(st.sampled_from(list(self.leases)))
        self.use(self.leases[job_id], action)

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data(), action=st.sampled_from(["complete", "retry", "release", "extend"]))
    def zombie(self, data: st.DataObject, action: str) -> None:
        """Act with a lease that was lost."""
        self.use(data.draw(st.sampled_from(self.stale)), action)

    def use(self, pair: tuple[Lease, Lease], action: str) -> None:
        """Call one lease-taking verb on both, each with its own lease."""
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
        """Move the shared clock."""
        self.clock.advance(seconds)

    @rule(max_recoveries=st.integers(1, 3))
    def recover(self, max_recoveries: int) -> None:
        """Recover expired leases on both."""
        self.same(lambda b: b.recover(max_recoveries))

    # -- admin rules -----------------------------------------------------------------------
    @precondition(lambda self: self.admin and bool(self.ids))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Cancel a job."""
        job_id = data.draw(st.sampled_from(self.ids))
        self.same(lambda b: b.admin.cancel(job_id))

    @precondition(lambda self: self.admin)
    @rule(data=st.data(), everything=st.booleans())
    def retry_dead(self, data: st.DataObject, everything: bool) -> None:
        """Retry some dead jobs, or all of them."""
        ids = None if everything or not self.ids else data.draw(st.lists(st.sampled_from(self.ids)))
        self.same(lambda b: b.admin.retry_dead(ids))

    @precondition(lambda self: self.admin)
    @rule(states=st.lists(st.sampled_from(list(State)), max_size=3), aged=st.booleans())
    def purge(self, states: list[State], aged: bool) -> None:
        """Purge final jobs in some states, of any age or older than 5 s."""
        older_than = 5.0 if aged else None
        self.same(lambda b: b.admin.purge(states, older_than))

    # -- what must always agree ------------------------------------------------------------
    @invariant()
    def leases_follow_the_reference(self) -> None:
        """A lease the reference no longer honours is stale on both."""
        for job_id, pair in list(self.leases.items()):
            job = self.loop.run_until_complete(self.ref.get(job_id))
            if job is None or job.lease_token != pair[0].token:
                del self.leases[job_id]
                self.stale.append(pair)

    @invariant()
    def same_observable_state(self) -> None:
        """Every job reads the same; with `Admin`, so do listings, stats and counters."""
        for job_id in self.ids:
            ref = self.loop.run_until_complete(self.ref.get(job_id))
            sut = self.loop.run_until_complete(self.sut.get(job_id))
            assert comparable(ref) == comparable(sut), job_id
        if not self.admin:
            return
        ref_list, sut_list = self.both(lambda b: b.admin.query(JobQuery(limit=10_000)))
        assert [comparable(j) for j in ref_list] == [comparable(j) for j in sut_list]
        self.same(lambda b: b.admin.stats())
        self.same(lambda b: b.admin.counters())


class TestModel:
    """Core (and `Admin` where the store has it): the store behaves like the reference."""

    def test_store_behaves_like_memory(
        self, request: pytest.FixtureRequest, store_url: str
    ) -> None:
        if store_url.startswith("memory://"):
            pytest.skip("memory:// is the reference the model compares stores against")
        try:
            # Asked for by name: a store's tests may leave it out, and the check is skipped.
            new_store_url: Callable[[], str] = request.getfixturevalue("new_store_url")
        except pytest.FixtureLookupError:
            pytest.skip(
                "the model check needs a new_store_url fixture: a function giving the URL of "
                "another new, empty store at each call"
            )
        machine: Any = type(
            "SameAsMemoryRun", (SameAsMemory,), {"new_url": staticmethod(new_store_url)}
        )
        machine.TestCase.settings = settings(
            max_examples=30,
            stateful_step_count=40,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        machine.TestCase().runTest()
