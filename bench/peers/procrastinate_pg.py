"""procrastinate: ``procrastinate --app peers.procrastinate_pg.app worker``. Runs in
``.bench/pg-peers-venv``."""

from __future__ import annotations

from importlib.metadata import version

from procrastinate import App, PsycopgConnector

from peers.pg_common import Peer, bin_path, job_async, pg_url

#: Pool: min 1 and max 10 connections, like Conveyor's default pool_size (procrastinate
#: leaves psycopg_pool's default, a fixed 4).
app = App(connector=PsycopgConnector(conninfo=pg_url(), min_size=1, max_size=10))


@app.task(name="bench.incr")
async def incr(t: float) -> None:
    """The benchmark job."""
    await job_async(t)


def worker(concurrency: int) -> list[str]:
    """One procrastinate worker process, LISTEN/NOTIFY on (its default). Logging at
    warning, as for Conveyor (procrastinate's CLI logs two INFO lines per job)."""
    return [
        bin_path("procrastinate"),
        "--app",
        "peers.procrastinate_pg.app",
        "--log-level",
        "warning",
        "worker",
        "--concurrency",
        str(concurrency),
        "--listen-notify",
    ]


async def setup() -> None:
    """Apply procrastinate's schema to the fresh database."""
    with app.open():
        app.schema_manager.apply_schema()


async def connect() -> None:
    """Open the producer (procrastinate's sync connector: ``task.defer()`` from sync code)."""
    app.open()


async def disconnect() -> None:
    """Close the producer's connections."""
    app.close()


def peer() -> Peer:
    """procrastinate's side of the benchmark."""
    return Peer(
        name="procrastinate",
        version=f"procrastinate {version('procrastinate')}",
        settings="`procrastinate --log-level warning worker --concurrency {c} --listen-notify`"
        ", async def task, pool max 10",
        worker=worker,
        enqueue=lambda t: incr.defer(t=t),
        bulk=lambda ts: incr.batch_defer(*({"t": t} for t in ts)),
        bulk_api="task.batch_defer()",
        setup=setup,
        open=connect,
        close=disconnect,
    )
