"""The scheduler: fires `@app.cron` and `@app.periodic` entries, exactly once per tick.

Any number of schedulers may run (``conveyor scheduler``, or built into ``conveyor worker``);
a leader lease in the backend makes one of them active, and the backend's atomic tick
record makes a tick enqueue once even while leadership changes hands. Delayed and retrying
jobs need no scheduler: every backend's ``claim`` promotes due jobs itself.
"""

from __future__ import annotations

from conveyor.scheduler.listing import entry_rows
from conveyor.scheduler.scheduler import LEADER_LEASE, MAX_CATCH_UP, Fired, Scheduler

__all__ = ["LEADER_LEASE", "MAX_CATCH_UP", "Fired", "Scheduler", "entry_rows"]
