"""An example third-party Conveyor store, ``example://``, in a distribution of its own.

It registers its scheme in the ``conveyor.backends`` entry-point group (see pyproject.toml
beside this file), so ``Conveyor("example://")``, workers, the CLI and the contract suite
find it the way they would find any plugged-in store. The storage is Conveyor's memory
backend, subclassed rather than copied: one process, jobs gone when it exits. A real store
implements `conveyor.backends.base.Backend` on its own storage (docs/backends.md).
"""

from __future__ import annotations

from conveyor.backends.memory import MemoryBackend
from conveyor.clock import SYSTEM_CLOCK, Clock
from conveyor.errors import ConfigError

SCHEME = "example"


class ExampleBackend(MemoryBackend):
    """Jobs in this process's memory, under ``example://``."""

    def __init__(self, url: str = f"{SCHEME}://", *, clock: Clock = SYSTEM_CLOCK) -> None:
        if url.partition("://")[0].lower() != SCHEME:
            raise ConfigError(f"ExampleBackend serves {SCHEME}:// URLs, not {url!r}")
        super().__init__(url, clock=clock)

    async def diagnostics(self) -> list[str]:
        """One standing warning: ``conveyor status`` shows it, so operators are not misled."""
        return [f"{SCHEME}:// keeps jobs in one process's memory; they are lost when it exits"]
