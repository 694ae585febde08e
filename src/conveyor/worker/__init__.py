"""Workers: claim jobs, run them, keep their leases, shut down gracefully."""

from __future__ import annotations

from conveyor.worker.worker import Worker, WorkerStats

__all__ = ["Worker", "WorkerStats"]
