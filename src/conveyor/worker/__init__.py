"""Workers: claim jobs, run them, keep their leases, shut down gracefully."""

from __future__ import annotations

from conveyor.worker.stats import WorkerStats
from conveyor.worker.worker import Worker

__all__ = ["Worker", "WorkerStats"]
