"""Apps with schedule entries, for ``conveyor scheduler`` processes in acceptance tests.

* ``cron_app:ticking``: ``heartbeat`` every second (``run_each``) and ``prune``, a cron
  entry in Europe/Paris (``skip``): several schedulers at once fire each tick once.
* ``cron_app:missed``: one entry per missed-tick policy (``once``, ``skip``, ``each``),
  every `EVERY` seconds: what a scheduler does after every scheduler was down.

The store comes from ``CONVEYOR_URL``, like the workers' ``ledger_app``. Nothing here runs
the tasks: the tests read the jobs the schedulers enqueue.
"""

from __future__ import annotations

from conveyor import Conveyor

#: The interval of the ``missed`` app's entries, in seconds.
EVERY = 3

ticking = Conveyor()


@ticking.periodic(every=1, name="heartbeat", missed="run_each")
async def beat() -> None:
    """Fired every second."""


@ticking.cron("*/5 * * * *", timezone="Europe/Paris", missed="skip", name="prune")
def prune(days: int = 7) -> None:
    """Fired every five minutes, Paris time."""


missed = Conveyor()


@missed.periodic(every=EVERY, name="once", missed="run_once")
async def once() -> None:
    """Catches up on missed ticks with one job."""


@missed.periodic(every=EVERY, name="skip", missed="skip")
async def skip() -> None:
    """Drops missed ticks."""


@missed.periodic(every=EVERY, name="each", missed="run_each")
async def each() -> None:
    """Catches up on every missed tick."""
