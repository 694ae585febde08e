"""The state table: every allowed transition is reachable through the protocol, and no
call the protocol offers moves a job along a transition the table forbids.

For each starting state we build a fresh job in that state, apply each operation, and record
the (before, after) pair. The recorded changes must be exactly the table's: on a core-only
store, the part of the table the core verbs reach; with `Admin`, all of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest

from conveyor.backends.base import Backend
from conveyor.backends.capabilities import Admin
from conveyor.clock import FakeClock
from conveyor.job import TRANSITIONS, Failure, Lease, Routing, State
from conveyor.testing.contract.fixtures import requires
from conveyor.testing.contract.jobs import LEASE, add, new_job, state_of

Op = Callable[[Backend, FakeClock, str, Lease], Awaitable[object]]
_count = iter(range(1_000_000))


async def put_in(backend: Backend, clock: FakeClock, state: State) -> tuple[str, Lease]:
    """A fresh job (with its own task name) in ``state``, and its lease (or a bogus one)."""
    task = f"task-{next(_count)}"
    delay = 60.0 if state is State.SCHEDULED else None
    run_at = None if delay is None else clock.now() + delay
    [job_id] = await add(backend, new_job(task=task, run_at=run_at))
    lease = Lease(job_id, "0" * 32)
    if state in (State.RUNNING, State.SUCCEEDED, State.DEAD):
        [job] = await backend.claim("w", Routing(tasks=(task,)), 1, LEASE)
        lease = Lease(job_id, job.lease_token or "")
    if state is State.SUCCEEDED:
        assert await backend.complete(lease, None)
    elif state is State.DEAD:
        assert await backend.fail(lease, Failure("boom"))
    elif state is State.CANCELLED:
        assert await backend.admin.cancel(job_id)
    assert await state_of(backend, job_id) == state.value
    return job_id, lease


async def _task_of(backend: Backend, job_id: str) -> str:
    job = await backend.get(job_id)
    assert job is not None
    return job.task


async def op_promote(b: Backend, c: FakeClock, job_id: str, lease: Lease) -> object:
    # A claim promotes every due job; routing it elsewhere leaves ours promoted, unclaimed.
    c.advance(61)
    return await b.claim("w", Routing(tasks=("no-such-task",)), 1, LEASE)


async def op_claim(b: Backend, c: FakeClock, job_id: str, lease: Lease) -> object:
    return await b.claim("w", Routing(tasks=(await _task_of(b, job_id),)), 1, LEASE)


async def op_expire_and_recover(b: Backend, c: FakeClock, job_id: str, lease: Lease) -> object:
    c.advance(LEASE)
    return await b.recover(max_recoveries=100)


async def op_expire_and_poison(b: Backend, c: FakeClock, job_id: str, lease: Lease) -> object:
    c.advance(LEASE)
    return await b.recover(max_recoveries=1)


CORE_OPS: dict[str, Op] = {
    "promote": op_promote,
    "claim": op_claim,
    "extend": lambda b, c, i, lease: b.extend([lease], LEASE),
    "complete": lambda b, c, i, lease: b.complete(lease, b"r"),
    "fail-retry": lambda b, c, i, lease: b.fail(lease, Failure("x", retry_in=5)),
    "fail-dead": lambda b, c, i, lease: b.fail(lease, Failure("x")),
    "release": lambda b, c, i, lease: b.release(lease),
    "defer": lambda b, c, i, lease: b.defer(lease, 5.0),
    "recover": op_expire_and_recover,
    "poison": op_expire_and_poison,
}
ADMIN_OPS: dict[str, Op] = {
    "cancel": lambda b, c, i, lease: b.admin.cancel(i),
    "retry-dead": lambda b, c, i, lease: b.admin.retry_dead([i]),
    "retry-all-dead": lambda b, c, i, lease: b.admin.retry_dead(),
    "purge-unfinished": lambda b, c, i, lease: b.admin.purge([State.READY, State.RUNNING]),
}
ALLOWED = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
#: The transitions only `Admin` makes: cancelling, and retrying dead jobs.
ADMIN_ONLY = {(old, State.CANCELLED) for old in State} | {(State.DEAD, State.READY)}


async def changes(
    backend: Backend, clock: FakeClock, starts: Sequence[State], ops: dict[str, Op]
) -> set[tuple[State, State]]:
    """Apply each op to a fresh job in each start state; every change must be allowed."""
    seen: set[tuple[State, State]] = set()
    for start in starts:
        for name, op in ops.items():
            job_id, lease = await put_in(backend, clock, start)
            await op(backend, clock, job_id, lease)
            after = State(await state_of(backend, job_id))
            assert after is start or after in TRANSITIONS[start], (
                f"{name} moved a {start.value} job to {after.value}"
            )
            if after is not start:
                seen.add((start, after))
    return seen


@pytest.mark.asyncio
class TestTransitions:
    """Core: the part of the state table the core verbs reach, on every store."""

    async def test_every_change_the_core_makes_is_in_the_state_table(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        starts = [state for state in State if state is not State.CANCELLED]
        seen = await changes(backend, clock, starts, CORE_OPS)

        expected = ALLOWED - ADMIN_ONLY
        assert seen == expected, f"never reached: {expected - seen}"

    async def test_succeeded_stays_succeeded(self, backend: Backend, clock: FakeClock) -> None:
        job_id, lease = await put_in(backend, clock, State.SUCCEEDED)
        for op in CORE_OPS.values():
            await op(backend, clock, job_id, lease)
            assert await state_of(backend, job_id) == State.SUCCEEDED.value


@pytest.mark.asyncio
@requires(Admin)
class TestAdminTransitions:
    """The whole state table, for stores with `Admin` (cancel and retry_dead)."""

    async def test_every_change_the_api_makes_is_in_the_state_table(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        seen = await changes(backend, clock, list(State), {**CORE_OPS, **ADMIN_OPS})

        assert seen == ALLOWED, f"never reached: {ALLOWED - seen}"

    async def test_final_states_stay_final(self, backend: Backend, clock: FakeClock) -> None:
        for final in (State.SUCCEEDED, State.CANCELLED):
            job_id, lease = await put_in(backend, clock, final)
            for op in {**CORE_OPS, **ADMIN_OPS}.values():
                await op(backend, clock, job_id, lease)
                assert await state_of(backend, job_id) == final.value
