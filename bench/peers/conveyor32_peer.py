"""Conveyor tuned: ``conveyor worker --concurrency C`` (the benchmark's ``--concurrency``).

``conveyor_peer`` runs the worker at its defaults; this one measures the same app with the
concurrency every peer gets, so the table shows both.
"""

from __future__ import annotations

import dataclasses
import sys

from peers import conveyor_peer
from peers.common import Peer, redis_url


def worker(concurrency: int) -> list[str]:
    """One ``conveyor worker --concurrency C`` process."""
    return [
        sys.executable,
        "-m",
        "conveyor",
        "worker",
        "--app",
        "peers.conveyor_peer:app",
        "--url",
        redis_url(),
        "--concurrency",
        str(concurrency),
        "--log-level",
        "warning",
    ]


def peer() -> Peer:
    """Conveyor at the benchmark's concurrency."""
    return dataclasses.replace(
        conveyor_peer.peer(),
        name="conveyor32",
        settings="`conveyor worker --concurrency {c}`, async def task",
        worker=worker,
    )
