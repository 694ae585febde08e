"""ACL users against a real server: a user with exactly the documented ACL line runs a
worker, the CLI and the admin verbs; the contract suite passes with those commands alone;
a user missing one command gets an error naming it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.acceptance.harness import Cluster
from tests.integration.redis_server import RedisServer

from conveyor import Conveyor
from conveyor.backends.redis.acl import acl_line
from conveyor.errors import BackendError
from conveyor.job import JobQuery, State

ROOT = Path(__file__).resolve().parents[3]


def _url(server: RedisServer, user: str) -> str:
    return f"redis://{user}:pw@127.0.0.1:{server.port}/0"


def test_the_documented_line_is_the_one_in_the_docs() -> None:
    assert acl_line() in (ROOT / "docs" / "redis.md").read_text()


def test_a_user_with_the_documented_line_runs_workers_and_the_cli(
    acl_server: RedisServer, tmp_path: Path
) -> None:
    url = _url(acl_server, "conveyor")
    cluster = Cluster(tmp_path, url)
    try:
        # Given a worker logged in as the documented user
        cluster.start_worker("--concurrency", "4")
        # When jobs are enqueued and drained
        ids = cluster.enqueue_work(20)
        cluster.wait_ended(ids, timeout=60)
        # Then the CLI's reads work as that user too
        for args in (["status", "--json"], ["jobs", "list", "--json"]):
            done = subprocess.run(
                [sys.executable, "-m", "conveyor", *args, "--url", url],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={**os.environ, "CONVEYOR_URL": url},
            )
            assert done.returncode == 0, done.stderr
    finally:
        cluster.close()


async def test_a_user_with_the_documented_line_runs_the_admin_verbs(
    acl_server: RedisServer,
) -> None:
    app = Conveyor(_url(acl_server, "conveyor"))

    @app.task(name="acl.noop", retries=0)
    def noop() -> None: ...

    backend = await app.open()
    try:
        admin = backend.admin
        job = await noop.enqueue_async()
        assert await admin.cancel(job.id)
        assert [j.id for j in await admin.query(JobQuery(states=(State.CANCELLED,)))] == [job.id]
        await admin.stats()
        await admin.counters()
        await admin.oldest_ready()
        await admin.diagnostics()
        await admin.pause_queue("default")
        assert await admin.paused_queues() == ["default"]
        await admin.resume_queue("default")
        await admin.retry_dead()
        assert await admin.delete([job.id]) == 1
        await admin.purge([State.SUCCEEDED])
        assert await backend.recover(3) is not None
        assert await backend.scheduling.acquire_lease("scheduler", "me", 5.0)
        await backend.scheduling.release_lease("scheduler", "me")
        await backend.limits.rate_acquire("k", 10, 1.0)
        assert await backend.limits.slot_acquire("k", "me", 1, 5.0)
        await backend.limits.slot_release("k", "me")
        await backend.telemetry.workers()
        await backend.telemetry.history(0.0)
    finally:
        await app.aclose()


def test_the_contract_suite_passes_with_the_documented_commands(acl_server: RedisServer) -> None:
    # The contract suite uses a prefix per test, so this user has the commands on any key.
    env = {**os.environ, "CONVEYOR_TEST_REDIS_URL": _url(acl_server, "anykey")}
    env.pop("CONVEYOR_TEST_POSTGRES_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         "tests/contract", "-k", "redis"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("missing", ["hset", "evalsha"])
async def test_a_user_missing_a_command_gets_an_error_naming_it(
    acl_server: RedisServer, missing: str
) -> None:
    user = f"no{missing}"
    app = Conveyor(_url(acl_server, user))

    @app.task(name="acl.noop")
    def noop() -> None: ...

    messages = []
    try:
        # From async code, and from sync code (a web request's enqueue)
        for enqueue in (noop.enqueue_async, lambda: asyncio.to_thread(noop.enqueue)):
            with pytest.raises(BackendError) as caught:
                await enqueue()
            messages.append(str(caught.value))
    finally:
        await app.aclose()
    for message in messages:
        assert f"ACL user '{user}' run the command '{missing}'" in message
        assert f"ACL SETUSER {user} +{missing}" in message and "\n" not in message
