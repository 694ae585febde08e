"""A store's diagnostics: lines starting with ``TOPOLOGY_PREFIX`` say where the store is and
are shown as such by ``conveyor status`` and the dashboard; every other line is a warning.
"""

from __future__ import annotations

from conveyor.backends.capabilities import TOPOLOGY_PREFIX
from conveyor.backends.memory import MemoryBackend
from conveyor.backends.memory.admin import MemoryAdmin
from conveyor.backends.memory.backend import Parts
from conveyor.backends.memory.state import MemoryState
from conveyor.cli.status import shown_diagnostics
from conveyor.clock import Clock
from conveyor.dashboard.data import store_health

WHERE = "server 10.0.0.5:6379 (primary); 2 replicas"
RISK = "appendonly is no: jobs enqueued since the last snapshot are lost on a restart"


class ReplicatedAdmin(MemoryAdmin):
    """A memory store's admin that reports, as a replicated server would, where it is."""

    async def diagnostics(self) -> list[str]:
        return [TOPOLOGY_PREFIX + WHERE, RISK]


class ReplicatedStore(MemoryBackend):
    @classmethod
    def compose(cls, state: MemoryState, clock: Clock) -> Parts:
        return Parts(admin=ReplicatedAdmin(state, clock))


async def test_the_dashboard_lists_topology_apart_from_warnings() -> None:
    assert await store_health(ReplicatedStore()) == {"topology": [WHERE], "warnings": [RISK]}


async def test_status_shows_topology_plainly_and_the_rest_as_warnings() -> None:
    lines = await ReplicatedStore().admin.diagnostics()
    assert shown_diagnostics(lines) == [
        f"topology: {WHERE}",
        f"[bold yellow]warning:[/] {RISK}",
    ]
