"""An example third-party Conveyor store, ``example://``, in a distribution of its own.

It registers its scheme in the ``conveyor.backends`` entry-point group (see pyproject.toml
beside this file), so ``Conveyor("example://")``, workers, the CLI and the contract suite
find it the way they would find any plugged-in store.

It is the model of a SMALL store: the core protocol plus `Limits`, and nothing else. That is
what a plain queue service (SQS and the like) lets a store offer: it can hold, lease and
settle messages, and rate windows and slots fit in a small table beside it, but it cannot
list or count what it holds, elect a scheduler, keep history or a running job's progress
reports. So ``example://`` runs workers and rate-limited tasks; ``conveyor status``, the
dashboard and the scheduler refuse it up front, in one line saying what it lacks
(`conveyor.backends.capabilities`). It keeps each job's attempt log, as every store does
(the memory store's own ``fail`` and ``recover``).

The storage is Conveyor's memory backend, subclassed rather than copied: the core verbs of
`MemoryBackend` and its `MemoryLimits` part on the same shared state, in one process, jobs
gone when it exits. A real store implements `conveyor.backends.base.Backend` on its own
storage (docs/backends.md, "Writing a store").
"""

from __future__ import annotations

from conveyor.backends.memory import MemoryBackend, MemoryLimits, MemoryState, Parts
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import ConfigError

SCHEME = "example"


class ExampleBackend(MemoryBackend):
    """Jobs in this process's memory, under ``example://``: the core verbs and `Limits`."""

    def __init__(
        self,
        url: str = f"{SCHEME}://",
        *,
        clock: Clock = SYSTEM_CLOCK,
        state: MemoryState | None = None,
    ) -> None:
        if url.partition("://")[0].lower() != SCHEME:
            raise ConfigError(f"ExampleBackend serves {SCHEME}:// URLs, not {url!r}")
        super().__init__(url, clock=clock, state=state)

    @classmethod
    def compose(cls, state: MemoryState, clock: Clock) -> Parts:
        """Only `Limits`: no admin, scheduling, telemetry or progress, as a plain queue
        service."""
        return Parts(limits=MemoryLimits(state, clock))
