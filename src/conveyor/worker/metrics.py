"""The metrics line: every ``WORKER_METRICS_INTERVAL`` seconds a worker logs how it is doing.

One line per interval on the ``conveyor.metrics`` logger: jobs processed, completed and
failed (since start, and processed in the last interval), average duration, utilisation,
error rate, uptime and resident memory. With ``LOG_FORMAT=json`` every log line is one JSON
object and the metrics are its fields, ready for a log pipeline (`conveyor.logs.formatting`
reads them from the record's `METRICS` attribute).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from conveyor.logs.formatting import METRICS

if TYPE_CHECKING:
    from conveyor.worker.worker import Worker

log = logging.getLogger("conveyor.metrics")


def metrics(worker: Worker, previous: int = 0) -> dict[str, Any]:
    """The fields of one metrics line; ``previous`` is the processed count of the last one."""
    stats = worker.stats()
    c = worker.counts
    ended = c.processed + c.released + c.lost  # every job whose busy time is counted
    return {
        "worker": stats.id,
        "pool": stats.pool,
        "processed": stats.processed,
        "processed_interval": stats.processed - previous,
        "completed": stats.succeeded,
        "failed": stats.failed,
        "running": stats.running,
        "avg_duration": round(c.busy_seconds / ended, 4) if ended else 0.0,
        "utilisation": stats.utilisation,
        "error_rate": round(stats.failed / stats.processed, 4) if stats.processed else 0.0,
        "uptime": stats.uptime,
        "rss_mb": stats.rss_mb,
    }


def format_text(m: dict[str, Any]) -> str:
    """``metrics: processed=12 (+3) completed=11 failed=1 ...`` for human-read logs."""
    return (
        f"metrics: processed={m['processed']} (+{m['processed_interval']}) "
        f"completed={m['completed']} failed={m['failed']} running={m['running']} "
        f"avg_duration={m['avg_duration']:.3f}s utilisation={m['utilisation']:.1%} "
        f"error_rate={m['error_rate']:.1%} uptime={m['uptime']:.0f}s rss={m['rss_mb']}MB"
    )


async def report_metrics(worker: Worker, interval: float) -> None:
    """Log a metrics line every ``interval`` seconds until cancelled."""
    previous = 0
    while True:
        await asyncio.sleep(interval)
        m = metrics(worker, previous)
        previous = m["processed"]
        log.info(format_text(m), extra={METRICS: m})
