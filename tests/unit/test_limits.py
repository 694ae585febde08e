"""Rate and concurrency limits and `RateLimited`, with a real worker on the memory backend.

The backend side (sliding windows, slots, defer) is in tests/contract/test_limits.py, run on
every backend; the cross-process test with an HTTP server answering 429 is in
tests/acceptance/test_rate_limits.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest

from conveyor import ConfigError, Conveyor, JobFailed, RateLimited, State, Worker
from conveyor.job import JobRecord, Routing
from conveyor.limits import RATE_LIMITED_HEADER, Limits, Rate
from conveyor.testing import make_test_app
from conveyor.worker.admission import Pacer, Pass, gate
from conveyor.worker.outcome import Deferred


def real_app() -> Conveyor:
    """A memory app on the real clock: limits wait for real time to pass."""
    return make_test_app()


async def run_until_done(app: Conveyor, timeout: float = 20.0, **options: object) -> Worker:
    options.setdefault("reaper", False)
    options.setdefault("concurrency", 8)
    worker = Worker(app, **options)  # type: ignore[arg-type]
    runner = asyncio.create_task(worker.run())

    async def all_final() -> None:
        while True:
            stats = await app.backend.admin.stats()
            if not any(
                n
                for row in stats
                for s, n in row.counts.items()
                if s in (State.SCHEDULED, State.READY, State.RUNNING)
            ):
                return
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(all_final(), timeout)
    finally:
        worker.stop()
        await asyncio.wait_for(runner, 10)
    return worker


def max_in_window(times: list[float], window: float) -> int:
    """The most events inside any half-open interval of length ``window``."""
    times = sorted(times)
    best = lo = 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


# -- parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("45/s", 45, 1.0),
        ("100/m", 100, 60.0),
        ("1000/h", 1000, 3600.0),
        ("10/5s", 10, 5.0),
        (" 3 / minute ", 3, 60.0),
        ("7/2h", 7, 7200.0),
    ],
)
def test_rates_parse(text: str, limit: int, period: float) -> None:
    assert Rate.parse(text) == Rate(limit, period)


@pytest.mark.parametrize("text", ["45", "45/", "/s", "45/d", "0/s", "abc", "4.5/s", "45/0s"])
def test_bad_rates_are_clear_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="rate_limit="):
        Rate.parse(text)


def test_bad_limit_options_are_clear_errors() -> None:
    app = real_app()
    with pytest.raises(ConfigError, match="needs rate_limit="):
        app.task(rate_limit_key=lambda account: account)(lambda account: None)
    with pytest.raises(ConfigError, match="needs max_concurrency="):
        app.task(concurrency_key=lambda account: account)(lambda account: None)
    with pytest.raises(ConfigError, match="max_concurrency=0"):
        app.task(max_concurrency=0)(lambda: None)
    with pytest.raises(ConfigError, match="must be a function"):
        app.task(rate_limit="1/s", rate_limit_key="account")(lambda account: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rate_limit='fast'"):
        app.task(rate_limit="fast")(lambda: None)


# -- the gate --------------------------------------------------------------------------------
async def test_the_gate_smooths_bursts_then_fills_the_window_then_asks_to_wait() -> None:
    app = real_app()

    @app.task(rate_limit="2/s")
    def call() -> None: ...

    for _ in range(3):
        call.enqueue()
    a, b, c = await app.backend.claim("w", Routing(), 3, 30.0)

    async def ask(job: JobRecord) -> Pass | Deferred:
        return await gate(app.backend.limits, job, call.limits, [], {}, 30.0, Pacer())

    assert await ask(a) == Pass()
    # a second start right away is over the smoothing window (1 per 0.1 s): a short wait
    soon = await ask(b)
    assert isinstance(soon, Deferred) and soon.reason == "rate_limit" and soon.delay < 0.65
    await asyncio.sleep(0.12)
    assert await ask(b) == Pass()
    # the window (2 per second) is now full: the third waits for the first to leave it
    await asyncio.sleep(0.12)
    full = await ask(c)
    assert isinstance(full, Deferred) and 0.7 < full.delay < 1.4


async def test_keys_separate_windows_and_slots() -> None:
    app = real_app()
    limits = Limits.build(
        rate_limit="1/m",
        rate_limit_key=lambda account: account,
        max_concurrency=1,
        concurrency_key=lambda account: account,
        max_rate_limited=None,
    )

    @app.task
    def call(account: str) -> None: ...

    call.enqueue("a")
    call.enqueue("b")
    call.enqueue("a")
    a1, b1, a2 = await app.backend.claim("w", Routing(), 3, 30.0)
    first = await gate(app.backend.limits, a1, limits, ["a"], {}, 30.0, Pacer())
    assert first == Pass(f"concurrency:{a1.task}:a")
    assert isinstance(await gate(app.backend.limits, b1, limits, ["b"], {}, 30.0, Pacer()), Pass)
    second = await gate(app.backend.limits, a2, limits, ["a"], {}, 30.0, Pacer())
    assert isinstance(second, Deferred) and second.reason == "concurrency"


# -- a worker under limits ------------------------------------------------------------------------
async def test_a_rate_limited_task_never_exceeds_its_window_and_uses_no_attempts() -> None:
    app = real_app()
    starts: list[float] = []

    @app.task(rate_limit="5/s", retries=0)
    def call(n: int) -> int:
        starts.append(time.monotonic())
        return n

    handles = [call.enqueue(i) for i in range(12)]
    worker = await run_until_done(app)

    assert len(starts) == 12
    assert max_in_window(starts, 1.0) <= 5
    for h in handles:
        info = h.info()
        assert info.state is State.SUCCEEDED and info.attempts == 1, info
    waits = sum(n for (task, reason), n in worker.counts.waits.items() if reason == "rate_limit")
    assert waits > 0 and worker.counts.processed == 12


async def test_max_concurrency_per_key_runs_one_job_per_account_at_a_time() -> None:
    app = real_app()
    running: dict[str, int] = defaultdict(int)
    peak: dict[str, int] = defaultdict(int)
    overall = {"now": 0, "peak": 0}

    @app.task(max_concurrency=1, concurrency_key=lambda account, n: account)
    async def sync_account(account: str, n: int) -> None:
        running[account] += 1
        overall["now"] += 1
        peak[account] = max(peak[account], running[account])
        overall["peak"] = max(overall["peak"], overall["now"])
        await asyncio.sleep(0.05)
        running[account] -= 1
        overall["now"] -= 1

    for n in range(4):
        for account in ("a", "b", "c"):
            sync_account.enqueue(account, n)
    worker = await run_until_done(app)

    assert dict(peak) == {"a": 1, "b": 1, "c": 1}
    assert overall["peak"] > 1  # different accounts did run side by side
    assert worker.counts.succeeded == 12
    # every slot was given back
    for account in ("a", "b", "c"):
        assert await app.backend.limits.slot_acquire(
            f"concurrency:{sync_account.name}:{account}", "probe", 1, 1.0
        )


async def test_rate_limited_reschedules_without_using_attempts() -> None:
    app = real_app()
    calls: list[int] = []

    @app.task(retries=0)
    def fetch() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RateLimited(retry_after=0.05, reason="HTTP 429")
        return "ok"

    handle = fetch.enqueue()
    worker = await run_until_done(app)

    info = handle.info()
    assert info.state is State.SUCCEEDED and info.attempts == 1
    assert info.headers[RATE_LIMITED_HEADER] == 2
    assert handle.result(timeout=1) == "ok"
    assert worker.counts.waits[(fetch.name, "retry_after")] == 2


async def test_rate_limited_beyond_its_cap_counts_as_a_failed_attempt() -> None:
    app = real_app()

    @app.task(retries=0, max_rate_limited=2)
    def fetch() -> None:
        raise RateLimited(retry_after=0.01)

    handle = fetch.enqueue()
    await run_until_done(app)

    info = handle.info()
    assert info.state is State.DEAD
    assert info.last_error is not None and "max_rate_limited" in info.last_error
    assert info.headers[RATE_LIMITED_HEADER] == 2


async def test_a_broken_key_function_dead_letters_the_job_not_the_worker() -> None:
    app = real_app()

    @app.task(rate_limit="10/s", rate_limit_key=lambda account: account["id"])
    def call(account: str) -> None: ...

    @app.task
    def fine() -> str:
        return "ok"

    bad = call.enqueue("not-a-dict")
    good = fine.enqueue()
    await run_until_done(app)

    info = bad.info()
    assert info.state is State.DEAD
    assert info.last_error is not None and info.last_error.startswith("limit_key_error")
    assert good.info().state is State.SUCCEEDED


def test_eager_mode_reports_rate_limited_as_a_failure() -> None:
    app = make_test_app(eager=True)

    @app.task(retries=0)
    def fetch() -> None:
        raise RateLimited(retry_after=3)

    with pytest.raises(JobFailed, match="eager mode does not wait"):
        fetch.enqueue()
