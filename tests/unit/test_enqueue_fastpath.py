"""The enqueue path's shortcuts keep its guarantees: ids made in one go look and sort as
ids made one by one, plain scalars skip the walk but not its checks, and a batch's jobs
share what their calls share without sharing anything a middleware may change."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import orjson
import pytest

from conveyor import Conveyor
from conveyor.errors import ConfigError, SerializationError
from conveyor.job import Priority, new_job_id, new_job_ids
from conveyor.middleware import EnqueueContext, EnqueueNext
from conveyor.serialization import encode_payload, tag_values

ID = re.compile(r"[0-9a-f]{26}")


def test_ids_made_in_one_go_are_distinct_and_shaped_like_single_ones() -> None:
    before = new_job_id()
    ids = new_job_ids(5_000)
    after = new_job_id()
    assert len(set(ids)) == 5_000
    assert all(ID.fullmatch(i) for i in ids)
    # The time prefix orders them between ids made just before and just after
    assert before[:12] <= ids[0][:12] == ids[-1][:12] <= after[:12]
    assert new_job_ids(0) == []


@pytest.mark.parametrize(
    "value",
    ["plain", "", 0, -(2**63), 2**64 - 1, 1.5, -0.0, True, None, "é", 10**30, math.nan],
)
def test_plain_scalars_encode_as_the_walk_would(value: Any) -> None:
    # Given a value either path may take
    try:
        walked = orjson.dumps({"args": [tag_values(value, "args[0]")], "kwargs": {}})
    except SerializationError as exc:
        # Then a value the walk refuses is refused with the same message
        with pytest.raises(SerializationError) as got:
            encode_payload((value,), {})
        assert str(got.value) == str(exc)
        return
    assert encode_payload((value,), {}) == walked
    assert encode_payload((), {"v": value}) == orjson.dumps(
        {"args": [], "kwargs": {"v": tag_values(value, "kwargs['v']")}}
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.inf, r"args\[1\] is inf"),
        (-math.inf, r"args\[1\] is -inf"),
        (2**64, r"args\[1\] is an integer too large"),
        (-(2**63) - 1, r"args\[1\] is an integer too large"),
        ("\ud800", r"args\[1\] .* lone surrogate"),
    ],
)
def test_values_json_cannot_hold_are_refused_with_their_path(value: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=message):
        encode_payload(("fine", value), {})


def test_a_batch_shares_options_but_not_headers(app: Conveyor) -> None:
    seen: list[dict[str, Any]] = []

    @app.task(queue="mail", priority="high", retries=4)
    def send(to: str) -> None: ...

    @app.enqueue_middleware
    async def tag_first(ctx: EnqueueContext, call_next: EnqueueNext) -> Any:
        # A middleware that changes one job's headers changes only that job
        ctx.jobs[0].headers["first"] = True
        seen.extend(job.headers for job in ctx.jobs)
        return await call_next()

    tagged = send.options(headers={"tenant": "acme"}, delay=60)
    handles = app.enqueue_many([tagged.call("a"), tagged.call("b"), send.call("c")])
    records = [h.info() for h in handles]
    assert [r.headers for r in records] == [
        {"tenant": "acme", "first": True},
        {"tenant": "acme"},
        {},
    ]
    assert tagged.opts.headers == {"tenant": "acme"}  # the caller's options are untouched
    assert [(r.queue, r.priority, r.max_retries) for r in records] == [
        ("mail", Priority.HIGH, 4)
    ] * 3
    assert [r.state.value for r in records] == ["scheduled", "scheduled", "ready"]


def test_a_callable_unique_key_is_asked_per_call(app: Conveyor) -> None:
    @app.task(unique_key=lambda n: f"n-{n}")
    def work(n: int) -> None: ...

    handles = work.enqueue_many([(1,), (2,), (1,)])
    assert [h.existing for h in handles] == [False, False, True]
    assert handles[2].id == handles[0].id
    assert [h.info().unique_key for h in handles[:2]] == ["n-1", "n-2"]


def test_a_task_of_another_app_in_a_batch_stores_nothing(app: Conveyor) -> None:
    other = Conveyor("memory://")

    @app.task
    def mine() -> None: ...

    @other.task
    def theirs() -> None: ...

    with pytest.raises(ConfigError, match="belongs to another Conveyor app"):
        app.enqueue_many([mine.call(), mine.call(), theirs.call()])
    stats = asyncio.run(app.backend.admin.stats())
    assert sum(n for s in stats for n in s.counts.values()) == 0
