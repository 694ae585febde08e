"""Tasks that misbehave, for the acceptance tests of a worker's defences (real processes).

Each one writes the same ``start``/``end`` ledger records as `ledger_app`, so the harness's
checker can tell which process ran what. Workers load it as ``--app hostile_app:app``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor import Conveyor, current_job

try:  # imported by the tests as a package module, by workers from PYTHONPATH
    from .ledger_app import LEDGER_ENV, record
except ImportError:
    from ledger_app import LEDGER_ENV, record  # type: ignore[no-redef]

BLOCK = "hostile.block"
SYNC_SLOW = "hostile.sync_slow"
SYNC_STUCK = "hostile.sync_stuck"


def build_app(url: str | None = None) -> Conveyor:
    """The hostile tasks on ``url`` (default: ``CONVEYOR_URL``)."""
    app = Conveyor(url)

    @app.task(name=BLOCK, timeout=1, retries=0)
    async def block(seconds: float) -> None:
        """Block the event loop with ``time.sleep`` on the job's first run only."""
        record("start")
        marker = Path(os.environ[LEDGER_ENV]).with_name(f"blocked-{current_job().id}")
        if not marker.exists():
            marker.touch()
            time.sleep(seconds)
        record("end")

    @app.task(name=SYNC_SLOW, timeout=60)
    def sync_slow(seconds: float) -> None:
        """A plain def task that outlives a short shutdown grace period."""
        record("start")
        time.sleep(seconds)
        record("end")

    @app.task(name=SYNC_STUCK, timeout=0.5, retries=0)
    def sync_stuck() -> None:
        """A plain def task far over its timeout (its thread cannot be stopped)."""
        record("start")
        time.sleep(30)

    return app


app = build_app()
